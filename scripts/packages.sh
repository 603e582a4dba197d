#!/usr/bin/env bash
# Builds every package a policy author or an operator installs, into
# target/packages/, and prints their sizes:
#   nats-callout-sdk-<v>.crate          Rust SDK (cargo package; the WIT inside)
#   nats-callout-sdk-<v>.tgz            JavaScript/TypeScript SDK (npm pack)
#   nats_callout_sdk-<v>-py3-none-any.whl, nats_callout_sdk-<v>.tar.gz
#                                       Python SDK (wheel and sdist; WIT and native bindings)
#   nats-callout-sdk-go-<v>.tar.gz      Go module (unpack it; `replace` to it in go.mod)
#   host/bin/nats-callout               the host (cargo install --path host)
# The SDKs' wit/ folders link to the repository's wit/ in a checkout; each
# package is built from a staged copy with the links replaced by the file.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# An assignment, so a failing script stops this one (set -e skips eval's).
env_line=$(scripts/toolchains.sh | tail -1)
eval "export $env_line"
out=$root/target/packages
stage=$root/target/packages-stage
rm -rf "$out" "$stage"
mkdir -p "$out" "$stage"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
log() { echo "packages: $*" >&2; }

# Copies the listed parts of an SDK folder into the stage, links followed.
stage_copy() { # sdk folder, stage name, parts...
  local from=$1 to=$stage/$2
  shift 2
  mkdir -p "$to"
  (cd "$from" && cp -rL --parents "$@" "$to")
  find "$to" \( -name __pycache__ -o -name node_modules -o -name '*.core.wasm' \) -prune -exec rm -rf {} +
}

log "Rust SDK (cargo package)"
# --no-verify: the package test builds it from the unpacked crate, outside
# the workspace; --allow-dirty lets it run on a working tree too.
cargo package --locked --no-verify --allow-dirty --target-dir target -p nats-callout-sdk >&2
cp "target/package/nats-callout-sdk-$version.crate" "$out/"

log "JavaScript SDK (npm pack)"
stage_copy sdk/js js package.json README.md LICENSE src bin wit
(cd "$stage/js" && npm pack --silent --pack-destination "$out" > /dev/null)

log "Python SDK (wheel and sdist)"
stage_copy sdk/python python pyproject.toml README.md LICENSE nats_callout
# The sdist first, then the wheel from it: proves the sdist is complete.
python -m build --outdir "$out" "$stage/python" >&2

log "Go module"
stage_copy sdk/go go go.mod README.md LICENSE build.sh callout internal
tar -czf "$out/nats-callout-sdk-go-$version.tar.gz" -C "$stage" go

log "the host (cargo install --path host)"
# The workspace's own build folder: what `cargo build --release` already
# compiled is not compiled again.
cargo install --locked --quiet --path host --bin nats-callout --root "$out/host" --target-dir target >&2

rm -rf "$stage"
echo "packages in $out:"
(cd "$out" && ls -l --block-size=K *.* host/bin/nats-callout | awk '{print "  " $5 "\t" $9}')
