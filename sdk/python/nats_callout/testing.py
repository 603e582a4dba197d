"""Test doubles of the capabilities, for native unit tests (pytest): tell
them what the host would answer. Calls in a component go to the host."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from componentize_py_types import Err


@dataclass
class _Case:
    """A generated error case's stand-in: its class name says its kind."""

    value: str | None = None


def _error(kind: str, value: str | None = None) -> Err:
    name = "X_" + "".join(part.capitalize() for part in kind.split("-"))
    return Err(type(name, (_Case,), {})(value))


@dataclass
class _Doubles:
    kv: dict[str, dict[str, bytes]] = field(default_factory=dict)
    unavailable: set[str] = field(default_factory=set)
    tokens: dict[str, tuple[str, str]] = field(default_factory=dict)
    refused_tokens: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)
    signatures: set[tuple[str, bytes, str]] = field(default_factory=set)


_doubles = _Doubles()


def reset() -> None:
    """Forgets everything told so far."""
    global _doubles
    _doubles = _Doubles()


def put_kv(bucket: str, key: str, value: bytes | str) -> None:
    """Puts ``key`` = ``value`` in ``bucket`` (granted from then on)."""
    _doubles.kv.setdefault(bucket, {})[key] = value.encode() if isinstance(value, str) else value


def delete_kv(bucket: str, key: str) -> None:
    """Deletes ``key`` from ``bucket``."""
    _doubles.kv.setdefault(bucket, {}).pop(key, None)


def make_kv_unavailable(bucket: str) -> None:
    """Makes reads of ``bucket`` fail as when the host's copy may be stale
    (the bucket counts as granted from then on)."""
    _doubles.kv.setdefault(bucket, {})
    _doubles.unavailable.add(bucket)


def accept_token(token: str, issuer: str, claims: str | dict[str, Any]) -> None:
    """Makes ``token`` verify, from ``issuer``, with ``claims``."""
    _doubles.tokens[token] = (issuer, claims if isinstance(claims, str) else json.dumps(claims))


def refuse_token(token: str, kind: str, detail: str | None = None) -> None:
    """Makes ``token`` fail with ``kind`` (others fail as ``bad-signature``)."""
    _doubles.refused_tokens[token] = (kind, detail)


def set_password_hash(hash: str, password: str) -> None:
    """Makes ``hash`` the hash of ``password`` (other hashes are malformed)."""
    _doubles.hashes[hash] = password


def accept_signature(key: str, message: bytes | str, signature: str) -> None:
    """Makes ``signature`` a valid signature of ``message`` by ``key``."""
    data = message.encode() if isinstance(message, str) else message
    _doubles.signatures.add((key, data, signature))


def _kv_get(bucket: str, key: str) -> bytes | None:
    if bucket not in _doubles.kv:
        raise _error("not-granted", bucket)
    if bucket in _doubles.unavailable:
        raise _error("unavailable", f'bucket "{bucket}": (test double)')
    return _doubles.kv[bucket].get(key)


@dataclass
class _Verified:
    issuer: str
    claims: str


def _verify_token(token: str) -> _Verified:
    if token in _doubles.tokens:
        return _Verified(*_doubles.tokens[token])
    kind, detail = _doubles.refused_tokens.get(token, ("bad-signature", None))
    raise _error(kind, detail)


def _verify_password(password: str, hash: str) -> bool:
    if hash not in _doubles.hashes:
        raise _error("malformed-hash", "not a hash the test doubles know (set_password_hash)")
    return _doubles.hashes[hash] == password


_KINDS = {"O": "operator", "A": "account", "U": "user", "N": "server", "C": "cluster", "X": "curve"}


def _parse_public_key(key: str) -> str:
    if len(key) != 56 or key[0] not in _KINDS:
        raise _error("invalid-key", "not a public nkey")
    return _KINDS[key[0]]


def _verify_nkey(key: str, message: bytes, signature: str) -> None:
    _parse_public_key(key)
    if (key, message, signature) not in _doubles.signatures:
        raise _error("bad-signature")
