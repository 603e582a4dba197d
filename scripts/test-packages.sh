#!/usr/bin/env bash
# Proves the packages work the way a user meets them, outside this checkout:
# builds them (scripts/packages.sh), then in a scratch folder under /tmp, for
# each language, installs the SDK package into a new project, writes the
# policy from the README's own snippet, builds it with the packaged tools,
# and runs the `only-alice` conformance kit against it with the installed
# host. A package that only works from a checkout fails here.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# An assignment, so a failing script stops this one (set -e skips eval's).
env_line=$(scripts/toolchains.sh | tail -1)
eval "export $env_line"
scripts/packages.sh
packages=$root/target/packages
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
scratch=$(mktemp -d /tmp/nats-callout-packages.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
log() { echo "test-packages: $*" >&2; }

# The installed host, first on the PATH: nothing below reaches the checkout.
export PATH="$packages/host/bin:$PATH"
unset NATS_CALLOUT NATS_CALLOUT_SDK NATS_CALLOUT_WIT
[ "$(command -v nats-callout)" = "$packages/host/bin/nats-callout" ]
grep -q "(policy WIT nats:callout@" <<< "$(nats-callout --version)" ||
  { log "--version does not name the WIT: $(nats-callout --version)"; exit 1; }
kit=$scratch/kit
cp -r tests/conformance/only-alice "$kit"

# The code block of a README section, as written: section title, fence.
snippet() {
  python3 - "$root/README.md" "$1" "$2" <<'PY'
import sys
text, title, fence = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3]
section = text.split("\n" + title + "\n", 1)[1]
print(section.split("```" + fence + "\n", 1)[1].split("```\n", 1)[0], end="")
PY
}

passes_the_kit() { # project folder
  local report
  report=$(nats-callout check --policy "$1/policy.wasm" --kit "$kit") || { echo "$report" >&2; exit 1; }
  echo "$report" | tail -1 >&2
  grep -q "3 cases, 3 passed, 0 failed" <<< "$report"
}

log "Rust: the crate, unpacked, as a path dependency"
mkdir -p "$scratch/crate" "$scratch/rust/src"
tar -xzf "$packages/nats-callout-sdk-$version.crate" -C "$scratch/crate"
cat > "$scratch/rust/Cargo.toml" <<TOML
[package]
name = "only-alice"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib"]

[dependencies]
nats-callout-sdk = { path = "$scratch/crate/nats-callout-sdk-$version" }

[workspace]
TOML
snippet "### Rust" rust > "$scratch/rust/src/lib.rs"
(cd "$scratch/rust" && cargo build --quiet --release --target wasm32-wasip2 --target-dir target)
cp "$scratch/rust/target/wasm32-wasip2/release/only_alice.wasm" "$scratch/rust/policy.wasm"
passes_the_kit "$scratch/rust"

log "Go: the module, unpacked, through a replace"
mkdir -p "$scratch/go-sdk" "$scratch/go"
tar -xzf "$packages/nats-callout-sdk-go-$version.tar.gz" -C "$scratch/go-sdk"
cat > "$scratch/go/go.mod" <<MOD
module example.com/only-alice

go 1.27

require github.com/nats-callout/nats-callout/sdk/go v$version

replace github.com/nats-callout/nats-callout/sdk/go => $scratch/go-sdk/go
MOD
snippet "### Go" go > "$scratch/go/main.go"
"$scratch/go-sdk/go/build.sh" "$scratch/go" "$scratch/go/policy.wasm"
passes_the_kit "$scratch/go"

log "TypeScript: the npm tarball, installed into a new project"
mkdir -p "$scratch/ts/src"
cat > "$scratch/ts/package.json" <<JSON
{ "name": "only-alice", "private": true, "type": "module" }
JSON
cat > "$scratch/ts/tsconfig.json" <<JSON
{
  "compilerOptions": {
    "target": "es2022", "module": "nodenext", "moduleResolution": "nodenext",
    "strict": true, "noEmit": true, "types": []
  },
  "include": ["src/**/*.ts"]
}
JSON
snippet "### JavaScript / TypeScript" ts > "$scratch/ts/src/policy.ts"
mkdir -p "$scratch/ts/test"
cat > "$scratch/ts/test/policy.test.ts" <<'TS'
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Request, grantOf } from 'nats-callout-sdk';
import { authorize, init } from '../src/policy.js';

test('alice gets APP', () => {
  init('{}');
  const grant = grantOf(authorize(Request.forTest().withUserAndPassword('alice', 'wonderland')));
  assert.equal(grant?.account, 'APP');
});
TS
(cd "$scratch/ts" &&
  npm install --silent --no-audit --no-fund "$packages/nats-callout-sdk-$version.tgz" &&
  npx --no-install nats-callout-js typecheck &&
  npx --no-install nats-callout-js test test/*.test.ts > /dev/null &&
  npx --no-install nats-callout-js build src/policy.ts -o policy.wasm)
passes_the_kit "$scratch/ts"

log "Python: the wheel, installed into a new venv"
python3 -m venv "$scratch/venv"
"$scratch/venv/bin/pip" install --quiet --disable-pip-version-check "$packages/nats_callout_sdk-$version-py3-none-any.whl"
mkdir -p "$scratch/python"
snippet "### Python" python > "$scratch/python/app.py"
(cd "$scratch/python" && env -u PYTHONPATH "$scratch/venv/bin/python" -m nats_callout.build app -o policy.wasm)
# Natively too, as unit tests run it: the wheel's native bindings.
(cd "$scratch/python" && env -u PYTHONPATH "$scratch/venv/bin/python" -c '
from nats_callout import Request, grant_of
from app import OnlyAlice
grant = grant_of(OnlyAlice("{}").authorize(Request.for_test().with_user_and_password("alice", "wonderland")))
assert grant.account == "APP", grant
')
passes_the_kit "$scratch/python"
sdist=$(tar -tzf "$packages/nats_callout_sdk-$version.tar.gz")
for part in nats_callout/wit/policy.wit nats_callout/_native/wit_world/__init__.py; do
  grep -q "/$part$" <<< "$sdist" ||
    { log "the sdist lacks $part"; exit 1; }
done

log "every package works outside the checkout"
