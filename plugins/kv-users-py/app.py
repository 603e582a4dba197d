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
            return deny(f"user {json.dumps(user)} has no password_hash: it signs in with its nkey")
        try:
            matched = password.verify(secret, hash)
        except CapabilityError as error:
            return deny(f"user {json.dumps(user)}: {error}")
        if not matched:
            return deny(f"user {json.dumps(user)}: wrong password")
        return grant(record)

    def lookup(self, key: str):
        """The record at ``key``, or why there is none."""
        try:
            value = kv.get(self.bucket, key)
        except CapabilityError as error:
            return None, f"user records {error}"
        if value is None:
            return None, f"no user {json.dumps(key)} in bucket {json.dumps(self.bucket)}"
        try:
            record = json.loads(value)
        except ValueError as error:
            return None, f"the record of {json.dumps(key)} is not valid JSON: {error}"
        if not isinstance(record, dict) or not record.get("account"):
            return None, f"the record of {json.dumps(key)} names no account"
        return record, None


def grant(record: dict):
    granted = Grant.to(record["account"]).publish(*record.get("publish", [])).subscribe(*record.get("subscribe", []))
    if record.get("name"):
        granted = granted.named(record["name"])
    if record.get("expires_in_secs"):
        granted = granted.expires_in(int(record["expires_in_secs"]))
    return granted.allow()


WitWorld = export_policy(KvUsers)
