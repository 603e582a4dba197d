#!/usr/bin/env bash
# Installs everything the tests need on a bare machine and builds it all:
#   - scripts/prerequisites.sh: the wasm32-wasip2 target and nats-server
#   - scripts/toolchains.sh (through build-policies.sh): Go, componentize-py,
#     componentize-js
#   - the host binary and every example and test policy, in every language
# Prints `NATS_SERVER_BIN=<path>` as its last line. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

nats_server=$(scripts/prerequisites.sh | tail -1)
echo "setup: building the host (release)" >&2
cargo build --release --locked -p nats-callout --bins >&2
scripts/build-policies.sh >&2

echo "$nats_server"
