"""Example policy: admits clients listed in a table in its settings, by token
or by user name and password, and denies everyone else with a reason. It
behaves exactly like the Rust example in plugins/token-table.

Settings (the ``[policy.settings]`` table of the host's configuration)::

    [policy.settings.tokens.s3cr3t]
    account = "APP"
    publish = ["app.>"]
    subscribe = ["app.>", "_INBOX.>"]

    [policy.settings.users.alice]
    password = "wonderland"
    account = "APP"
    publish = ["app.alice.>"]
    expires_in_secs = 600
"""

import hmac
import json
from dataclasses import dataclass, field

from nats_callout import Grant, Request, deny, export_policy

ENTITLEMENT_KEYS = {"account", "name", "publish", "subscribe", "expires_in_secs"}


@dataclass
class Entitlement:
    """What a matching client gets."""

    account: str
    name: str | None = None
    publish: list[str] = field(default_factory=list)
    subscribe: list[str] = field(default_factory=list)
    expires_in_secs: int | None = None

    @staticmethod
    def parse(where: str, value, extra_keys=frozenset()):
        if not isinstance(value, dict):
            raise ValueError(f"invalid settings: {where} is not a table")
        unknown = sorted(set(value) - ENTITLEMENT_KEYS - extra_keys)
        if unknown:
            raise ValueError(f"invalid settings: unknown field `{unknown[0]}` in {where}")
        if not isinstance(value.get("account"), str):
            raise ValueError(f"invalid settings: {where} has no `account`")
        for key in ("publish", "subscribe"):
            subjects = value.get(key, [])
            if not isinstance(subjects, list) or not all(isinstance(s, str) for s in subjects):
                raise ValueError(f"invalid settings: `{key}` of {where} is not a list of subjects")
        expires = value.get("expires_in_secs")
        if expires is not None and (isinstance(expires, bool) or not isinstance(expires, int) or expires < 0):
            raise ValueError(f"invalid settings: `expires_in_secs` of {where} is not a number of seconds")
        return Entitlement(
            account=value["account"],
            name=value.get("name"),
            publish=value.get("publish", []),
            subscribe=value.get("subscribe", []),
            expires_in_secs=expires,
        )

    def grant(self, default_name: str):
        grant = (
            Grant.to(self.account)
            .named(self.name if self.name is not None else default_name)
            .publish(*self.publish)
            .subscribe(*self.subscribe)
        )
        if self.expires_in_secs is not None:
            grant.expires_in(self.expires_in_secs)
        return grant.allow()


def table(settings: dict, key: str) -> dict:
    value = settings.get(key, {})
    if not isinstance(value, dict):
        raise ValueError(f"invalid settings: `{key}` is not a table")
    return value


def same_secret(a: str, b: str) -> bool:
    """Compares secrets in time that does not depend on where they first differ."""
    return hmac.compare_digest(a.encode(), b.encode())


class TokenTable:
    def __init__(self, settings_json: str):
        try:
            settings = json.loads(settings_json)
        except ValueError as error:
            raise ValueError(f"invalid settings: {error}") from None
        if not isinstance(settings, dict):
            raise ValueError("invalid settings: not a table")
        unknown = sorted(set(settings) - {"tokens", "users"})
        if unknown:
            raise ValueError(f"invalid settings: unknown field `{unknown[0]}`")
        self.tokens = {
            token: Entitlement.parse("token entry", value) for token, value in table(settings, "tokens").items()
        }
        self.users = {}
        for user, value in table(settings, "users").items():
            where = f"user {json.dumps(user)}"
            entry = Entitlement.parse(where, value, frozenset({"password"}))
            if not isinstance(value.get("password"), str):
                raise ValueError(f"invalid settings: {where} has no `password`")
            self.users[user] = (value["password"], entry)
        if not self.tokens and not self.users:
            raise ValueError("invalid settings: no `tokens` and no `users`, so every client would be denied")

    def authorize(self, request: Request):
        token = request.token()
        if token is not None:
            for known, entry in self.tokens.items():
                if same_secret(known, token):
                    return entry.grant("token")
            return deny("unknown token")
        credentials = request.user_and_password()
        if credentials is not None:
            user, password = credentials
            if user not in self.users:
                return deny(f"unknown user {json.dumps(user, ensure_ascii=False)}")
            known_password, entry = self.users[user]
            if not same_secret(known_password, password):
                return deny(f"wrong password for user {json.dumps(user, ensure_ascii=False)}")
            return entry.grant(user)
        return deny("no token and no user name and password")


WitWorld = export_policy(TokenTable)
