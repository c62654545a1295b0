"""The layers of docs/architecture.md#layers, enforced by import-linter (contracts in pyproject.toml): they hold on the
tree, and each breaks when a back-import, a method's import of the run layer or a cycle is planted in a copy of it."""

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("harness", "dias", "baselines")


def lint(root: Path) -> subprocess.CompletedProcess:
    """import-linter on the packages found first under `root`, with the repository's contracts."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                           "lint_imports_command()", "--config", str(REPO / "pyproject.toml"), "--no-cache"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_the_import_contracts_hold():
    done = lint(REPO)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert f"Contracts: {len(contracts)} kept, 0 broken." in done.stdout


def test_the_layer_table_of_the_docs_is_the_contract():
    """docs/architecture.md lists, per layer, the modules of the contract's layer (same order, same names)."""
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if c["type"] == "layers")["layers"]
    docs = (REPO / "docs" / "architecture.md").read_text()
    section = docs.split("\n## Layers\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| layer")]
    assert len(rows) == len(layers)
    for row, layer in zip(rows, layers):
        modules = {m.strip() for m in layer.replace("|", ":").split(":")}
        named = {path.rstrip("/").removesuffix(".py").replace("/", ".")
                 for path in re.findall(r"`(harness/[a-z_/]*(?:\.py)?)`", row.split("|")[2])}
        assert modules == named, (row, layer)


@pytest.mark.parametrize("where, planted, broken", [
    ("harness/report/stats.py", "import harness.run.train", "Layers"),  # the report imports the run layer
    ("harness/run/cell.py", "import harness.engine", "Layers"),  # the run layer imports orchestration
    ("dias/model.py", "import harness.run.train", "Methods import only the documented foundations"),
    ("harness/io.py", "import harness.nn.checkpoint", "No import cycles"),  # io ↔ nn
])
def test_a_planted_violation_breaks_its_contract(tmp_path, where, planted, broken):
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    path = tmp_path / where
    path.write_text(path.read_text() + f"\n{planted}  # planted\n")
    done = lint(tmp_path)
    assert done.returncode != 0, done.stdout[-2000:]
    assert f"{broken}" in done.stdout and "BROKEN" in done.stdout
