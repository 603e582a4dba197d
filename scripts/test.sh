#!/usr/bin/env bash
# Runs every test: formatting, lints, unit tests and the end-to-end tests
# against a real nats-server. Installs what is missing first (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(scripts/setup.sh | tail -1 | sed 's/^/export /')"

cargo fmt --all --check
cargo clippy --release --locked --all-targets -- -D warnings
cargo test --release --locked --workspace --all-targets
