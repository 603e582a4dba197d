"""Capability ``password``: a password checked against a hash by the host,
in constant time (``[policy.capabilities.password]``): argon2id/i/d, scrypt,
pbkdf2-sha256 (PHC and passlib), bcrypt. Give the policy a ``timeout_ms``
that allows a hash."""

from __future__ import annotations

try:
    from wit_world.imports import password as _host
except ImportError:  # a component built without it
    raise ImportError(
        "this component was built without the password capability: build it with "
        "`python -m nats_callout.build ... --capabilities password`"
    ) from None

from . import testing
from .capability import calling


def verify(password: str, hash: str) -> bool:
    """Whether ``password`` matches ``hash``. Raises
    :class:`~nats_callout.capability.CapabilityError` ``malformed-hash`` or
    ``too-cheap`` (below the operator's floor)."""
    return calling(
        "password", lambda: _host.verify(password, hash), lambda: testing._verify_password(password, hash)
    )
