"""Adding a method is one file plus one registration line, and the contract tests cover it without being edited:
run tests/contract/test_contract.py in a fresh interpreter with the throwaway method registered, and read which tests
it collected and how they ended."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_the_contract_tests_pick_up_a_newly_registered_method():
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.contract.throwaway_method", "-k", "throwaway",
         "-rA", "tests/contract/test_contract.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    passed = [line for line in done.stdout.splitlines() if line.startswith("PASSED")]
    assert any("test_small_config_forward_backward_and_declared_abilities[throwaway/synthetic]" in p for p in passed)
    assert any("test_a_config_names_the_method_and_dataset_it_is_registered_under[throwaway/synthetic]" in p
               for p in passed)


def test_a_registered_method_joins_the_registry_derived_tables():
    done = subprocess.run(
        [sys.executable, "-c", "import tests.contract.throwaway_method\n"
         "from harness.tables import TABLES\n"
         "print([r.label for r in TABLES.get('mini-random').rows])"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    labels = eval(done.stdout.strip().splitlines()[-1])
    assert "throwaway" in labels and "throwaway-untrained" in labels
    assert labels[0] == "dias" and labels.index("throwaway") < labels.index("dias-untrained")


def test_a_new_method_leaves_the_golden_drift_check_green(mini_ci, tmp_path):
    """CI's drift check with the throwaway method registered (in a fresh interpreter): mini-ci runs its new cells
    beside copies of every other record, and `check-drift` lists its rows as new and passes."""
    import shutil

    results = tmp_path / "runs"
    shutil.copytree(mini_ci.results / "mini-ci", results / "mini-ci", ignore=shutil.ignore_patterns("runs", "jobs"))
    golden = ROOT / "results" / "golden" / "mini-ci.json"
    script = ("import tests.contract.throwaway_method\n"
              "from harness.cli import main\n"
              f"assert main(['reproduce', '--table', 'mini-ci', '--data-dir', {str(mini_ci.data)!r}, '--results', "
              f"{str(results)!r}, '--out', {str(tmp_path / 'reports')!r}, '--jobs', '1']) == 0\n"
              f"raise SystemExit(main(['check-drift', '--table', 'mini-ci', '--results', {str(results)!r}, "
              f"'--against', {str(golden)!r}]))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "4 to run" in done.stdout  # the throwaway's trained and untrained cells, two seeds; nothing else
    assert "new rows, not in the golden file" in done.stdout and "throwaway, throwaway-untrained" in done.stdout
