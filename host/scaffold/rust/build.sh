#!/usr/bin/env bash
# Builds the policy component: policy.wasm, beside this script.
set -euo pipefail
cd "$(dirname "$0")"
if command -v rustup > /dev/null && ! rustup target list --installed | grep -qx wasm32-wasip2; then
  rustup target add wasm32-wasip2
fi
cargo build --release --target wasm32-wasip2
cp target/wasm32-wasip2/release/{{crate}}.wasm policy.wasm
echo "built policy.wasm ($(wc -c < policy.wasm) bytes)"
