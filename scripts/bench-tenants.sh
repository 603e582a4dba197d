#!/usr/bin/env bash
# Tenant benchmarks through a real nats-server (config mode, one callout issuer):
#
#   fairness [SHARE]  tenant `spin` (the hostile policy, spinning to its 100 ms
#                     deadline on every call, a share of SHARE calls, default 1)
#                     is stormed at concurrency 256 while tenant `b` (the
#                     token-table policy) connects at concurrency 16; b's latency
#                     and failures beside the storm against b alone, in the same run.
#   density [N] [TS]  N tenants (default 100) each with its own token-table policy
#                     (its own settings, so its own snapshot and compiled code),
#                     then N plus TS TypeScript ones (default 10), against one
#                     tenant: resident memory, start time from a warm compiled
#                     cache, and the service's CPU per connect, in the same run.
#
# Prints Markdown tables for the README. Run scripts/setup.sh first (or let this
# script run it). Environment: NATS_CALLOUT_BIN=<binary> to measure another build.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:?usage: scripts/bench-tenants.sh fairness [SHARE] | density [N] [TS]}

# An assignment, so a failing script stops this one (set -e skips eval's).

env_line=$(scripts/setup.sh | tail -1)

eval "export $env_line"
bin=${NATS_CALLOUT_BIN:-target/release/nats-callout}
source scripts/bench-common.sh
callout_server 2s

head_toml() {
  callout_toml_head
  cat <<CONF
[service]
max_in_flight = 64
CONF
}

# Starts the service with $work/$1.toml; sets callout_pid, started_at, ready_at.
start_service() {
  local name=$1 tenants=$2
  started_at=$(now)
  # Each service its own compiled cache: services sharing one prune each
  # other's snapshots of a component built with other settings.
  mkdir -p -m 700 "$work/cache-$name"
  RUST_LOG=warn,nats_callout::serve=info NATS_CALLOUT_CACHE_DIR="$work/cache-$name" \
    $bin serve --config "$work/$name.toml" > "$work/$name.log" 2>&1 &
  callout_pid=$!; pids+=("$callout_pid")
  for _ in $(seq 6000); do
    [ "$(grep -c 'serving auth callout requests' "$work/$name.log" || true)" -ge "$tenants" ] && break
    kill -0 "$callout_pid" 2>/dev/null || { cat "$work/$name.log" >&2; exit 1; }
    sleep 0.02
  done
  ready_at=$(now)
}
stop_service() { kill "$callout_pid"; wait "$callout_pid" 2>/dev/null || true; }

# load LABEL OUT ARGS...: one storm, its JSON report appended to OUT.
load() { local label=$1 out=$2; shift 2; $bin load --server "$url" --label "$label" "$@" >> "$out"; }

token_table_tenant() { # name, route line, token, wasm
  cat <<CONF

[[tenant]]
name = "$1"
$2
[tenant.policy]
wasm = "$4"
accounts = ["APP"]
[tenant.policy.settings.tokens.$3]
account = "APP"
publish = ["app.>"]
subscribe = ["app.>", "_INBOX.>"]
CONF
}

rust_policy=$PWD/target/wasm32-wasip2/release/token_table.wasm
hostile_policy=$PWD/target/wasm32-wasip2/release/hostile_policy.wasm
ts_policy=$PWD/target/policies/token_table_js.wasm

case $what in
fairness)
  share=${2:-1}
  {
    head_toml
    cat <<CONF

[[tenant]]
name = "spin"
route = { user_prefix = "loop" }
max_in_flight = $share
[tenant.policy]
wasm = "$hostile_policy"
accounts = ["APP"]
timeout_ms = 100
[tenant.policy.settings]
account = "APP"
CONF
    token_table_tenant b "" s3cr3t "$rust_policy"
  } > "$work/fairness.toml"
  start_service fairness 2
  b_storm() { load "$1" "$work/b.jsonl" --token s3cr3t --connections 2000 --concurrency 16 --service-pid "$callout_pid"; }
  b_storm warm-up > /dev/null
  : > "$work/b.jsonl"
  for _ in 1 2 3; do b_storm b-alone; done
  # The storm: 256 clients at a time, each spinning to the deadline.
  $bin load --server "$url" --user loop --password x --connections 1000000 --concurrency 256 \
    --timeout-ms 5000 --label spin > "$work/spin.json" 2>/dev/null &
  storm_pid=$!; pids+=("$storm_pid")
  sleep 3 # the storm fills spin's share and line
  for _ in 1 2 3; do b_storm b-beside-spin; done
  kill "$storm_pid" 2>/dev/null || true
  busy=$(grep -c 'tenant_busy' "$work/fairness.log" || true)
  python3 - "$work/b.jsonl" "$share" "$busy" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
share, busy = sys.argv[2], int(sys.argv[3])
def med(label, key):
    v = sorted(r[key] for r in rows if r["label"] == label and r[key] is not None)
    return v[len(v) // 2]
def failed(label): return sum(r["failed"] for r in rows if r["label"] == label)
def total(label): return sum(r["connections"] for r in rows if r["label"] == label)
print(f"Tenant spin: every call spins to its 100 ms deadline, share max_in_flight = {share}, "
      f"stormed at concurrency 256. Tenant b: token-table, 3 × 2000 connects at concurrency 16 "
      f"(medians of the three).")
print()
print("| b's connects | connects | failed | connects/s | p50 ms | p90 ms | p99 ms | nats-callout CPU µs per b connect (spin's included) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for label, name in (("b-alone", "alone"), ("b-beside-spin", "beside spin's storm")):
    print(f"| {name} | {total(label)} | {failed(label)} | {med(label, 'connects_per_sec'):.0f} | "
          f"{med(label, 'p50_ms'):.2f} | {med(label, 'p90_ms'):.2f} | {med(label, 'p99_ms'):.2f} | "
          f"{med(label, 'service_cpu_us_per_connect'):.0f} |")
print()
print(f"- b's p99 beside the storm / alone: ×{med('b-beside-spin', 'p99_ms') / med('b-alone', 'p99_ms'):.2f} "
      f"(goal ≤ 2), b's failed connects: {failed('b-beside-spin')} (goal 0)")
print(f"- spin's requests dropped as tenant_busy (its share and line full): {busy}; every other one of its calls ends in a timeout deny")
PY
  ;;
density)
  n=${2:-100}; ts=${3:-10}
  { head_toml; token_table_tenant only "" t0_secret "$rust_policy"; } > "$work/one.toml"
  rust_tenants() {
    for i in $(seq 0 $((n - 1))); do
      token_table_tenant "rust$i" "route = { token_prefix = \"t${i}_\" }" "t${i}_secret" "$rust_policy"
    done
  }
  { head_toml; rust_tenants; } > "$work/rust.toml"
  {
    head_toml; rust_tenants
    for i in $(seq 0 $((ts - 1))); do
      token_table_tenant "ts$i" "route = { token_prefix = \"j${i}_\" }" "j${i}_secret" "$ts_policy"
    done
  } > "$work/mixed.toml"
  : > "$work/density.jsonl"; : > "$work/services.txt"
  # Start times and idle memory: a first start fills the service's cache,
  # then a start from the warm cache.
  starts() { # service, tenants
    start_service "$1" "$2"; stop_service
    local cold; cold=$(python3 -c "print($ready_at - $started_at)")
    start_service "$1" "$2"
    echo "$1 $cold $(python3 -c "print($ready_at - $started_at)") $(rss_kib "$callout_pid")" >> "$work/services.txt"
    stop_service
  }
  starts one 1; starts rust "$n"; starts mixed $((n + ts))
  # Storms, one service after the other in each of three rounds, so the
  # machine's drift falls on both sides of the ratio.
  storm() { # service, tenants, label, token, concurrency
    start_service "$1" "$2"
    load warm-up /dev/null --token "$4" --connections 1000 --concurrency "$5" --service-pid "$callout_pid"
    load "$3" "$work/density.jsonl" --token "$4" --connections 3000 --concurrency "$5" --service-pid "$callout_pid"
    echo "$1 $(rss_kib "$callout_pid")" >> "$work/loaded.txt"
    stop_service
  }
  mid=$((n / 2))
  for _ in 1 2 3; do
    storm one 1 one-tenant t0_secret 64
    storm rust "$n" "rust-tenant-$mid-of-$n" "t${mid}_secret" 64
  done
  storm mixed $((n + ts)) "ts-tenant-$((ts / 2))-of-$((n + ts))" "j$((ts / 2))_secret" 16
  while read -r name _ _ _; do
    echo "$(grep "^$name " "$work/services.txt") $(grep "^$name " "$work/loaded.txt" | tail -1 | cut -d' ' -f2)"
  done < "$work/services.txt" > "$work/summary.txt"
  mv "$work/summary.txt" "$work/services.txt"
  python3 - "$work/density.jsonl" "$work/services.txt" "$n" "$ts" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
services = {l.split()[0]: l.split()[1:] for l in open(sys.argv[2])}
n, ts = int(sys.argv[3]), int(sys.argv[4])
def med(label, key):
    v = sorted(r[key] for r in rows if r["label"] == label and r[key] is not None)
    return v[len(v) // 2]
names = {"one": "1 Rust tenant", "rust": f"{n} Rust tenants", "mixed": f"{n} Rust + {ts} TypeScript tenants"}
print(f"Token-table tenants, each with its own settings (so its own snapshot and compiled code), "
      f"routed by token prefix; every figure from the same run. Storms: three rounds of the one-tenant "
      f"and the {n}-tenant service one after the other, then the TypeScript tenant.")
print()
print("| service | first start, compiling (s) | start from the warm cache (s) | RSS idle (MiB) | RSS after its storms (MiB) |")
print("|---|---:|---:|---:|---:|")
for key, name in names.items():
    cold, warm, idle, loaded = services[key]
    print(f"| {name} | {float(cold):.1f} | {float(warm):.2f} | {int(idle)/1024:.1f} | {int(loaded)/1024:.1f} |")
print()
print("| storm: 3000 connects (medians of the rounds) | concurrency | failed | connects/s | p99 ms | nats-callout CPU µs/connect |")
print("|---|---:|---:|---:|---:|---:|")
labels = []
for r in rows:
    if r["label"] not in labels: labels.append(r["label"])
for label in labels:
    failed = sum(r["failed"] for r in rows if r["label"] == label)
    conc = next(r["concurrency"] for r in rows if r["label"] == label)
    print(f"| {label} | {conc} | {failed} | {med(label, 'connects_per_sec'):.0f} | {med(label, 'p99_ms'):.2f} | "
          f"{med(label, 'service_cpu_us_per_connect'):.0f} |")
print()
base = med("one-tenant", "service_cpu_us_per_connect")
rust = next(l for l in labels if l.startswith("rust-tenant"))
one = [r["service_cpu_us_per_connect"] for r in rows if r["label"] == "one-tenant"]
many = [r["service_cpu_us_per_connect"] for r in rows if r["label"] == rust]
ratios = sorted(m / o for o, m in zip(one, many))
print(f"- CPU per connect of a Rust tenant among {n} / of the one tenant, round by round "
      f"(the two measured one after the other): {', '.join(f'×{x:.2f}' for x in ratios)}; "
      f"median ×{ratios[len(ratios) // 2]:.2f} (goal ≤ 1.10)")
print(f"- {n} Rust tenants: {int(services['rust'][2])/1024:.0f} MiB idle (goal ≤ 200), "
      f"started from the warm cache in {float(services['rust'][1]):.2f} s (goal ≤ 2)")
PY
  ;;
*) echo "unknown benchmark $what: fairness or density" >&2; exit 2 ;;
esac
