#!/usr/bin/env bash
# Quick start: installs only what the demo runs (the wasm32-wasip2 target and
# nats-server), builds the host and the example token-table policy, lets
# `nats-callout keys` write a nats-server.conf and a callout.toml (with xkey
# encryption), starts both, and connects a few clients to show who is admitted
# with which permissions.
set -euo pipefail
cd "$(dirname "$0")/.."

# An assignment, so a failing script stops this one (set -e skips eval's).

env_line=$(scripts/prerequisites.sh | tail -1)

eval "export $env_line"
echo "demo: building the host and the token-table policy" >&2
cargo build --release --locked -p nats-callout --bin nats-callout >&2
cargo build --release --locked --target wasm32-wasip2 -p token-table >&2

demo=$(mktemp -d)
cleanup() {
  # The service first (it drains and exits on SIGTERM), then the server.
  [ -n "${callout_pid:-}" ] && kill "$callout_pid" 2>/dev/null && wait "$callout_pid" 2>/dev/null
  [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$demo"
}
trap cleanup EXIT

port=${DEMO_PORT:-4333}
target/release/nats-callout keys --out "$demo" --port "$port" \
  --policy target/wasm32-wasip2/release/token_table.wasm > "$demo/keys.txt"

# The policy's settings, under the [policy.settings] table keys left open.
cat >> "$demo/callout.toml" <<'CONF'
[policy.settings.tokens.s3cr3t]
account = "APP"
publish = ["app.>", "$SYS.REQ.USER.INFO"]
subscribe = ["app.>", "_INBOX.>"]

[policy.settings.users.alice]
password = "wonderland"
account = "APP"
publish = ["app.alice.>", "$SYS.REQ.USER.INFO"]
subscribe = ["_INBOX.>"]
expires_in_secs = 600
CONF

"$NATS_SERVER_BIN" -c "$demo/nats-server.conf" > "$demo/server.log" 2>&1 &
server_pid=$!
target/release/nats-callout serve --config "$demo/callout.toml" > "$demo/callout.log" 2>&1 &
callout_pid=$!
for _ in $(seq 100); do grep -q "serving auth callout requests" "$demo/callout.log" && break; sleep 0.1; done
grep -q "serving auth callout requests" "$demo/callout.log" || { cat "$demo/callout.log"; exit 1; }

echo
echo "== clients connecting to nats://127.0.0.1:$port =="
# whoami never prints a token or a password; a refused client exits 1.
whoami() { target/release/nats-callout whoami --server "nats://127.0.0.1:$port" "$@" || true; }
echo "the token s3cr3t:";                whoami --token s3cr3t
echo "alice with her password:";         whoami --user alice --password wonderland
echo "alice with a wrong password:";     whoami --user alice --password guess
echo "the token guess:";                 whoami --token guess
echo
echo "== nats-callout's decisions =="
grep "authorization" "$demo/callout.log" | sed 's/^.*authorization/authorization/' || true
