"""Capability ``nkey``: nkey signatures checked by the host
(``[policy.capabilities] nkey = true``). nats-server does not check a
client's nkey signature for auth callout users: :func:`verified_client_key`
does."""

from __future__ import annotations

from typing import TYPE_CHECKING

try:
    from wit_world.imports import nkey as _host
except ImportError:  # a component built without it
    raise ImportError(
        "this component was built without the nkey capability: build it with "
        "`python -m nats_callout.build ... --capabilities nkey`"
    ) from None

from . import testing
from .capability import CapabilityError, calling

if TYPE_CHECKING:
    from . import Request


def verify(key: str, message: bytes | str, signature: str) -> None:
    """Checks that ``signature`` (base64) is ``key``'s signature of
    ``message``; raises :class:`~nats_callout.capability.CapabilityError`
    ``invalid-key``, ``malformed-signature`` or ``bad-signature``."""
    data = message.encode() if isinstance(message, str) else message
    calling("nkey", lambda: _host.verify(key, data, signature), lambda: testing._verify_nkey(key, data, signature))


def key_kind(key: str) -> str:
    """What a public nkey names: ``user``, ``account``, ``server``..."""
    kind = calling("nkey", lambda: _host.parse_public_key(key), lambda: testing._parse_public_key(key))
    return kind if isinstance(kind, str) else kind.name.lower()


def verified_client_key(request: Request) -> str | None:
    """The client's nkey once its signature of the server's nonce verifies;
    ``None`` when it sent no nkey; raises when nothing proves it (no nonce,
    no signature) or the signature does not verify."""
    key = request.connect_opts.nkey
    if key is None:
        return None
    nonce = request.client_info.nonce
    if nonce is None:
        raise CapabilityError(
            "nkey",
            "malformed-signature",
            "the server sent the client no nonce to sign (in config mode it sends one only when an nkey user is configured)",
        )
    if request.connect_opts.sig is None:
        raise CapabilityError("nkey", "malformed-signature", "the client sent an nkey without a signature")
    verify(key, nonce, request.connect_opts.sig)
    return key
