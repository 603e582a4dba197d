import pytest

from nats_callout import Request, deny_reason, grant_of, testing

from app import KvUsers

KEY = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4"


@pytest.fixture
def policy():
    testing.reset()
    testing.put_kv("users", "alice", '{"password_hash": "$argon2id$alice", "account": "APP", "publish": ["orders.>"]}')
    testing.set_password_hash("$argon2id$alice", "wonderland")
    testing.put_kv("users", KEY, '{"account": "OTHER"}')
    testing.accept_signature(KEY, "nonce-1", "good")
    return KvUsers('{"bucket": "users"}')


def with_nkey(signature):
    request = Request.for_test()
    request.connect_opts.nkey = KEY
    request.connect_opts.sig = signature
    request.client_info.nonce = "nonce-1"
    return request


def test_the_right_password_gets_the_records_grant(policy):
    grant = grant_of(policy.authorize(Request.for_test().with_user_and_password("alice", "wonderland")))
    assert grant.account == "APP" and grant.publish.allow == ["orders.>"]


def test_wrong_passwords_unknown_users_and_stale_records_are_denied(policy):
    assert deny_reason(policy.authorize(Request.for_test().with_user_and_password("alice", "x"))) == 'user "alice": wrong password'
    assert deny_reason(policy.authorize(Request.for_test().with_user_and_password("bob", "x"))) == 'no user "bob" in bucket "users"'
    testing.make_kv_unavailable("users")
    assert "unavailable" in deny_reason(policy.authorize(Request.for_test().with_user_and_password("alice", "wonderland")))


def test_an_nkey_user_is_admitted_only_with_its_signature(policy):
    assert grant_of(policy.authorize(with_nkey("good"))).account == "OTHER"
    assert deny_reason(policy.authorize(with_nkey("forged"))) == "nkey refused: bad signature"


def test_settings_need_a_bucket():
    with pytest.raises(ValueError, match="settings.bucket"):
        KvUsers("{}")


def test_records_of_the_wrong_shape_are_refused_not_misread(policy):
    testing.put_kv("users", "eve", '{"account": "APP", "password_hash": "$argon2id$alice", "publish": "orders"}')
    reason = deny_reason(policy.authorize(Request.for_test().with_user_and_password("eve", "wonderland")))
    assert reason == 'the record of "eve" is not valid JSON: field publish is not a list'
    testing.put_kv("users", "nul", '{"account": "APP", "password_hash": "$argon2id$alice", "publish": null}')
    grant = grant_of(policy.authorize(Request.for_test().with_user_and_password("nul", "wonderland")))
    assert grant.account == "APP" and grant.publish.allow == []
    assert deny_reason(policy.authorize(Request.for_test().with_user_and_password("josé", "x"))) == 'no user "josé" in bucket "users"'
