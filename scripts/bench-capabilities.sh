#!/usr/bin/env bash
# What capabilities cost, all measured in one run so the ratios compare like
# with like:
#   1. per policy call (`check --repeat`: a fresh instance per call, the median
#      and p99 of REPEAT calls, capabilities answering from the kits' data),
#      each beside a call of the same policy that reaches no capability: the
#      Rust oidc example verifying an ES256 and an RS256 token (key set held)
#      beside it refusing a client without a token; the Go kv-users example
#      checking an nkey signature, reading a KV record, checking an argon2id
#      hash at OWASP's floor, beside it refusing a client without credentials
#      (and its whole allow path: signature, record, JSON, grant);
#   2. a connection storm through nats-server: the oidc example (ES256 tokens)
#      beside the token-table example: connects/s, latency, CPU per connect.
# Usage: scripts/bench-capabilities.sh [CONNECTIONS] [CONCURRENCY]; REPEAT=<n>.
set -euo pipefail
cd "$(dirname "$0")/.."
CONNECTIONS=${1:-3000}
CONCURRENCY=${2:-64}
REPEAT=${REPEAT:-500}

# An assignment, so a failing script stops this one (set -e skips eval's).

env_line=$(scripts/setup.sh | tail -1)

eval "export $env_line"
bin=target/release/nats-callout
source scripts/bench-common.sh
kits=tests/conformance
rust=target/wasm32-wasip2/release
other=target/policies

# call LABEL POLICY KIT CASE BASELINE: one line of JSON with the call's
# timing, and the label of the call it is compared with.
call() {
  local label=$1 policy=$2 kit=$kits/$3 baseline=$5
  python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["request"]))' \
    "$kit/cases/$4.json" > "$work/request.json"
  local args=(--policy "$policy" --request "$work/request.json" --timeout-ms 5000 --repeat "$REPEAT")
  [ -f "$kit/settings.json" ] && args+=(--settings "$kit/settings.json")
  [ -f "$kit/capabilities.json" ] && args+=(--capabilities "$kit/capabilities.json")
  $bin check "${args[@]}" | python3 -c '
import json, sys
report = json.load(sys.stdin)
print(json.dumps({"label": sys.argv[1], "baseline": sys.argv[2], "decision": report["decision"], **report["timing"]}))' "$label" "$baseline" \
    >> "$work/calls.jsonl"
}

echo "== per policy call ($REPEAT calls each) ==" >&2
call "Rust token-table: a token (for scale)" "$rust/token_table.wasm" token-table token-known ""
call "Rust oidc: no token" "$rust/oidc.wasm" oidc no-token ""
call "Rust oidc: ES256 token verified, grant" "$rust/oidc.wasm" oidc token-es256 "Rust oidc: no token"
call "Rust oidc: RS256 token verified, grant" "$rust/oidc.wasm" oidc token-rs256-ops "Rust oidc: no token"
call "Go kv-users: no credentials" "$other/kv_users.wasm" kv-users no-credentials ""
call "Go kv-users: nkey signature (forged)" "$other/kv_users.wasm" kv-users nkey-forged "Go kv-users: no credentials"
call "Go kv-users: KV lookup (no such user)" "$other/kv_users.wasm" kv-users user-unknown "Go kv-users: no credentials"
call "Go kv-users: KV lookup + argon2id m=19456 t=2 (wrong password)" "$other/kv_users.wasm" kv-users password-wrong "Go kv-users: no credentials"
call "Go kv-users: nkey signature + KV lookup + JSON record + grant" "$other/kv_users.wasm" kv-users nkey-signed "Go kv-users: no credentials"

# --- storms: the oidc example, then the token-table, on one server ---
callout_server 10s
python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["oidc"][0]["jwks"]))' \
  "$kits/oidc/capabilities.json" > "$work/jwks.json"
token=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["request"]["connect_opts"]["auth_token"])' \
  "$kits/oidc/cases/token-es256.json")

# storm LABEL TOKEN POLICY_TOML: starts the service, one warm-up storm, five measured.
storm() {
  local label=$1 token=$2
  { callout_toml_head; echo "$3"; echo "[service]"; echo "max_in_flight = 64"; } > "$work/callout.toml"
  RUST_LOG=warn $bin serve --config "$work/callout.toml" > "$work/$label.log" 2>&1 &
  local callout_pid=$!; pids+=("$callout_pid")
  for _ in $(seq 1200); do
    $bin load --server "$url" --token "$token" --connections 1 --concurrency 1 --timeout-ms 500 2>/dev/null |
      grep -q '"succeeded":1' && break
    sleep 0.1
  done
  $bin load --server "$url" --token "$token" --connections "$CONNECTIONS" --concurrency "$CONCURRENCY" > /dev/null
  for _ in 1 2 3 4 5; do
    $bin load --server "$url" --token "$token" --connections "$CONNECTIONS" --concurrency "$CONCURRENCY" \
      --label "$label" --server-pid "$server_pid" --service-pid "$callout_pid" >> "$work/storms.jsonl"
  done
  kill "$callout_pid"; wait "$callout_pid" 2>/dev/null || true
}
echo "== connection storms: $CONNECTIONS connects at concurrency $CONCURRENCY ==" >&2
storm oidc "$token" "[policy]
wasm = \"$PWD/$rust/oidc.wasm\"
accounts = [\"APP\"]
[[policy.capabilities.oidc]]
issuer = \"https://idp.example.com/realms/nats\"
audiences = [\"nats\"]
jwks_file = \"$work/jwks.json\"
[[policy.settings.rules]]
account = \"APP\"
publish = [\"user.{{sub}}.>\"]
subscribe = [\"user.{{sub}}.>\", \"_INBOX.>\"]"
storm token-table s3cr3t "[policy]
wasm = \"$PWD/$rust/token_table.wasm\"
accounts = [\"APP\"]
[policy.settings.tokens.s3cr3t]
account = \"APP\"
publish = [\"app.>\"]
subscribe = [\"app.>\", \"_INBOX.>\"]"

python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
calls = [json.loads(line) for line in open(f"{work}/calls.jsonl")]
p50 = {c["label"]: c["call_p50_us"] for c in calls}
print("| policy call | decision | p50 µs | p99 µs | p50 over the same policy reaching no capability |")
print("|---|---|---:|---:|---:|")
for c in calls:
    extra = "" if not c["baseline"] else f"{c['call_p50_us'] - p50[c['baseline']]:+.0f} µs"
    print(f"| {c['label']} | {c['decision']} | {c['call_p50_us']:.0f} | {c['call_p99_us']:.0f} | {extra} |")
print()
storms = [json.loads(line) for line in open(f"{work}/storms.jsonl")]
def med(label, key):
    values = sorted(s[key] for s in storms if s["label"] == label and s[key] is not None)
    return values[len(values) // 2]
print("Medians of five storms each, after one warm-up storm.")
print()
print("| policy | connects | failed | connects/s | p50 ms | p99 ms | nats-server CPU µs/connect | nats-callout CPU µs/connect |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for label in ("oidc", "token-table"):
    rows = [s for s in storms if s["label"] == label]
    print(f"| {label} | {sum(r['connections'] for r in rows)} | {sum(r['failed'] for r in rows)} | {med(label, 'connects_per_sec'):.0f} | "
          f"{med(label, 'p50_ms'):.2f} | {med(label, 'p99_ms'):.2f} | {med(label, 'server_cpu_us_per_connect'):.0f} | {med(label, 'service_cpu_us_per_connect'):.0f} |")
print()
print(f"- oidc / token-table: connects/s ×{med('oidc', 'connects_per_sec') / med('token-table', 'connects_per_sec'):.2f}, "
      f"nats-callout CPU per connect ×{med('oidc', 'service_cpu_us_per_connect') / med('token-table', 'service_cpu_us_per_connect'):.2f}")
PY
