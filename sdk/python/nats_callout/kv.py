"""Capability ``kv``: reads of NATS KV buckets the operator granted
(``[policy.capabilities.kv] buckets = [...]``), from the host's mirror of
each: microseconds, current within milliseconds of a ``nats kv put``."""

from __future__ import annotations

try:
    from wit_world.imports import kv as _host
except ImportError:  # a component built without it
    raise ImportError(
        "this component was built without the kv capability: build it with "
        "`python -m nats_callout.build ... --capabilities kv`"
    ) from None

from . import testing
from .capability import calling


def get(bucket: str, key: str) -> bytes | None:
    """The value of ``key`` in ``bucket``, or ``None`` when absent or
    deleted. Raises :class:`~nats_callout.capability.CapabilityError`
    ``unavailable`` when the host's copy may be stale (deny then),
    ``not-granted`` for a bucket the operator did not grant."""
    return calling("kv", lambda: _host.get(bucket, key), lambda: testing._kv_get(bucket, key))


def get_text(bucket: str, key: str) -> str | None:
    """The same, as UTF-8 text."""
    value = get(bucket, key)
    return None if value is None else value.decode("utf-8", "replace")
