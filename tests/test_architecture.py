"""The layering rules of docs/architecture.md, checked on every test run."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tme_sim"

#: internal modules whose import pulls a heavy third-party stack (torch, dask, matplotlib, imageio):
#: the only ones a function may import locally (outside the CLI)
HEAVY = (
    "tme_sim.intracellular.neural",  # torch
    "tme_sim.training",  # torch
    "tme_sim.screening.surrogate_model",  # torch
    "tme_sim.screening.report",  # matplotlib
    "tme_sim.plotting",  # matplotlib, imageio
    "tme_sim.compare",  # matplotlib
    "tme_sim.sweep",  # dask
)


def test_import_layers_and_no_cycles() -> None:
    exe = Path(sys.executable).with_name("lint-imports")
    cmd = str(exe) if exe.exists() else shutil.which("lint-imports")
    if cmd is None:
        pytest.fail("lint-imports is not installed: run the README's test command (it installs '.[test]')")
    proc = subprocess.run([cmd, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken" in proc.stdout


def _local_internal_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tme_sim"):
                found.append((node.lineno, node.module))
            elif isinstance(node, ast.Import):
                found += [(node.lineno, a.name) for a in node.names if a.name.startswith("tme_sim")]
    return found


def test_function_local_imports_only_defer_heavy_stacks() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[1] == "cli":  # the CLI defers everything: `tme --help` stays fast
            continue
        for line, module in _local_internal_imports(path):
            if not module.startswith(HEAVY):
                offenders.append(f"{rel}:{line}: imports {module} inside a function")
    assert not offenders, "\n".join(offenders)
