"""Tiny synthetic data and a tiny DIAS config shared by the run-layer tests."""

import pytest
from tiny_run import TINY

from harness.data import SynthConfig, write_synthetic
from harness.registry import get_config


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    write_synthetic(root, SynthConfig(resolution=32, seed=3), train=48, val=16)
    return root


@pytest.fixture
def tiny_config():
    return get_config("dias", "synthetic", TINY)
