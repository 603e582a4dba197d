"""Example policy, in Python: the kv-users policy of plugins/kv-users (Go),
with the SDK's capabilities. Users are JSON records in a NATS KV bucket an
admin edits at run time, at the user's name (user/password clients, checked
against the record's ``password_hash``) or at the user's public nkey (nkey
clients, whose signature of the server's nonce the host checks). It passes
the same conformance kit (tests/conformance/kv-users).

Host configuration::

    [policy.capabilities]
    nkey = true
    [policy.capabilities.password]
    [policy.capabilities.kv]
    buckets = ["users"]

    [policy.settings]
    bucket = "users"
"""

import json

from nats_callout import Grant, Request, deny, export_policy, kv, nkey, password
from nats_callout.capability import CapabilityError


class KvUsers:
    def __init__(self, settings_json: str):
        try:
            settings = json.loads(settings_json)
        except ValueError as error:
            raise ValueError(f"invalid settings: {error}") from None
        bucket = settings.get("bucket") if isinstance(settings, dict) else None
        if not isinstance(bucket, str) or not bucket:
            raise ValueError("settings.bucket is missing: the KV bucket holding the user records")
        self.bucket = bucket

    def authorize(self, request: Request):
        try:
            key = nkey.verified_client_key(request)
        except CapabilityError as error:
            return deny(f"nkey refused: {error}")
        if key is not None:
            record, refused = self.lookup(key)
            return grant(record) if record is not None else deny(refused)
        credentials = request.user_and_password()
        if credentials is None:
            return deny("no credentials: connect with a user and password, or an nkey")
        user, secret = credentials
        record, refused = self.lookup(user)
        if record is None:
            return deny(refused)
        hash = record.get("password_hash")
        if not hash:
            return deny(f"user {quoted(user)} has no password_hash: it signs in with its nkey")
        try:
            matched = password.verify(secret, hash)
        except CapabilityError as error:
            return deny(f"user {quoted(user)}: {error}")
        if not matched:
            return deny(f"user {quoted(user)}: wrong password")
        return grant(record)

    def lookup(self, key: str):
        """The record at ``key``, or why there is none."""
        try:
            value = kv.get(self.bucket, key)
        except CapabilityError as error:
            return None, f"user records {error}"
        if value is None:
            return None, f"no user {quoted(key)} in bucket {quoted(self.bucket)}"
        try:
            record = parse_record(value)
        except ValueError as error:
            return None, f"the record of {quoted(key)} is not valid JSON: {error}"
        if not record.get("account"):
            return None, f"the record of {quoted(key)} names no account"
        return record, None


# A record's fields and the type each must have (as Go's decoding of the
# same record in plugins/kv-users holds them; null is absent, other fields
# are ignored).
FIELDS = {
    "password_hash": str,
    "account": str,
    "name": str,
    "publish": list,
    "subscribe": list,
    "expires_in_secs": int,
}


def parse_record(value: bytes) -> dict:
    record = json.loads(value)
    if not isinstance(record, dict):
        raise ValueError("not an object")
    parsed = {}
    for name, kind in FIELDS.items():
        field = record.get(name)
        if field is None:
            continue
        if not isinstance(field, kind) or isinstance(field, bool):
            raise ValueError(f"field {name} is not a {kind.__name__}")
        if kind is list and not all(isinstance(item, str) for item in field):
            raise ValueError(f"field {name} is not a list of strings")
        if kind is int and field < 0:
            raise ValueError(f"field {name} is negative")
        parsed[name] = field
    return parsed


def quoted(text: str) -> str:
    """``text`` in double quotes, as Go's %q shows printable text."""
    return json.dumps(text, ensure_ascii=False)


def grant(record: dict):
    granted = Grant.to(record["account"]).publish(*record.get("publish", [])).subscribe(*record.get("subscribe", []))
    if record.get("name"):
        granted = granted.named(record["name"])
    if record.get("expires_in_secs"):
        granted = granted.expires_in(record["expires_in_secs"])
    return granted.allow()


WitWorld = export_policy(KvUsers)
