"""Builds a Python policy into a component::

    python -m nats_callout.build app -o policy.wasm

``app`` is the policy's module (``app.py`` in the current folder, which must
define ``WitWorld = export_policy(...)``). This runs componentize-py against
``wit/policy.wit`` with the current folder and this SDK on the module path;
nothing is fetched from the network.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

SDK_ROOT = Path(__file__).resolve().parent.parent


def wit_dir() -> Path:
    candidates = [
        os.environ.get("NATS_CALLOUT_WIT"),
        Path(__file__).resolve().parent / "wit",  # a packaged copy
        SDK_ROOT.parent.parent / "wit",  # the repository
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "policy.wit").is_file():
            return Path(candidate)
    sys.exit("nats_callout.build: cannot find wit/policy.wit (set NATS_CALLOUT_WIT)")


def componentize_py() -> str:
    sibling = Path(sys.executable).parent / "componentize-py"
    found = shutil.which("componentize-py") or (str(sibling) if sibling.exists() else None)
    if found is None:
        sys.exit("nats_callout.build: componentize-py is not installed (pip install componentize-py==0.25.1)")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nats_callout.build", description=__doc__.split("::")[0])
    parser.add_argument("module", help="the policy's module, such as app")
    parser.add_argument("-o", "--output", required=True, help="the component to write")
    parser.add_argument("-p", "--path", action="append", default=[], help="more folders to take modules from")
    args = parser.parse_args(argv)
    paths = [os.getcwd(), *args.path, str(SDK_ROOT)]
    command = [componentize_py(), "-d", str(wit_dir()), "-w", "policy", "componentize", args.module]
    for path in paths:
        command += ["-p", path]
    command += ["-o", args.output]
    result = subprocess.run(command, check=False)
    if result.returncode == 0:
        print(f"wrote {args.output} ({Path(args.output).stat().st_size} bytes)", file=sys.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
