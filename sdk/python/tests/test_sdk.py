import pytest

from nats_callout import (
    ConnectionType,
    Grant,
    Request,
    deny,
    deny_reason,
    export_policy,
    grant_of,
    is_allow,
)
from componentize_py_types import Err


def test_the_builder_fills_every_field():
    decision = (
        Grant.to("APP")
        .named("alice")
        .publish("app.>")
        .deny_publish("app.secret")
        .subscribe("_INBOX.>")
        .deny_subscribe("app.secret")
        .allow_responses(1, 30_000)
        .expires_in(600)
        .tags("team:a")
        .from_networks("10.0.0.0/8")
        .during("08:00:00", "18:00:00")
        .in_time_zone("Europe/Paris")
        .connection_types(ConnectionType.STANDARD, ConnectionType.WEBSOCKET)
        .allow()
    )
    assert is_allow(decision)
    grant = grant_of(decision)
    assert grant.account == "APP" and grant.name == "alice"
    assert (grant.publish.allow, grant.publish.deny) == (["app.>"], ["app.secret"])
    assert (grant.subscribe.allow, grant.subscribe.deny) == (["_INBOX.>"], ["app.secret"])
    assert (grant.responses.max_messages, grant.responses.ttl_ms) == (1, 30_000)
    assert grant.expires_in_secs == 600 and grant.tags == ["team:a"]
    assert (grant.limits.subs, grant.limits.data, grant.limits.payload) == (None, None, None)
    assert grant.limits.source_cidrs == ["10.0.0.0/8"]
    assert [(w.start, w.end) for w in grant.limits.times] == [("08:00:00", "18:00:00")]
    assert grant.limits.times_location == "Europe/Paris"
    assert grant.connection_types == [ConnectionType.STANDARD, ConnectionType.WEBSOCKET]
    assert deny_reason(decision) is None
    assert deny_reason(deny("no")) == "no"


def test_accessors_read_the_credentials_and_with_copies():
    base = Request.for_test()
    assert base.token() is None and base.user_and_password() is None
    token = base.with_token("t")
    assert token.token() == "t" and token.client_info.user == "[REDACTED]"
    assert base.token() is None, "the original is unchanged"
    user = base.with_user_and_password("u", "p").with_client_host("10.0.0.1")
    assert user.user_and_password() == ("u", "p")
    assert user.client_host() == "10.0.0.1"
    assert user.client_certificate() is None


def test_export_policy_turns_a_refusal_into_an_err_and_guards_authorize():
    def refuse(settings):
        raise ValueError("bad settings")

    world = export_policy(refuse)()
    with pytest.raises(Err) as refused:
        world.init("{}")
    assert refused.value.value == "bad settings"
    assert deny_reason(world.authorize(Request.for_test().raw)) == "policy was not initialized"

    class Echo:
        def __init__(self, settings):
            self.settings = settings

        def authorize(self, request):
            return deny(self.settings)

    echo = export_policy(Echo)()
    echo.init('{"a":1}')
    assert deny_reason(echo.authorize(Request.for_test().raw)) == '{"a":1}'


def test_lists_and_strings_mix_and_non_strings_are_refused():
    grant = grant_of(Grant.to("APP").publish(["a.>", "b.>"], "c.>").tags(("t",)).allow())
    assert grant.publish.allow == ["a.>", "b.>", "c.>"] and grant.tags == ["t"]
    with pytest.raises(TypeError, match="expected a string"):
        Grant.to("APP").publish(3)


def test_an_empty_connection_name_is_kept():
    request = Request.for_test()
    request.raw.connect_opts.name = ""
    request.raw.client_info.name = "server-side"
    assert request.connection_name() == ""


def test_per_user_limits_are_deprecated():
    # nats-server does not apply them to callout users; the host denies them.
    with pytest.warns(DeprecationWarning, match="denies a grant that sets one"):
        grant = grant_of(Grant.to("APP").max_payload(1024).allow())
    assert grant.limits.payload == 1024
