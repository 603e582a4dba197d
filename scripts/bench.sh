#!/usr/bin/env bash
# Benchmarks, all in one run so the ratios compare like with like:
#   1. the host's per-request cost by phase (criterion, host/benches/request_cost.rs),
#      next to the ed25519 floor (one verify + two signatures) measured in the same run;
#   2. a connection storm through nats-server with the callout, and through the same
#      nats-server build with static token auth: connects/s, latency percentiles and
#      CPU per connect of nats-server and of nats-callout (from /proc);
#   3. nats-callout's resident memory with one policy loaded, idle and after the storm.
# Usage: scripts/bench.sh [CONNECTIONS] [CONCURRENCY]
set -euo pipefail
cd "$(dirname "$0")/.."
CONNECTIONS=${1:-3000}
CONCURRENCY=${2:-256}

eval "$(scripts/setup.sh | tail -1 | sed 's/^/export /')"
bin=target/release/nats-callout
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

echo "== per-request cost (criterion) ==" >&2
cargo bench --locked -p nats-callout --bench request_cost 2>/dev/null | tee "$work/criterion.txt" | grep -E "time:" >&2

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- with the callout ---
$bin keys --out "$work" > "$work/keys.txt"
issuer=$(sed -n 's/^ *issuer: //p' "$work/keys.txt")
port=$(free_port)
cat > "$work/callout-server.conf" <<CONF
listen: 127.0.0.1:$port
max_connections: 100000
accounts {
  AUTH { users: [ { user: auth, password: pwd } ] }
  APP {}
}
authorization {
  timeout: 10s
  auth_callout { issuer: $issuer, account: AUTH, auth_users: [ auth ] }
}
CONF
cat > "$work/callout.toml" <<CONF
[nats]
servers = ["nats://127.0.0.1:$port"]
user = "auth"
password = "pwd"
[issuer]
seed_file = "issuer.seed"
[policy]
wasm = "$PWD/target/wasm32-wasip2/release/token_table.wasm"
accounts = ["APP"]
[policy.settings.tokens.s3cr3t]
account = "APP"
publish = ["app.>"]
subscribe = ["app.>", "_INBOX.>"]
[service]
max_in_flight = 64
CONF
"$NATS_SERVER_BIN" -c "$work/callout-server.conf" > "$work/callout-server.log" 2>&1 &
server_pid=$!; pids+=("$server_pid")
RUST_LOG=warn $bin serve --config "$work/callout.toml" > "$work/callout.log" 2>&1 &
callout_pid=$!; pids+=("$callout_pid")
for _ in $(seq 200); do
  $bin load --server "nats://127.0.0.1:$port" --token s3cr3t --connections 1 --concurrency 1 --timeout-ms 500 2>/dev/null | grep -q '"succeeded":1' && break
  sleep 0.1
done
idle_rss=$(rss_kib "$callout_pid")
echo "== connection storm: $CONNECTIONS connects at concurrency $CONCURRENCY ==" >&2
# Warm-up, then the measured run.
$bin load --server "nats://127.0.0.1:$port" --token s3cr3t --connections 300 --concurrency 32 > /dev/null
$bin load --server "nats://127.0.0.1:$port" --token s3cr3t --connections "$CONNECTIONS" --concurrency "$CONCURRENCY" \
  --server-pid "$server_pid" --service-pid "$callout_pid" --label callout > "$work/callout.json"
loaded_rss=$(rss_kib "$callout_pid")
kill "$callout_pid" "$server_pid"; wait "$callout_pid" "$server_pid" 2>/dev/null || true

# --- static token auth, same nats-server binary ---
port=$(free_port)
cat > "$work/token-server.conf" <<CONF
listen: 127.0.0.1:$port
max_connections: 100000
authorization { token: s3cr3t }
CONF
"$NATS_SERVER_BIN" -c "$work/token-server.conf" > "$work/token-server.log" 2>&1 &
server_pid=$!; pids+=("$server_pid")
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
$bin load --server "nats://127.0.0.1:$port" --token s3cr3t --connections 300 --concurrency 32 > /dev/null
$bin load --server "nats://127.0.0.1:$port" --token s3cr3t --connections "$CONNECTIONS" --concurrency "$CONCURRENCY" \
  --server-pid "$server_pid" --label static-token > "$work/token.json"

python3 - "$work" "$idle_rss" "$loaded_rss" <<'PY'
import json, re, sys
work, idle_rss, loaded_rss = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
crit = open(f"{work}/criterion.txt").read()
def median(name):
    m = re.search(re.escape(name) + r"\s+time:\s+\[\S+ \S+ (\S+) (\S+)", crit)
    if not m: return None
    value, unit = float(m.group(1)), m.group(2)
    return value * {"ns": 1e-3, "µs": 1.0, "us": 1.0, "ms": 1e3}[unit]
rows = [("open + verify", "open_verify"), ("policy call", "policy_call"), ("mint + sign (+ seal)", "mint_sign"), ("whole request", "end_to_end")]
print("| phase | plaintext (µs) | xkey (µs) |")
print("|---|---:|---:|")
for label, key in rows:
    print(f"| {label} | {median('plain/' + key):.1f} | {median('xkey/' + key):.1f} |")
floor = median("floor/verify_plus_two_signs")
print(f"| ed25519 floor: 1 verify + 2 signs | {floor:.1f} | {floor:.1f} |")
print()
c = json.load(open(f"{work}/callout.json")); t = json.load(open(f"{work}/token.json"))
print("| run | connects | failed | connects/s | p50 ms | p90 ms | p99 ms | nats-server CPU µs/connect | nats-callout CPU µs/connect |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in (c, t):
    svc = r["service_cpu_us_per_connect"]
    print(f"| {r['label']} | {r['connections']} | {r['failed']} | {r['connects_per_sec']:.0f} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['p99_ms']:.2f} | {r['server_cpu_us_per_connect']:.0f} | {'-' if svc is None else f'{svc:.0f}'} |")
print()
print(f"- callout / static token: connects/s ×{c['connects_per_sec']/t['connects_per_sec']:.2f}, "
      f"nats-server CPU per connect ×{c['server_cpu_us_per_connect']/t['server_cpu_us_per_connect']:.2f}")
print(f"- nats-callout CPU per connect / nats-server CPU per callout connect: "
      f"{100*c['service_cpu_us_per_connect']/c['server_cpu_us_per_connect']:.0f}%")
print(f"- whole request / ed25519 floor: ×{median('plain/end_to_end')/floor:.2f}")
print(f"- nats-callout RSS with one policy loaded: {idle_rss/1024:.1f} MiB idle, {loaded_rss/1024:.1f} MiB after the storm")
if c["failed"]:
    print(f"- first failure: {c['first_error']}")
PY
