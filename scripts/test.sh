#!/usr/bin/env bash
# Runs every test: formatting, lints, unit tests in every language, the
# conformance kit for every language and the end-to-end tests against a real
# nats-server, and the packages used outside the checkout
# (scripts/test-packages.sh). Installs what is missing first (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# An assignment, so a failing script stops this one (set -e skips eval's).

env_line=$(scripts/setup.sh | tail -1)

eval "export $env_line"
# An assignment, so a failing script stops this one (set -e skips eval's).
env_line=$(scripts/toolchains.sh | tail -1)
eval "export $env_line"

step() { echo "== $*" >&2; }

step "Rust: format and lints"
cargo fmt --all --check
cargo clippy --release --locked --all-targets -- -D warnings
# What a policy author compiles: the SDK and the Rust policies, for the component target.
cargo clippy --release --locked --target wasm32-wasip2 -p nats-callout-sdk -p token-table -p oidc -p hostile-policy -p echo-policy -- -D warnings

step "Go: format, vet and unit tests"
unformatted=$("$(go env GOROOT)/bin/gofmt" -l sdk/go/callout sdk/go/internal/registry plugins/token-table-go plugins/kv-users tests/policies/echo-go)
[ -z "$unformatted" ] || { echo "gofmt needed: $unformatted" >&2; exit 1; }
(cd sdk/go && go vet ./callout ./internal/registry && go test ./...)
(cd plugins/token-table-go && go vet . && go test ./...)
(cd plugins/kv-users && go vet . && go test ./...)
(cd tests/policies/echo-go && GOOS=wasip1 GOARCH=wasm go vet .)

step "JavaScript/TypeScript: unit tests"
(cd sdk/js && npm test --silent)
(cd plugins/token-table-js && npm test --silent)
(cd plugins/oidc-js && npm test --silent)

step "Python: unit tests, and the committed native bindings match wit/"
(cd sdk/python && python -m pytest -q tests)
(cd plugins/token-table-py && python -m pytest -q)
(cd plugins/kv-users-py && python -m pytest -q)
fresh=$(mktemp -d)
componentize-py -d wit -w policy-with-capabilities bindings "$fresh" >/dev/null
diff -r "$fresh/wit_world" sdk/python/nats_callout/_native/wit_world >/dev/null ||
  { echo "sdk/python/nats_callout/_native is stale: regenerate it (see sdk/python/README.md)" >&2; exit 1; }
rm -rf "$fresh"

step "Rust unit tests, conformance kit in every language, end-to-end tests"
cargo test --release --locked --workspace --all-targets

step "Packages: each SDK and the host, installed and used outside the checkout"
scripts/test-packages.sh
