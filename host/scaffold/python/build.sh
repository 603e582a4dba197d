#!/usr/bin/env bash
# Builds the policy component: policy.wasm, beside this script. Needs a
# Python with componentize-py 0.25.1: $PYTHON, else the nats-callout
# checkout's .tools/venv (what its scripts/toolchains.sh installs), else python3.
set -euo pipefail
cd "$(dirname "$0")"
sdk="{{sdk}}"
python=${PYTHON:-}
if [ -z "$python" ]; then
  for candidate in "$sdk/../.tools/venv/bin/python" python3; do
    if "$candidate" -c 'import componentize_py' 2> /dev/null; then python=$candidate; break; fi
  done
fi
[ -n "$python" ] || {
  echo "build.sh: no Python with componentize-py: pip install componentize-py==0.25.1 (in a venv), then PYTHON=<its python> $0" >&2
  exit 1
}
PYTHONPATH="$sdk/python${PYTHONPATH:+:$PYTHONPATH}" "$python" -m nats_callout.build app -o policy.wasm
