"""Tiny synthetic data and a tiny DIAS config shared by the run-layer tests."""

import pytest

from harness.data import SynthConfig, write_synthetic
from harness.registry import get_config

TINY = ["train.steps=12", "train.batch_size=8", "train.warmup_steps=2", "train.val_interval=6",
        "train.checkpoint_interval=3", "train.num_workers=0", "train.val_limit=8", "eval.batch_size=8",
        "num_slots=3"]


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    write_synthetic(root, SynthConfig(resolution=32, seed=3), train=48, val=16)
    return root


@pytest.fixture
def tiny_config():
    return get_config("dias", "synthetic", TINY)
