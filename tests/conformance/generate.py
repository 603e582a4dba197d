#!/usr/bin/env python3
"""Writes the conformance kit's fixtures (token-table/ and echo/).

The fixtures are committed; run this again after changing it. Big inputs are
generated here rather than written by hand.
"""

import json
from pathlib import Path

KIT = Path(__file__).parent


def request(connect_opts=None, client_info=None, **extra):
    """A request as nats-server 2.11+ sends it, with the given changes."""
    base = {
        "server_id": {"name": "conformance", "host": "0.0.0.0", "id": "NCONFORMANCESERVER", "version": "2.11.4"},
        "user_nkey": "UCONFORMANCEUSER",
        "client_info": {"host": "192.0.2.10", "id": 7, "kind": "Client", "type": "nats", **(client_info or {})},
        "connect_opts": {"protocol": 1, "lang": "go", "version": "1.41.0", **(connect_opts or {})},
        "type": "authorization_request",
        "version": 2,
    }
    base.update(extra)
    return base


def write(folder, name, value):
    path = KIT / folder / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def allow(**fields):
    return {"decision": "allow", **fields}


def deny(reason):
    return {"decision": "deny", "reason": reason}


UNICODE_USER = "zoë-用户"
UNICODE_PASSWORD = "pässwörd🔑"
HUGE_TOKEN = "t" * (256 * 1024)

write(
    "token-table",
    "settings",
    {
        "tokens": {"s3cr3t": {"account": "APP", "publish": ["app.>"], "subscribe": ["app.>", "_INBOX.>"]}},
        "users": {
            "alice": {"password": "wonderland", "account": "APP", "publish": ["app.alice.>"], "expires_in_secs": 600},
            UNICODE_USER: {"password": UNICODE_PASSWORD, "account": "OTHER", "name": "Zoë", "subscribe": ["zoë.>"]},
        },
    },
)
token_cases = {
    "token-known": ("a known token gets its grant", {"auth_token": "s3cr3t"},
                    allow(account="APP", name="token", publish=["app.>"], subscribe=["app.>", "_INBOX.>"])),
    "token-unknown": ("an unknown token is denied", {"auth_token": "guess"}, deny("unknown token")),
    "token-huge": ("a 256 KiB token is denied like any unknown token", {"auth_token": HUGE_TOKEN}, deny("unknown token")),
    "token-before-user": ("a token is looked at before a user name", {"auth_token": "s3cr3t", "user": "alice", "pass": "nope"},
                          allow(account="APP", name="token")),
    "user-known": ("a user with the right password gets its grant", {"user": "alice", "pass": "wonderland"},
                   allow(account="APP", name="alice", publish=["app.alice.>"], subscribe=[], expires_in_secs=600)),
    "user-wrong-password": ("a wrong password is denied, naming the user", {"user": "alice", "pass": "x"},
                            deny('wrong password for user "alice"')),
    "user-unknown": ("an unknown user is denied, naming the user", {"user": "mallory", "pass": "x"}, deny('unknown user "mallory"')),
    "user-without-password": ("a user name alone is not enough", {"user": "alice"}, deny("no token and no user name and password")),
    "unicode-user": ("unicode user names and passwords match exactly", {"user": UNICODE_USER, "pass": UNICODE_PASSWORD},
                     allow(account="OTHER", name="Zoë", subscribe=["zoë.>"])),
    "unicode-wrong-password": ("a unicode user's wrong password is denied, naming the user",
                               {"user": UNICODE_USER, "pass": "pässwörd"}, deny(f'wrong password for user "{UNICODE_USER}"')),
    "anonymous": ("a client with no credentials is denied", {}, deny("no token and no user name and password")),
}
for name, (description, opts, expect) in token_cases.items():
    write("token-table/cases", name, {"description": description, "request": request(opts), "expect": expect})

refusals = {
    "empty": ("settings that admit nobody are refused", {}, "no `tokens` and no `users`"),
    "wrong-type": ("`tokens` must be a table", {"tokens": 3}, "invalid settings"),
    "unknown-field": ("a misspelt key is refused, and named", {"tokenz": {}}, "tokenz"),
    "missing-account": ("an entry without an account is refused", {"tokens": {"t": {"publish": ["a"]}}}, "invalid settings"),
}
for name, (description, settings, contains) in refusals.items():
    write("token-table/refused", name, {"description": description, "settings": settings, "error_contains": contains})

FULL_TLS = {
    "version": "1.3",
    "cipher": "TLS_AES_128_GCM_SHA256",
    "certs": ["-----BEGIN CERTIFICATE-----\nMIIBleaf\n-----END CERTIFICATE-----\n"],
    "verified_chains": [["leaf-pem", "intermediate-pem"], ["other-leaf"]],
}
echo_cases = {
    "minimal": ("a request with every optional field absent", {
        "server_id": {"name": "", "host": "", "id": "NMINIMAL"},
        "user_nkey": "UMINIMAL",
        "client_info": {},
        "connect_opts": {"protocol": 0},
        "type": "authorization_request",
        "version": 2,
    }),
    "full": ("every field of the request set", request(
        {"jwt": "eyJ0eXAiOiJKV1QifQ.e30.sig", "nkey": "UCLIENTNKEY", "sig": "c2lnbmF0dXJl", "auth_token": "tok",
         "user": "alice", "pass": "wonderland", "name": "orders-service", "lang": "rust", "version": "0.51.0", "protocol": 1},
        {"host": "2001:db8::1", "id": 18446744073709551615, "user": "alice", "name": "orders-service",
         "tags": ["a", "b"], "name_tag": "Alice", "kind": "Client", "type": "websocket", "mqtt_id": "mqtt-1", "nonce": "bm9uY2U"},
        server_id={"name": "n1", "host": "10.0.0.1", "id": "NFULL", "version": "2.11.4", "cluster": "c1",
                   "tags": ["az:1", "region:eu"], "xkey": "XSERVERXKEY"},
        client_tls=FULL_TLS,
    )),
    "unicode": ("unicode, quotes, backslashes and control characters pass unchanged", request(
        {"user": "zoë 用户 🔑", "pass": "p\"w\\d\n\t\u0001", "name": "שלום مرحبا e\u0301", "auth_token": "ʇoʞǝn"},
        {"name": "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "tags": ["ü", "日本語", "🚀"], "nonce": "\u2028\u2029"},
        server_id={"name": "sérvér", "host": "::", "id": "NUNICODE", "tags": ["ø"]},
    )),
    "large": ("very large fields and lists pass unchanged", request(
        {"jwt": "j" * (200 * 1024), "auth_token": "x" * (64 * 1024), "name": "n" * 10000},
        {"tags": [f"tag-{i}" for i in range(2000)]},
        client_tls={"certs": ["c" * 4096] * 16, "verified_chains": [["v" * 1024] * 8] * 4},
    )),
}
write("echo", "settings", {})
for name, (description, value) in echo_cases.items():
    write("echo/cases", name, {"description": description, "request": value, "expect": {"echo": True}})

write("sandbox", "settings", {})
write("sandbox/cases", "nothing-reachable", {
    "description": "the policy reaches no file, directory, environment variable, argument or socket",
    "request": request({"user": "sandbox-probe"}),
    "expect": deny("file=false dir=false env=0 args=0 net=false"),
})
write("sandbox/cases", "deadline", {
    "description": "a policy that never returns is stopped at its deadline",
    "request": request({"user": "sandbox-loop"}),
    "expect": {"call_fails": "timed out"},
})
write("sandbox/cases", "memory-cap", {
    "description": "a policy that allocates 1 GiB is stopped at the memory cap",
    "request": request({"user": "sandbox-alloc"}),
    "expect": {"call_fails": "memory cap"},
})
