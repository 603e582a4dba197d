#!/usr/bin/env bash
# Benchmarks, all in one run so the ratios compare like with like:
#   1. the host's per-request cost by phase (criterion, host/benches/request_cost.rs),
#      next to the ed25519 floor (one verify + two signatures) measured in the same run;
#   2. a connection storm through nats-server with the callout, and through the same
#      nats-server build with static token auth: connects/s, latency percentiles and
#      CPU per connect of nats-server and of nats-callout (from /proc);
#   3. nats-callout's resident memory with one policy loaded, idle and after the storm.
# Usage: scripts/bench.sh [CONNECTIONS] [CONCURRENCY]
# Environment: POLICY=<component> runs the storm with another token-table (such
# as target/policies/token_table_py.wasm) and CALLS_PER_INSTANCE=<n> sets its
# reuse; SKIP_CRITERION=<file> reuses criterion output instead of measuring;
# NATS_CALLOUT_BIN=<binary> runs the storm with another build (a before/after pair).
set -euo pipefail
cd "$(dirname "$0")/.."
CONNECTIONS=${1:-3000}
CONCURRENCY=${2:-256}

# An assignment, so a failing script stops this one (set -e skips eval's).

env_line=$(scripts/setup.sh | tail -1)

eval "export $env_line"
bin=${NATS_CALLOUT_BIN:-target/release/nats-callout} # another build to compare with
source scripts/bench-common.sh

echo "== per-request cost (criterion) ==" >&2
if [ -z "${SKIP_CRITERION:-}" ]; then
  cargo bench --locked -p nats-callout --bench request_cost 2>/dev/null | tee "$work/criterion.txt" | grep -E "time:" >&2
  cp "$work/criterion.txt" target/criterion-last.txt # for SKIP_CRITERION=target/criterion-last.txt
else
  cp "$SKIP_CRITERION" "$work/criterion.txt"
fi

# --- with the callout ---
callout_server 10s
{ callout_toml_head; cat <<CONF; } > "$work/callout.toml"
[policy]
wasm = "${POLICY:-$PWD/target/wasm32-wasip2/release/token_table.wasm}"
accounts = ["APP"]
calls_per_instance = ${CALLS_PER_INSTANCE:-1}
[policy.settings.tokens.s3cr3t]
account = "APP"
publish = ["app.>"]
subscribe = ["app.>", "_INBOX.>"]
[service]
max_in_flight = 64
CONF
RUST_LOG=warn $bin serve --config "$work/callout.toml" > "$work/callout.log" 2>&1 &
callout_pid=$!; pids+=("$callout_pid")
for _ in $(seq 1200); do
  $bin load --server "nats://127.0.0.1:$port" --token s3cr3t --connections 1 --concurrency 1 --timeout-ms 500 2>/dev/null | grep -q '"succeeded":1' && break
  sleep 0.1
done
idle_rss=$(rss_kib "$callout_pid")
echo "== connection storm: $CONNECTIONS connects at concurrency $CONCURRENCY ==" >&2
# A warm-up storm (first use of pool slots and pages), then five measured storms.
storm() { # label, port, extra args...
  local label=$1 port=$2; shift 2
  $bin load --server "nats://127.0.0.1:$port" --token s3cr3t --connections "$CONNECTIONS" --concurrency "$CONCURRENCY" > /dev/null
  for round in 1 2 3 4 5; do
    $bin load --server "nats://127.0.0.1:$port" --token s3cr3t --connections "$CONNECTIONS" \
      --concurrency "$CONCURRENCY" --label "$label" "$@" >> "$work/$label.jsonl"
  done
}
storm callout "$port" --server-pid "$server_pid" --service-pid "$callout_pid"
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
storm static-token "$port" --server-pid "$server_pid"

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
def runs(label):
    return [json.loads(line) for line in open(f"{work}/{label}.jsonl")]
def med(rows, key):
    values = sorted(r[key] for r in rows if r[key] is not None)
    return values[len(values) // 2] if values else None
def summary(label):
    rows = runs(label)
    out = {k: med(rows, k) for k in ("connects_per_sec", "p50_ms", "p90_ms", "p99_ms", "server_cpu_us_per_connect", "service_cpu_us_per_connect")}
    out.update(label=label, connections=sum(r["connections"] for r in rows), failed=sum(r["failed"] for r in rows),
               first_error=next((r["first_error"] for r in rows if r["first_error"]), None))
    return out
c = summary("callout"); t = summary("static-token")
print("Medians of five storms each, after one warm-up storm.")
print()
print("| run | connects | failed | connects/s | p50 ms | p90 ms | p99 ms | nats-server CPU µs/connect | nats-callout CPU µs/connect |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in (c, t):
    svc = r["service_cpu_us_per_connect"]
    print(f"| {r['label']} | {r['connections']} | {r['failed']} | {r['connects_per_sec']:.0f} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['p99_ms']:.2f} | {r['server_cpu_us_per_connect']:.0f} | {'-' if svc is None else f'{svc:.0f}'} |")
print()
print(f"- callout / static token: connects/s ×{c['connects_per_sec']/t['connects_per_sec']:.2f}, "
      f"nats-server CPU per connect ×{c['server_cpu_us_per_connect']/t['server_cpu_us_per_connect']:.2f}")
shares = sorted(100 * r["service_cpu_us_per_connect"] / r["server_cpu_us_per_connect"] for r in runs("callout"))
print(f"- nats-callout CPU per connect / nats-server CPU per callout connect: "
      f"{100*c['service_cpu_us_per_connect']/c['server_cpu_us_per_connect']:.0f}% "
      f"(per storm: {', '.join(f'{x:.0f}%' for x in shares)})")
print(f"- whole request / ed25519 floor: ×{median('plain/end_to_end')/floor:.2f}")
print(f"- nats-callout RSS with one policy loaded: {idle_rss/1024:.1f} MiB idle, {loaded_rss/1024:.1f} MiB after the storm")
if c["failed"]:
    print(f"- first failure: {c['first_error']}")
PY
