"""Capability ``password``: a password checked against a hash by the host,
in constant time (``[policy.capabilities.password]``): argon2id/i/d, scrypt,
pbkdf2-sha256 (PHC and passlib), bcrypt. Give the policy a ``timeout_ms``
that allows a hash."""

from __future__ import annotations

from wit_world.imports import password as _host

from . import testing
from .capability import calling


def verify(password: str, hash: str) -> bool:
    """Whether ``password`` matches ``hash``. Raises
    :class:`~nats_callout.capability.CapabilityError` ``malformed-hash`` or
    ``too-cheap`` (below the operator's floor)."""
    return calling(
        "password", lambda: _host.verify(password, hash), lambda: testing._verify_password(password, hash)
    )
