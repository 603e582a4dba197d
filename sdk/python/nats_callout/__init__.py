"""Write nats-callout authorization policies in Python.

A policy is a class built from its settings, with an ``authorize`` method,
exported with one line::

    from nats_callout import Grant, Request, deny, export_policy

    class OnlyAlice:
        def __init__(self, settings: str):
            pass  # parse the settings; raise to refuse them

        def authorize(self, request: Request):
            if request.user_and_password() == ("alice", "wonderland"):
                return (Grant.to("APP").publish("app.>").subscribe("app.>", "_INBOX.>")
                        .expires_in(600).allow())
            return deny("unknown user")

    WitWorld = export_policy(OnlyAlice)

Build it with ``python -m nats_callout.build app -o policy.wasm`` (``app`` is
the module's name) and point the host's ``[policy] wasm`` at the file. The same
code unit-tests natively with pytest: build requests with
:meth:`Request.for_test`.

The class is built once, when the host loads the policy; the host then
snapshots the initialized policy and runs every ``authorize`` call in a fresh
copy of it, so whatever ``__init__`` parsed is ready on every call and nothing
leaks between calls — unless the operator sets ``calls_per_instance`` above 1,
in which case module state persists across the calls one instance serves. The
``random`` module's state may be frozen in the snapshot: draw from ``secrets`` or
``os.urandom``, which read the host's random source on every call. The request and decision types are those generated from
``wit/policy.wit`` (the reference for every field), in snake_case.
"""

from __future__ import annotations

import copy
import sys
import warnings
from pathlib import Path

try:  # Inside a component, componentize-py provides the bindings...
    import wit_world
except ImportError:  # ...natively (tests), the copy generated from the same WIT.
    sys.path.insert(0, str(Path(__file__).parent / "_native"))
    import wit_world

from componentize_py_types import Err
from wit_world.imports import types
from wit_world.imports.types import (
    AuthRequest,
    ClientInfo,
    ClientTls,
    ConnectionType,
    ConnectOpts,
    Decision,
    Decision_Allow,
    Decision_Deny,
    Limits,
    LogLevel,
    Permission,
    ResponsePermission,
    ServerId,
    TimeWindow,
)

from . import log

__all__ = [
    "AuthRequest",
    "ClientInfo",
    "ClientTls",
    "ConnectOpts",
    "ConnectionType",
    "Decision",
    "Grant",
    "Limits",
    "LogLevel",
    "Permission",
    "Request",
    "ResponsePermission",
    "ServerId",
    "TimeWindow",
    "deny",
    "deny_reason",
    "export_policy",
    "grant_of",
    "is_allow",
    "log",
]


def export_policy(make):
    """Returns the ``WitWorld`` class componentize-py exports, for a policy
    built by ``make(settings)`` (usually the policy class itself).

    ``settings`` is the ``[policy.settings]`` table of the host's
    configuration, as JSON text (``{}`` when there is none). An exception
    refuses the settings: the host does not load the policy and reports its
    message.
    """
    state = {}

    class WitWorld(wit_world.WitWorld):
        def init(self, settings: str) -> None:
            try:
                policy = make(settings)
            except Exception as error:  # noqa: BLE001 - any failure refuses the settings
                raise Err(str(error) or type(error).__name__) from None
            if not callable(getattr(policy, "authorize", None)):
                raise Err("the policy factory returned no object with an authorize method")
            state["policy"] = policy

        def authorize(self, request: AuthRequest) -> Decision:
            policy = state.get("policy")
            if policy is None:
                return deny("policy was not initialized")
            return policy.authorize(Request(request))

    return WitWorld


class Request:
    """One connection attempt: the fields of the WIT ``auth-request``
    (``request.connect_opts.user``...), plus accessors."""

    __slots__ = ("raw",)

    def __init__(self, raw: AuthRequest):
        self.raw = raw

    def __getattr__(self, name):
        return getattr(self.raw, name)

    def token(self) -> str | None:
        """The token the client sent (``nats://token@host``)."""
        return self.raw.connect_opts.auth_token

    def user_and_password(self) -> tuple[str, str] | None:
        """The user name and password the client sent, if it sent both."""
        opts = self.raw.connect_opts
        if opts.user is None or opts.pass_ is None:
            return None
        return (opts.user, opts.pass_)

    def user(self) -> str | None:
        """The user name the client sent."""
        return self.raw.connect_opts.user

    def nkey(self) -> str | None:
        """The client's nkey (in config mode the server has not checked its
        signature: compare ``connect_opts.sig``)."""
        return self.raw.connect_opts.nkey

    def jwt(self) -> str | None:
        """The user JWT the client sent."""
        return self.raw.connect_opts.jwt

    def client_host(self) -> str | None:
        """The client's IP address."""
        return self.raw.client_info.host

    def connection_name(self) -> str | None:
        """The client's connection name (from CONNECT, else the server's view)."""
        name = self.raw.connect_opts.name
        return name if name is not None else self.raw.client_info.name

    def client_certificate(self) -> str | None:
        """The leaf certificate of the client's first verified TLS chain (else
        its first certificate), as PEM."""
        tls = self.raw.client_tls
        if tls is None:
            return None
        if tls.verified_chains and tls.verified_chains[0]:
            return tls.verified_chains[0][0]
        return tls.certs[0] if tls.certs else None

    @staticmethod
    def for_test() -> Request:
        """A request as a plain client connecting to a local server would send
        it, with no credentials; add them with the ``with_*`` methods."""
        return Request(
            AuthRequest(
                server=ServerId(
                    name="test-server",
                    host="127.0.0.1",
                    id="NTESTSERVER",
                    version="2.11.0",
                    cluster=None,
                    tags=[],
                    xkey=None,
                ),
                user_nkey="UTESTUSER",
                client_info=ClientInfo(
                    host="127.0.0.1",
                    id=1,
                    user=None,
                    name=None,
                    tags=[],
                    name_tag=None,
                    kind="Client",
                    client_type="nats",
                    mqtt_id=None,
                    nonce=None,
                ),
                connect_opts=ConnectOpts(
                    jwt=None,
                    nkey=None,
                    sig=None,
                    auth_token=None,
                    user=None,
                    pass_=None,
                    name=None,
                    lang="python",
                    version="0.0.0",
                    protocol=1,
                ),
                client_tls=None,
                issuer="ATESTISSUER",
            )
        )

    def _with(self, change) -> Request:
        raw = copy.deepcopy(self.raw)
        change(raw)
        return Request(raw)

    def with_token(self, token: str) -> Request:
        """The same request with a token, as the server sends it."""

        def change(raw):
            raw.connect_opts.auth_token = token
            raw.client_info.user = "[REDACTED]"

        return self._with(change)

    def with_user_and_password(self, user: str, password: str) -> Request:
        """The same request with a user name and password."""

        def change(raw):
            raw.connect_opts.user = user
            raw.connect_opts.pass_ = password
            raw.client_info.user = user

        return self._with(change)

    def with_client_host(self, address: str) -> Request:
        """The same request coming from another address."""

        def change(raw):
            raw.client_info.host = address

        return self._with(change)


def _strings(items) -> list:
    """The arguments as a list of strings: each may be a string or a list of
    them (``publish("a", "b")`` and ``publish(["a", "b"])`` are the same)."""
    flat = []
    for item in items:
        if isinstance(item, (list, tuple)):
            flat.extend(item)
        else:
            flat.append(item)
    for item in flat:
        if not isinstance(item, str):
            raise TypeError(f"expected a string, got {type(item).__name__}: {item!r}")
    return flat


class Grant:
    """Builds the grant of an allow decision; every method chains."""

    __slots__ = ("_grant",)

    def __init__(self, account: str):
        self._grant = types.Grant(
            account=account,
            name=None,
            publish=Permission(allow=[], deny=[]),
            subscribe=Permission(allow=[], deny=[]),
            responses=None,
            expires_in_secs=None,
            tags=[],
            limits=Limits(
                subs=None,
                data=None,
                payload=None,
                source_cidrs=[],
                times=[],
                times_location=None,
            ),
            connection_types=[],
        )

    @staticmethod
    def to(account: str) -> Grant:
        """A grant into ``account`` (by name, such as ``APP``), with the
        account's default permissions until you add some."""
        return Grant(account)

    def named(self, name: str) -> Grant:
        """The name shown for the user in monitoring."""
        self._grant.name = name
        return self

    def publish(self, *subjects: str) -> Grant:
        """Subjects the user may publish to."""
        self._grant.publish.allow.extend(_strings(subjects))
        return self

    def deny_publish(self, *subjects: str) -> Grant:
        """Subjects the user may not publish to."""
        self._grant.publish.deny.extend(_strings(subjects))
        return self

    def subscribe(self, *subjects: str) -> Grant:
        """Subjects the user may subscribe to."""
        self._grant.subscribe.allow.extend(_strings(subjects))
        return self

    def deny_subscribe(self, *subjects: str) -> Grant:
        """Subjects the user may not subscribe to."""
        self._grant.subscribe.deny.extend(_strings(subjects))
        return self

    def allow_responses(self, max_messages: int, ttl_ms: int) -> Grant:
        """Lets the user reply to requests it receives: up to ``max_messages``
        replies per request, within ``ttl_ms``."""
        self._grant.responses = ResponsePermission(max_messages=max_messages, ttl_ms=ttl_ms)
        return self

    def expires_in(self, seconds: int) -> Grant:
        """How long the user stays connected, in seconds."""
        self._grant.expires_in_secs = int(seconds)
        return self

    def tags(self, *tags: str) -> Grant:
        """Tags recorded in the user JWT."""
        self._grant.tags.extend(_strings(tags))
        return self

    def max_subscriptions(self, subs: int) -> Grant:
        """Maximum number of subscriptions.

        Deprecated: nats-server does not apply per-user limits to auth callout users, so nats-callout denies a grant that sets one (other than -1): set ``max_subs`` in the account's limits instead."""
        warnings.warn(
            "max_subscriptions: nats-server does not apply per-user limits to auth callout users, so nats-callout denies a grant that sets one (other than -1)",
            DeprecationWarning,
            stacklevel=2,
        )
        self._grant.limits.subs = subs
        return self

    def max_data(self, size: int) -> Grant:
        """Maximum bytes the user may publish in total.

        Deprecated: nats-server does not apply per-user limits to auth callout users, so nats-callout denies a grant that sets one (other than -1): nats-server has no byte limit for them."""
        warnings.warn(
            "max_data: nats-server does not apply per-user limits to auth callout users, so nats-callout denies a grant that sets one (other than -1)",
            DeprecationWarning,
            stacklevel=2,
        )
        self._grant.limits.data = size
        return self

    def max_payload(self, size: int) -> Grant:
        """Maximum size of one message.

        Deprecated: nats-server does not apply per-user limits to auth callout users, so nats-callout denies a grant that sets one (other than -1): set ``max_payload`` in the account's limits instead."""
        warnings.warn(
            "max_payload: nats-server does not apply per-user limits to auth callout users, so nats-callout denies a grant that sets one (other than -1)",
            DeprecationWarning,
            stacklevel=2,
        )
        self._grant.limits.payload = size
        return self

    def from_networks(self, *cidrs: str) -> Grant:
        """Networks the user may connect from, such as ``10.0.0.0/8``."""
        self._grant.limits.source_cidrs.extend(_strings(cidrs))
        return self

    def during(self, start: str, end: str) -> Grant:
        """A daily window (``HH:MM:SS`` to ``HH:MM:SS``) during which the user
        may be connected. Needs :meth:`in_time_zone`."""
        self._grant.limits.times.append(TimeWindow(start=start, end=end))
        return self

    def in_time_zone(self, location: str) -> Grant:
        """The IANA time zone of the windows given with :meth:`during`."""
        self._grant.limits.times_location = location
        return self

    def connection_types(self, *connection_types: ConnectionType) -> Grant:
        """The connection types the user may use."""
        for item in connection_types:
            self._grant.connection_types.extend(item if isinstance(item, (list, tuple)) else [item])
        return self

    def build(self) -> types.Grant:
        """The grant record: the builder's own, handed over (do not keep
        building on it afterwards)."""
        return self._grant

    def allow(self) -> Decision:
        """Admits the user with this grant."""
        return Decision_Allow(self.build())


def deny(reason: str) -> Decision:
    """Refuses the user, with a reason for the operator's logs (never shown to
    the client)."""
    return Decision_Deny(str(reason))


def is_allow(decision: Decision) -> bool:
    """Whether the decision admits the user."""
    return isinstance(decision, Decision_Allow)


def grant_of(decision: Decision) -> types.Grant | None:
    """The grant, when the decision admits the user."""
    return decision.value if isinstance(decision, Decision_Allow) else None


def deny_reason(decision: Decision) -> str | None:
    """The reason, when the decision refuses the user."""
    return decision.value if isinstance(decision, Decision_Deny) else None
