#!/usr/bin/env bash
# Per-language policy figures, all in one run so they compare like with like:
# the token-table example in Rust, Go, TypeScript and Python, each loaded and
# called by `nats-callout check --repeat` on one thread:
#   - component size;
#   - load time without the compiled-policy cache (init + snapshot + compile),
#     and the wall time of a whole `check` process with the cache warm (what a
#     restart costs);
#   - per-call p50 / p99 and calls per second with a fresh instance per call
#     (calls_per_instance = 1, the default) and with instance reuse
#     (calls_per_instance = 1000);
#   - resident memory the loaded policy adds (idle instances included).
# Usage: scripts/bench-languages.sh [CALLS]
set -euo pipefail
cd "$(dirname "$0")/.."
CALLS=${1:-3000}
# An assignment, so a failing script stops this one (set -e skips eval's).
env_line=$(scripts/setup.sh | tail -1)
eval "export $env_line"
bin=$PWD/target/release/nats-callout
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cp tests/conformance/token-table/settings.json "$work/settings.json"
python3 - "$work/request.json" <<'PY'
import json, sys
request = json.load(open("tests/conformance/token-table/cases/token-known.json"))["request"]
json.dump(request, open(sys.argv[1], "w"))
PY

for language in rust go typescript python; do
  case $language in
    rust) wasm=target/wasm32-wasip2/release/token_table.wasm ;;
    go) wasm=target/policies/token_table_go.wasm ;;
    typescript) wasm=target/policies/token_table_js.wasm ;;
    python) wasm=target/policies/token_table_py.wasm ;;
  esac
  check() { "$bin" check --policy "$wasm" --settings "$work/settings.json" --request "$work/request.json" "$@" 2>/dev/null; }
  echo "== $language ==" >&2
  check --no-cache --repeat 1 > "$work/$language-cold.json"
  cache="$work/cache-$language"
  check --cache-dir "$cache" > /dev/null
  start=$(date +%s%N)
  check --cache-dir "$cache" > /dev/null
  restart_ms=$(( ($(date +%s%N) - start) / 1000000 ))
  check --cache-dir "$cache" --repeat "$CALLS" > "$work/$language-fresh.json"
  check --cache-dir "$cache" --repeat "$CALLS" --calls-per-instance 1000 > "$work/$language-reuse.json"
  echo "{\"size\": $(stat -c %s "$wasm"), \"restart_ms\": $restart_ms}" > "$work/$language-meta.json"
done

python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
def load(language, kind):
    return json.load(open(f"{work}/{language}-{kind}.json"))
print("| | Rust | Go | TypeScript | Python |")
print("|---|---:|---:|---:|---:|")
languages = ["rust", "go", "typescript", "python"]
rows = [
    ("component size", lambda l: f"{load(l, 'meta')['size'] / 1e6:.2f} MB"),
    ("load, no cache (init + snapshot + compile)", lambda l: f"{load(l, 'cold')['timing']['load_ms'] / 1e3:.1f} s"),
    ("restart with a cached policy (whole `check` process)", lambda l: f"{load(l, 'meta')['restart_ms']} ms"),
    ("call, fresh instance: p50 / p99", lambda l: "{call_p50_us:.0f} / {call_p99_us:.0f} µs".format(**load(l, 'fresh')['timing'])),
    ("calls/s on one thread, fresh instance", lambda l: "{calls_per_sec:.0f}".format(**load(l, 'fresh')['timing'])),
    ("call, reused instance: p50 / p99", lambda l: "{call_p50_us:.0f} / {call_p99_us:.0f} µs".format(**load(l, 'reuse')['timing'])),
    ("calls/s on one thread, reused instance", lambda l: "{calls_per_sec:.0f}".format(**load(l, 'reuse')['timing'])),
    ("memory the idle policy adds (RSS, fresh / reuse)", lambda l: f"{load(l, 'fresh')['timing'].get('policy_rss_mib', '?')} / {load(l, 'reuse')['timing'].get('policy_rss_mib', '?')} MiB"),
]
for label, cell in rows:
    print(f"| {label} | " + " | ".join(cell(l) for l in languages) + " |")
rust = load("rust", "fresh")["timing"]["call_p50_us"]
print()
print("Per-call p50 relative to Rust's fresh-instance call in the same run: " + ", ".join(
    f"{l} ×{load(l, 'fresh')['timing']['call_p50_us'] / rust:.1f} fresh, ×{load(l, 'reuse')['timing']['call_p50_us'] / rust:.1f} reused"
    for l in languages[1:]))
PY
