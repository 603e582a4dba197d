"""{{name}}: a nats-callout policy. It admits the users listed in its
settings, by user name and password, with their account and permissions,
and denies everyone else.

Settings (the ``[policy.settings]`` table of callout.toml)::

    [policy.settings.users.alice]
    password = "wonderland"
    account = "APP"
    publish = ["app.alice.>"]
    subscribe = ["app.>", "_INBOX.>"]

Store password hashes rather than passwords in real settings: the password
capability verifies them (``nats_callout.password``).
"""

import hmac
import json

from nats_callout import Grant, Request, deny, export_policy

USER_KEYS = {"password", "account", "publish", "subscribe"}


def subjects(name: str, key: str, value) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise ValueError(f'invalid settings: `{key}` of user "{name}" is not a list of subjects')
    return value


class Users:
    def __init__(self, settings: str):
        """Runs once, when the host loads the policy; raising refuses it."""
        parsed = json.loads(settings)
        if not isinstance(parsed, dict) or not isinstance(parsed.get("users"), dict):
            raise ValueError("invalid settings: `users` is not a table")
        unknown = sorted(set(parsed) - {"users"})
        if unknown:
            raise ValueError(f"invalid settings: unknown field `{unknown[0]}`")
        self.users = {}
        for name, entry in parsed["users"].items():
            if not isinstance(entry, dict):
                raise ValueError(f'invalid settings: user "{name}" is not a table')
            unknown = sorted(set(entry) - USER_KEYS)
            if unknown:
                raise ValueError(f'invalid settings: unknown field `{unknown[0]}` in user "{name}"')
            if not isinstance(entry.get("password"), str) or not isinstance(entry.get("account"), str):
                raise ValueError(f'invalid settings: user "{name}" needs `password` and `account`')
            if not entry["password"]:
                raise ValueError(f'invalid settings: user "{name}" has an empty password')
            self.users[name] = {
                "password": entry["password"],
                "account": entry["account"],
                "publish": subjects(name, "publish", entry.get("publish")),
                "subscribe": subjects(name, "subscribe", entry.get("subscribe")),
            }
        if not self.users:
            raise ValueError("invalid settings: no users, so every client would be denied")

    def authorize(self, request: Request):
        """Runs for every connecting client, in a fresh sandbox."""
        credentials = request.user_and_password()
        if credentials is None:
            return deny("no user name and password")
        name, password = credentials
        user = self.users.get(name)
        # compare_digest: time that does not depend on where the secrets differ.
        if user is None or not hmac.compare_digest(user["password"].encode(), password.encode()):
            return deny("unknown user or wrong password")
        return Grant.to(user["account"]).named(name).publish(*user["publish"]).subscribe(*user["subscribe"]).allow()


WitWorld = export_policy(Users)
