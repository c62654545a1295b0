"""`train.compile`: the training forward through torch.compile trains as the eager one (here with the "eager"
backend, which traces the model with dynamo but runs its ops as they are, so that the test takes seconds)."""

import json

import torch
from tiny_run import TINY

from harness.nn.checkpoint import read_weights, save_weights
from harness.registry import get_config
from harness.run.train import build_model, train


def test_a_compiled_training_forward_trains_as_the_eager_one(synth_dir, tmp_path):
    steps = [*TINY, "train.steps=4", "train.val_interval=4"]
    eager = get_config("dias", "synthetic", steps)
    compiled = get_config("dias", "synthetic", [*steps, "train.compile=eager"])
    torch._dynamo.reset()
    train(eager, data_dir=synth_dir, run_dir=tmp_path / "eager", seed=0, progress=False)
    train(compiled, data_dir=synth_dir, run_dir=tmp_path / "compiled", seed=0, progress=False)
    a, b = read_weights(tmp_path / "eager" / "weights.pth"), read_weights(tmp_path / "compiled" / "weights.pth")
    assert a.keys() == b.keys()
    # the same steps up to float reassociation (traced linear layers use PyTorch's own kernels, harness.nn.onednn)
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) < 1e-4
    torch.manual_seed(0)
    save_weights(build_model(eager, torch.device("cpu")), tmp_path / "init.pth")  # the start (seeded as train)
    init = read_weights(tmp_path / "init.pth")
    moved = max((a[k].float() - init[k].float()).abs().max().item() for k in a)
    assert moved > 100 * max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    record = json.loads((tmp_path / "compiled" / "run.json").read_text())
    assert record["config"]["train"]["compile"] == "eager"
