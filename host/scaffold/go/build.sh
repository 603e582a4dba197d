#!/usr/bin/env bash
# Builds the policy component: policy.wasm, beside this script. The SDK's
# build script finds Go and nats-callout (see its header).
set -euo pipefail
cd "$(dirname "$0")"
"{{sdk}}/go/build.sh" . policy.wasm
