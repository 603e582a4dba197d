#!/usr/bin/env bash
# Builds every example and test policy, in every language, into components:
#   Rust       target/wasm32-wasip2/release/*.wasm
#   Go, JS/TS, Python   target/policies/*.wasm
# Needs the host binary (for `componentize`) and scripts/toolchains.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# An assignment, so a failing script stops this one (set -e skips eval's).
env_line=$(scripts/toolchains.sh | tail -1)
eval "export $env_line"
out=$root/target/policies
mkdir -p "$out"

cargo build --release --locked --target wasm32-wasip2 -p token-table -p oidc -p hostile-policy -p echo-policy

export NATS_CALLOUT=$root/target/release/nats-callout
sdk/go/build.sh plugins/token-table-go "$out/token_table_go.wasm"
sdk/go/build.sh plugins/kv-users "$out/kv_users.wasm"
sdk/go/build.sh tests/policies/echo-go "$out/echo_go.wasm"

(cd plugins/token-table-js && npx --no-install nats-callout-js build src/policy.ts -o "$out/token_table_js.wasm")
(cd plugins/oidc-js && npx --no-install nats-callout-js build src/policy.ts -o "$out/oidc_js.wasm")
(cd tests/policies/echo-js && npx --no-install nats-callout-js build policy.js -o "$out/echo_js.wasm")

(cd plugins/token-table-py && PYTHONPATH=$root/sdk/python python -m nats_callout.build app -o "$out/token_table_py.wasm")
(cd plugins/kv-users-py && PYTHONPATH=$root/sdk/python python -m nats_callout.build app -o "$out/kv_users_py.wasm")
(cd tests/policies/echo-py && PYTHONPATH=$root/sdk/python python -m nats_callout.build app -o "$out/echo_py.wasm")

ls -l target/wasm32-wasip2/release/*.wasm "$out"/*.wasm
