"""Capability ``oidc``: tokens verified by the host against the keys of the
issuers the operator granted (``[[policy.capabilities.oidc]]``): signature,
``iss``, ``aud``, ``exp``, ``nbf``."""

from __future__ import annotations

from dataclasses import dataclass

try:
    from wit_world.imports import oidc as _host
except ImportError:  # a component built without it
    raise ImportError(
        "this component was built without the oidc capability: build it with "
        "`python -m nats_callout.build ... --capabilities oidc`"
    ) from None

from . import testing
from .capability import calling


@dataclass(frozen=True)
class VerifiedToken:
    """A token that verified: its issuer, and its claims as JSON text."""

    issuer: str
    claims: str


def verify(token: str) -> VerifiedToken:
    """Verifies ``token`` against the granted issuer its ``iss`` names;
    raises :class:`~nats_callout.capability.CapabilityError` ``expired``,
    ``wrong-audience``, ``bad-signature``..."""
    verified = calling("oidc", lambda: _host.verify(token), lambda: testing._verify_token(token))
    return VerifiedToken(verified.issuer, verified.claims)
