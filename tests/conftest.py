"""Shared fixtures. Tests make their own data (synthetic LMDBs, tiny raw trees) in tmp dirs."""

import os
from pathlib import Path

# Before torch loads OpenMP: idle threads sleep instead of spinning, which on 2 shared cores (data-loader
# workers, subprocess tests) made the suite ~3× slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

# Two cores: keep torch from oversubscribing when pytest runs alongside data-loader workers.
torch.set_num_threads(min(2, os.cpu_count() or 1))


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
