import json

import pytest

from nats_callout import Request, deny_reason, grant_of, is_allow

from app import TokenTable

SETTINGS = json.dumps(
    {
        "tokens": {"s3cr3t": {"account": "APP", "publish": ["app.>"], "subscribe": ["_INBOX.>"]}},
        "users": {"alice": {"password": "wonderland", "account": "APP", "expires_in_secs": 60}},
    }
)


def policy():
    return TokenTable(SETTINGS)


def test_a_known_token_gets_its_grant():
    grant = grant_of(policy().authorize(Request.for_test().with_token("s3cr3t")))
    assert grant.account == "APP"
    assert grant.publish.allow == ["app.>"]
    assert grant.subscribe.allow == ["_INBOX.>"]


def test_an_unknown_token_is_denied():
    assert deny_reason(policy().authorize(Request.for_test().with_token("guess"))) == "unknown token"


def test_users_need_the_right_password():
    ok = grant_of(policy().authorize(Request.for_test().with_user_and_password("alice", "wonderland")))
    assert ok.expires_in_secs == 60 and ok.name == "alice"
    wrong = policy().authorize(Request.for_test().with_user_and_password("alice", "x"))
    assert deny_reason(wrong) == 'wrong password for user "alice"'
    unknown = policy().authorize(Request.for_test().with_user_and_password("bob", "x"))
    assert deny_reason(unknown) == 'unknown user "bob"'


def test_anonymous_clients_are_denied():
    assert not is_allow(policy().authorize(Request.for_test()))


@pytest.mark.parametrize(
    "settings, message",
    [("{}", "no `tokens`"), ('{"tokens": 3}', "invalid settings"), ('{"tokenz": {}}', "tokenz")],
)
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        TokenTable(settings)
