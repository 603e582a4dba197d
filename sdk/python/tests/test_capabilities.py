"""The capabilities' wrappers, natively, with the test doubles."""

import pytest

from nats_callout import Request, kv, nkey, oidc, password, testing
from nats_callout.build import used_capabilities
from nats_callout.capability import CapabilityError

KEY = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4"


@pytest.fixture(autouse=True)
def fresh_doubles():
    testing.reset()


def test_kv_reads_answer_from_the_doubles_and_say_why_not():
    testing.put_kv("users", "alice", '{"account": "APP"}')
    assert kv.get_text("users", "alice") == '{"account": "APP"}'
    assert kv.get("users", "bob") is None
    with pytest.raises(CapabilityError) as other:
        kv.get("secrets", "x")
    assert (other.value.kind, other.value.detail) == ("not-granted", "secrets")
    testing.make_kv_unavailable("users")
    with pytest.raises(CapabilityError, match="unavailable"):
        kv.get("users", "alice")


def test_tokens_and_passwords():
    testing.accept_token("good", "https://idp", {"sub": "alice"})
    assert oidc.verify("good") == oidc.VerifiedToken("https://idp", '{"sub": "alice"}')
    testing.refuse_token("old", "expired")
    with pytest.raises(CapabilityError, match="^expired$"):
        oidc.verify("old")
    with pytest.raises(CapabilityError) as forged:
        oidc.verify("forged")
    assert forged.value.kind == "bad-signature"
    testing.set_password_hash("$argon2id$x", "wonderland")
    assert password.verify("wonderland", "$argon2id$x") is True
    assert password.verify("guess", "$argon2id$x") is False
    with pytest.raises(CapabilityError, match="malformed hash"):
        password.verify("x", "$md5$y")


def test_an_nkey_client_is_admitted_only_with_its_signature_of_the_nonce():
    testing.accept_signature(KEY, "nonce-1", "good")

    def signed(sig, nonce):
        request = Request.for_test()
        request.connect_opts.nkey = KEY
        request.connect_opts.sig = sig
        request.client_info.nonce = nonce
        return request

    assert nkey.verified_client_key(signed("good", "nonce-1")) == KEY
    with pytest.raises(CapabilityError, match="bad signature"):
        nkey.verified_client_key(signed("forged", "nonce-1"))
    with pytest.raises(CapabilityError, match="no nonce"):
        nkey.verified_client_key(signed("good", None))
    with pytest.raises(CapabilityError, match="without a signature"):
        nkey.verified_client_key(signed(None, "nonce-1"))
    assert nkey.verified_client_key(Request.for_test()) is None
    assert nkey.key_kind(KEY) == "user"


def test_the_build_finds_the_capabilities_a_policy_imports(tmp_path):
    (tmp_path / "app.py").write_text("from nats_callout import Grant, oidc\nimport nats_callout.kv\n")
    (tmp_path / "other.py").write_text("from nats_callout import (\n    password,\n)\nfrom nats_callout.nkey import verify\n")
    assert used_capabilities([str(tmp_path)]) == {"oidc", "kv", "password", "nkey"}
    # Comments, strings, tests and hidden folders do not count.
    (tmp_path / "app.py").write_text('"""uses nats_callout.kv"""\nfrom nats_callout import Grant  # kv\n')
    (tmp_path / "other.py").unlink()
    (tmp_path / "test_app.py").write_text("from nats_callout import testing, kv\n")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "lib.py").write_text("from nats_callout import oidc\n")
    assert used_capabilities([str(tmp_path)]) == set()
