"""Conformance echo policy (Python): denies every request with the request
rendered as JSON, in the format of tests/conformance/README.md, so the kit can
check that every field reached the policy intact.

The user ``sandbox-probe`` instead gets what the policy could reach of the
filesystem, environment, arguments and network (the ``sandbox`` kit expects
nothing): ``file=false dir=false env=0 args=0 net=false``. The user
``sandbox-loop`` never returns, and ``sandbox-alloc`` allocates 1 GiB: the
host's deadline and memory cap must stop them."""

import json
import os
import socket
import sys

from nats_callout import Request, deny, export_policy


def echo(r: Request) -> dict:
    server, info, opts, tls = r.server, r.client_info, r.connect_opts, r.client_tls
    return {
        "server": {
            "name": server.name, "host": server.host, "id": server.id, "version": server.version,
            "cluster": server.cluster, "tags": server.tags, "xkey": server.xkey,
        },
        "user_nkey": r.user_nkey,
        "client_info": {
            "host": info.host, "id": None if info.id is None else str(info.id), "user": info.user,
            "name": info.name, "tags": info.tags, "name_tag": info.name_tag, "kind": info.kind,
            "client_type": info.client_type, "mqtt_id": info.mqtt_id, "nonce": info.nonce,
        },
        "connect_opts": {
            "jwt": opts.jwt, "nkey": opts.nkey, "sig": opts.sig, "auth_token": opts.auth_token,
            "user": opts.user, "pass": opts.pass_, "name": opts.name, "lang": opts.lang,
            "version": opts.version, "protocol": opts.protocol,
        },
        "client_tls": None if tls is None else {
            "version": tls.version, "cipher": tls.cipher, "certs": tls.certs, "verified_chains": tls.verified_chains,
        },
        "issuer": r.issuer,
    }


def reaches(attempt) -> bool:
    try:
        attempt()
        return True
    except Exception:  # noqa: BLE001 - any failure means denied
        return False


def probe() -> str:
    file = reaches(lambda: open("/etc/hostname").read())
    directory = reaches(lambda: os.listdir("/"))
    net = reaches(lambda: socket.create_connection(("127.0.0.1", 4222), timeout=1).close())
    args = len([arg for arg in sys.argv if arg])  # CPython puts '' in argv[0] when there are none
    return f"file={str(file).lower()} dir={str(directory).lower()} env={len(os.environ)} args={args} net={str(net).lower()}"


class Echo:
    def __init__(self, settings: str):
        pass

    def authorize(self, request: Request):
        user = request.user()
        if user == "sandbox-probe":
            return deny(probe())
        if user == "sandbox-loop":
            while True:
                pass
        if user == "sandbox-alloc":
            block = bytearray(1 << 30)
            return deny(f"allocated {len(block)} bytes")
        return deny(json.dumps(echo(request), ensure_ascii=False))


WitWorld = export_policy(Echo)
