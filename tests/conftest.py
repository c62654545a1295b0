"""Shared fixtures. Tests make their own data (synthetic LMDBs, tiny raw trees) in tmp dirs."""

import os

import pytest
import torch

# Two cores: keep torch from oversubscribing when pytest runs alongside data-loader workers.
torch.set_num_threads(min(2, os.cpu_count() or 1))

REFERENCE_DIR_ENV = "HARNESS_REFERENCE_DIR"


@pytest.fixture(scope="session")
def repo_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[1]
