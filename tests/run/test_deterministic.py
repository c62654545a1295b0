"""`--deterministic`: two runs of one command are bit-identical, and the record says how they were computed."""

import json
import os

import torch
from tiny_run import TINY

from harness.cli import main
from harness.compute import DETERMINISTIC_ENV


def test_deterministic_reruns_are_bit_identical_and_recorded(tmp_path, synth_dir, monkeypatch):
    for name in (DETERMINISTIC_ENV, "HARNESS_CPU_LINEAR", "CUBLAS_WORKSPACE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    threads = torch.get_num_threads()
    try:
        for run in ("a", "b"):
            argv = ["train", "--method", "dias", "--dataset", "synthetic", "--data-dir", str(synth_dir), "--seed", "5",
                    "--out", str(tmp_path / run), "--deterministic", "--threads", "1"]
            assert main(argv + [a for o in TINY for a in ("--set", o)]) == 0
            assert torch.are_deterministic_algorithms_enabled() and os.environ["HARNESS_CPU_LINEAR"] == "blas"
    finally:
        torch.use_deterministic_algorithms(False)
        torch.set_num_threads(threads)
    assert (tmp_path / "a" / "weights.pth").read_bytes() == (tmp_path / "b" / "weights.pth").read_bytes()
    hardware = json.loads((tmp_path / "a" / "run.json").read_text())["hardware"]
    assert (hardware["deterministic"], hardware["threads"], hardware["linear"]) == (True, 1, "blas")
    assert hardware["linear_why"] == "$HARNESS_CPU_LINEAR=blas"
