"""What the capabilities share: their error, and the switch to the test
doubles of :mod:`nats_callout.testing` when the policy runs natively (the
generated bindings raise ``NotImplementedError`` outside a component).

Capabilities are checks the host does natively when the operator grants
them in the policy's ``[policy.capabilities]`` (see docs/capabilities.md):
:mod:`nats_callout.kv`, :mod:`nats_callout.oidc`,
:mod:`nats_callout.password`, :mod:`nats_callout.nkey`. A component imports
only the capabilities its modules use (``python -m nats_callout.build``
finds them), and the host refuses one importing a capability it was not
granted. They answer in ``authorize``, not in the settings factory.
"""

from __future__ import annotations

import re
from typing import Callable, TypeVar

from componentize_py_types import Err

T = TypeVar("T")


class CapabilityError(Exception):
    """A capability refused: ``kind`` is the WIT error case (``unavailable``,
    ``expired``...), ``detail`` its text, if any."""

    def __init__(self, capability: str, kind: str, detail: str | None = None):
        super().__init__(_message(kind, detail))
        self.capability = capability
        self.kind = kind
        self.detail = detail


# Each case in words, as every SDK words it (for deny reasons).
_WORDS = {"too-cheap": "hash too cheap", "invalid-key": "invalid nkey", "keys-unavailable": "issuer keys unavailable"}


def _message(kind: str, detail: str | None) -> str:
    if kind == "not-granted":
        return f'bucket "{detail}" is not granted'
    words = _WORDS.get(kind, kind.replace("-", " "))
    return f"{words}: {detail}" if detail else words


def _kind(error: object) -> str:
    """The WIT case of a generated error class: ``KvError_NotGranted`` → ``not-granted``."""
    case = type(error).__name__.split("_", 1)[-1]
    return re.sub(r"(?<!^)(?=[A-Z])", "-", case).lower()


def calling(capability: str, call: Callable[[], T], native: Callable[[], T]) -> T:
    """Calls the host (``call``), or the test double (``native``) outside a
    component; the host's ``Err`` becomes a :class:`CapabilityError`."""
    try:
        try:
            return call()
        except NotImplementedError:
            return native()
    except Err as refused:
        error = refused.value
        raise CapabilityError(capability, _kind(error), getattr(error, "value", None)) from None
