"""Builds a Python policy into a component::

    python -m nats_callout.build app -o policy.wasm

``app`` is the policy's module (``app.py`` in the current folder, which must
define ``WitWorld = export_policy(...)``). This runs componentize-py against
``wit/policy.wit`` with the current folder and this SDK on the module path;
nothing is fetched from the network.

The world is ``policy``, plus the capabilities (kv, oidc, password, nkey) the
policy's modules import from ``nats_callout`` (found in the ``.py`` files of
the current folder and of ``-p`` folders, or named with ``--capabilities``),
and only those: componentize-py keeps every import of its world, and the
host refuses a policy importing a capability its operator did not grant.
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SDK_ROOT = Path(__file__).resolve().parent.parent


def wit_dir() -> Path:
    """The WIT shipped in the package (a link to the repository's ``wit/``
    in a checkout), unless ``NATS_CALLOUT_WIT`` names another folder."""
    candidate = Path(os.environ.get("NATS_CALLOUT_WIT") or Path(__file__).resolve().parent / "wit")
    if (candidate / "policy.wit").is_file():
        return candidate
    sys.exit(f"nats_callout.build: cannot find {candidate / 'policy.wit'} (set NATS_CALLOUT_WIT to a folder holding it)")


CAPABILITIES = ("kv", "nkey", "oidc", "password")


def _is_test(path: Path) -> bool:
    name = path.name
    return name == "conftest.py" or name.startswith("test_") or name.endswith("_test.py")


def used_capabilities(folders: list[str]) -> set[str]:
    """The capability modules of ``nats_callout`` the policy's ``.py`` files
    import (``from nats_callout import kv``, ``from nats_callout.kv import
    get``, ``import nats_callout.kv``), read with ``ast``: comments and
    strings do not count. Tests, hidden folders (``.venv``) and the SDK's
    own files are left out."""
    found: set[str] = set()
    for folder in folders:
        root = Path(folder).resolve()
        for path in root.rglob("*.py"):
            relative = path.relative_to(root).parts
            if any(part.startswith(".") or part in ("tests", "__pycache__") for part in relative[:-1]):
                continue
            if _is_test(path) or SDK_ROOT in path.resolve().parents:
                continue
            try:
                tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
            except SyntaxError:
                continue  # componentize-py reports it, if the policy imports it
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    if node.module == "nats_callout":
                        found.update(alias.name for alias in node.names if alias.name in CAPABILITIES)
                    elif node.module.startswith("nats_callout."):
                        found.update(part for part in node.module.split(".")[1:2] if part in CAPABILITIES)
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        parts = alias.name.split(".")
                        if parts[0] == "nats_callout" and len(parts) > 1 and parts[1] in CAPABILITIES:
                            found.add(parts[1])
    return found


def world_for(capabilities: set[str], work: Path) -> tuple[Path, str]:
    """The WIT folder and world to build against: ``policy``, or a world of
    the policy and ``capabilities`` written in ``work``."""
    if not capabilities:
        return wit_dir(), "policy"
    shutil.copy(wit_dir() / "policy.wit", work / "policy.wit")
    imports = "".join(f"    import {name};\n" for name in sorted(capabilities))
    (work / "selected.wit").write_text(f"world policy-selected {{\n    include policy;\n{imports}}}\n")
    print(f"capabilities imported: {', '.join(sorted(capabilities))}", file=sys.stderr)
    return work, "policy-selected"


def componentize_py() -> str:
    # The one installed beside this interpreter (the SDK's own, pinned
    # dependency) before any other on the PATH.
    sibling = Path(sys.executable).parent / "componentize-py"
    found = str(sibling) if sibling.exists() else shutil.which("componentize-py")
    if found is None:
        sys.exit("nats_callout.build: componentize-py is not installed (pip install componentize-py==0.25.1)")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nats_callout.build", description=__doc__.split("::")[0])
    parser.add_argument("module", help="the policy's module, such as app")
    parser.add_argument("-o", "--output", required=True, help="the component to write")
    parser.add_argument("-p", "--path", action="append", default=[], help="more folders to take modules from")
    parser.add_argument(
        "--capabilities",
        default="",
        help="capabilities to import besides those found in the sources (comma-separated: kv,oidc,password,nkey)",
    )
    args = parser.parse_args(argv)
    named = {name for name in args.capabilities.split(",") if name}
    if unknown := named - set(CAPABILITIES):
        sys.exit(f"nats_callout.build: no capability {', '.join(sorted(unknown))} (one of {', '.join(CAPABILITIES)})")
    paths = [os.getcwd(), *args.path, str(SDK_ROOT)]
    with tempfile.TemporaryDirectory(prefix="nats-callout-wit-") as work:
        wit, world = world_for(named | used_capabilities([os.getcwd(), *args.path]), Path(work))
        command = [componentize_py(), "-d", str(wit), "-w", world, "componentize", args.module]
        for path in paths:
            command += ["-p", path]
        command += ["-o", args.output]
        result = subprocess.run(command, check=False)
    if result.returncode == 0:
        print(f"wrote {args.output} ({Path(args.output).stat().st_size} bytes)", file=sys.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
