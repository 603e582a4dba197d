#!/usr/bin/env bash
# Quick start: sets up what is missing, builds the host and the example policy,
# starts a local nats-server wired to nats-callout (with xkey encryption), and
# connects a few clients to show who is admitted with which permissions.
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(scripts/setup.sh | tail -1 | sed 's/^/export /')"
cargo build --release --locked -p nats-callout --example whoami >&2

demo=$(mktemp -d)
cleanup() {
  # The service first (it drains and exits on SIGTERM), then the server.
  [ -n "${callout_pid:-}" ] && kill "$callout_pid" 2>/dev/null && wait "$callout_pid" 2>/dev/null
  [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$demo"
}
trap cleanup EXIT

target/release/nats-callout keys --out "$demo" --account AUTH --auth-user auth > "$demo/keys.txt"
issuer=$(sed -n 's/^ *issuer: //p' "$demo/keys.txt")
xkey=$(sed -n 's/^ *xkey: //p' "$demo/keys.txt")
port=${DEMO_PORT:-4333}

cat > "$demo/server.conf" <<CONF
listen: 127.0.0.1:$port
accounts {
  AUTH { users: [ { user: auth, password: pwd } ] }
  APP {}
  SYS {}
}
system_account: SYS
authorization {
  auth_callout {
    issuer: $issuer
    xkey: $xkey
    account: AUTH
    auth_users: [ auth ]
  }
}
CONF

cat > "$demo/callout.toml" <<CONF
[nats]
servers = ["nats://127.0.0.1:$port"]
user = "auth"
password = "pwd"

[issuer]
seed_file = "issuer.seed"
xkey_seed_file = "xkey.seed"

[policy]
wasm = "$PWD/target/wasm32-wasip2/release/token_table.wasm"
accounts = ["APP"]

[policy.settings.tokens.s3cr3t]
account = "APP"
publish = ["app.>", "\$SYS.REQ.USER.INFO"]
subscribe = ["app.>", "_INBOX.>"]

[policy.settings.users.alice]
password = "wonderland"
account = "APP"
publish = ["app.alice.>", "\$SYS.REQ.USER.INFO"]
subscribe = ["_INBOX.>"]
expires_in_secs = 600
CONF

"$NATS_SERVER_BIN" -c "$demo/server.conf" > "$demo/server.log" 2>&1 &
server_pid=$!
target/release/nats-callout serve --config "$demo/callout.toml" > "$demo/callout.log" 2>&1 &
callout_pid=$!
for _ in $(seq 100); do grep -q "serving auth callout requests" "$demo/callout.log" && break; sleep 0.1; done
grep -q "serving auth callout requests" "$demo/callout.log" || { cat "$demo/callout.log"; exit 1; }

echo
echo "== clients connecting to nats://127.0.0.1:$port =="
whoami=target/release/examples/whoami
$whoami "nats://127.0.0.1:$port" token s3cr3t
$whoami "nats://127.0.0.1:$port" user alice wonderland
$whoami "nats://127.0.0.1:$port" user alice guess
$whoami "nats://127.0.0.1:$port" token guess
echo
echo "== nats-callout's decisions =="
grep "authorization" "$demo/callout.log" | sed 's/^.*authorization/authorization/' || true
