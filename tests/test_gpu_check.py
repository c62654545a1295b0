"""scripts/gpu-check.sh on its CPU path (`--device cpu --steps 3`), so that it keeps working between GPU sessions:
the CUDA tests skip, every learned method trains with finite losses, compile parity and the cached/uncached
evaluation run, and the JSON holds them all."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.tools.bench import default_methods
from harness.tools.gpu_check import device_slug

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(os.name != "posix", reason="a bash script")
def test_gpu_check_script_cpu_path(tmp_path):
    output = tmp_path / "cpu.json"
    env = dict(os.environ, PYTHON=sys.executable, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu-check.sh"), "--device", "cpu", "--steps", "3",
                           "--compile-backend", "eager", "--eval-images", "2", "--batch-size", "2",
                           "--matmul-size", "128", "--output", str(output)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "skipped" in done.stdout  # the CUDA tests, on a CPU
    result = json.loads(output.read_text())
    assert [row["method"] for row in result["training"]] == default_methods("synthetic")
    assert all(row["finite"] and row["steps"] == 3 for row in result["training"])
    assert result["compile"]["ok"] and result["compile"]["max abs diff"] == 0.0  # the eager backend only traces
    assert [row["amp"] for row in result["eval"]["rows"]] == ["fp16", "fp32"]
    assert all(row["identical metrics"] for row in result["eval"]["rows"]) and result["ok"]


def test_device_slug():
    import torch

    assert device_slug(torch.device("cpu")) == "cpu"
