#!/usr/bin/env bash
# Builds the policy component: policy.wasm, beside this script (installs the
# SDK with npm first if needed).
set -euo pipefail
cd "$(dirname "$0")"
[ -d node_modules/nats-callout-sdk ] || npm install --no-audit --no-fund
npm run --silent build
