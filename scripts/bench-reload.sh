#!/usr/bin/env bash
# Reload benchmark through a real nats-server (config mode): a storm of
# connects at concurrency 64 (the token-table policy) while the service is
# reloaded 20 times by SIGHUP, alternating a good configuration and one whose
# settings fail the policy's golden kit; beside the same storm without
# reloads, in the same run. Prints a Markdown table for the README: failed
# connects, p50/p99 with and without reloads, and the reloads applied/failed.
#
# Run scripts/setup.sh first (or let this script run it). Environment:
# NATS_CALLOUT_BIN=<binary> to measure another build; ROUNDS (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."

# An assignment, so a failing script stops this one (set -e skips eval's).

env_line=$(scripts/setup.sh | tail -1)

eval "export $env_line"
bin=${NATS_CALLOUT_BIN:-target/release/nats-callout}
rounds=${ROUNDS:-3}
source scripts/bench-common.sh
callout_server 2s

# The golden kit: s3cr3t must be admitted into APP.
mkdir -p "$work/golden/cases"
cat > "$work/golden/cases/s3cr3t.json" <<'JSON'
{"description": "s3cr3t is admitted into APP",
 "request": {"server_id": {"name": "golden", "host": "0.0.0.0", "id": "NGOLDEN", "version": "2.11.4"},
             "user_nkey": "UGOLDENUSER",
             "client_info": {"host": "192.0.2.10", "id": 7, "kind": "Client", "type": "nats"},
             "connect_opts": {"protocol": 1, "lang": "go", "version": "1.41.0", "auth_token": "s3cr3t"},
             "type": "authorization_request", "version": 2},
 "expect": {"decision": "allow", "account": "APP"}}
JSON

# config TOKEN: the service's configuration, its policy admitting TOKEN.
config() {
  callout_toml_head
  cat <<CONF
[service]
max_in_flight = 64
watch = false
[policy]
wasm = "$PWD/target/wasm32-wasip2/release/token_table.wasm"
accounts = ["APP"]
golden_kit = "golden"
[policy.settings.tokens.$1]
account = "APP"
publish = ["app.>"]
subscribe = ["app.>", "_INBOX.>"]
CONF
}
good() { config s3cr3t; }
bad() { config other; } # fails the golden kit: s3cr3t is no longer admitted

good > "$work/callout.toml"
mkdir -p -m 700 "$work/cache"
RUST_LOG=warn,nats_callout::serve=info NATS_CALLOUT_CACHE_DIR="$work/cache" \
  $bin serve --config "$work/callout.toml" > "$work/callout.log" 2>&1 &
callout_pid=$!; pids+=("$callout_pid")
for _ in $(seq 3000); do
  grep -q 'serving auth callout requests' "$work/callout.log" && break
  kill -0 "$callout_pid" 2>/dev/null || { cat "$work/callout.log" >&2; exit 1; }
  sleep 0.02
done

reloads_done() { grep -c -E 'reloaded: new requests|reload failed' "$work/callout.log" || true; }
# 20 reloads, one after the other (each waits for the one before to end),
# alternating the good and the failing configuration.
reload_20() {
  for i in $(seq 20); do
    if [ $((i % 2)) -eq 1 ]; then bad > "$work/callout.toml"; else good > "$work/callout.toml"; fi
    local before; before=$(reloads_done)
    kill -HUP "$callout_pid"
    while [ "$(reloads_done)" -le "$before" ]; do sleep 0.01; done
    sleep 0.1
  done
  echo done > "$work/reloads-finished"
}

storm() { $bin load --server "$url" --token s3cr3t --connections "$1" --concurrency 64 \
  --service-pid "$callout_pid" --label "$2"; }
# Size the storm so that it outlasts 20 reloads.
storm 2000 warm-up > "$work/warm.json"
rate=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["connects_per_sec"])' "$work/warm.json")
start=$(date +%s.%N); reload_20; took=$(python3 -c "import sys; print(float('$(date +%s.%N)') - $start)")
connections=$(python3 -c "print(max(4000, int($rate * ($took * 1.5 + 1))))")

: > "$work/runs.jsonl"
for _ in $(seq "$rounds"); do
  storm "$connections" steady >> "$work/runs.jsonl"
  rm -f "$work/reloads-finished"
  reload_20 &
  reloader=$!
  storm "$connections" reloading >> "$work/runs.jsonl"
  wait "$reloader"
done

applied=$(grep -c 'reloaded: new requests' "$work/callout.log" || true)
failed=$(grep -c 'reload failed' "$work/callout.log" || true)
python3 - "$work/runs.jsonl" "$applied" "$failed" "$took" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
applied, failed, took = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
def med(label, key):
    v = sorted(r[key] for r in rows if r["label"] == label)
    return v[len(v) // 2]
def total(label, key): return sum(r[key] for r in rows if r["label"] == label)
print(f"Storm of token connects at concurrency 64; {len(rows)//2} rounds, medians; "
      f"20 reloads per storm ({took / 20 * 1000:.0f} ms each on average, one after another)\n")
print("| storm | connects | failed | connects/s | p50 | p99 |")
print("|---|---|---|---|---|---|")
for label, name in [("steady", "no reload"), ("reloading", "20 reloads, every other one failing its golden kit")]:
    print(f"| {name} | {total(label, 'connections')} | {total(label, 'failed')} | "
          f"{med(label, 'connects_per_sec'):.0f} | {med(label, 'p50_ms'):.2f} ms | {med(label, 'p99_ms'):.2f} ms |")
ratio = med("reloading", "p99_ms") / med("steady", "p99_ms")
print(f"\np99 during reloads / p99 without: {ratio:.2f}×. Reloads over the run: "
      f"{applied} applied, {failed} failed (each failed one left the running policy serving).")
PY
