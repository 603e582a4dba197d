#!/usr/bin/env bash
# Regenerates the committed Go bindings after a change to wit/policy.wit:
#   - internal/wit: wit-bindgen 0.63's Go generator (sdk/go/bindgen), except
#     exports/export_wit_world, which is ours (it dispatches to callout.Export);
#   - internal/witpkg: the runtime package the bindings need
#     (go.bytecodealliance.org/pkg, Apache-2.0, shipped inside the
#     wit-bindgen-go crate), vendored so no Go module proxy is needed.
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd ../.. && pwd)
module=github.com/nats-callout/nats-callout/sdk/go
export PATH="$root/.tools/venv/bin:$PATH" # gofmt, from scripts/toolchains.sh

cargo build --release --manifest-path bindgen/Cargo.toml --target-dir "$root/target/go-bindgen"
ours=$(mktemp)
cp internal/wit/exports/export_wit_world/wit_bindings.go "$ours"
rm -rf internal/wit internal/witpkg
"$root/target/go-bindgen/release/go-bindgen" "$root/wit" internal/wit "$module/internal/wit"
cp "$ours" internal/wit/exports/export_wit_world/wit_bindings.go

pkg=$(ls -d ~/.cargo/registry/src/*/wit-bindgen-go-0.63.0/src/pkg | head -1)
mkdir -p internal/witpkg
cp -r "$pkg/wit/runtime" "$pkg/wit/types" "$pkg/LICENSE" internal/witpkg/
rm internal/witpkg/types/future.go internal/witpkg/types/stream.go # async only
grep -rl "go.bytecodealliance.org/pkg" internal | xargs sed -i "s#go.bytecodealliance.org/pkg/wit/#$module/internal/witpkg/#g"
"$(go env GOROOT)/bin/gofmt" -w internal
