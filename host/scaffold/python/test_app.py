import pytest

from nats_callout import Request, deny_reason, grant_of

from app import Users

SETTINGS = '{"users": {"alice": {"password": "wonderland", "account": "APP", "publish": ["app.alice.>"]}}}'


def test_a_user_with_the_right_password_gets_a_grant():
    grant = grant_of(Users(SETTINGS).authorize(Request.for_test().with_user_and_password("alice", "wonderland")))
    assert grant.account == "APP"
    assert grant.publish.allow == ["app.alice.>"]


def test_a_wrong_password_is_denied():
    decision = Users(SETTINGS).authorize(Request.for_test().with_user_and_password("alice", "guess"))
    assert deny_reason(decision) == "unknown user or wrong password"


def test_settings_without_users_are_refused():
    with pytest.raises(ValueError, match="no users"):
        Users('{"users": {}}')
