#!/usr/bin/env bash
# Builds the example and test policies into WebAssembly components
# (target/wasm32-wasip2/release/*.wasm).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --target wasm32-wasip2 -p token-table -p hostile-policy
ls -l target/wasm32-wasip2/release/*.wasm
