"""Learning check of the synthetic DIAS config: training's own optimiser step (harness.run.step) on the project's
synthetic scenes."""

import statistics

import pytest
import torch

from harness.data.synthetic import SynthConfig, generate
from harness.data.transforms import normalize
from harness.registry import get_config
from harness.run.step import Stepper
from harness.run.train import build_model


@pytest.mark.slow
def test_synthetic_config_total_loss_falls():
    """100 steps, batch 16, the config's lr schedule, loss weights, clip and frozen backbone: the total loss
    (recon + w·distill) falls to less than half."""
    torch.manual_seed(0)
    config = get_config("dias", "synthetic", ["train.steps=100"])
    model = build_model(config, torch.device("cpu"), initial=False).train()
    images, _ = generate(SynthConfig(resolution=config.resolution), "train", 0, 256)
    x = torch.stack([normalize(torch.from_numpy(image).permute(2, 0, 1)) for image in images])
    stepper = Stepper(model, config.train, torch.device("cpu"), "off")
    g = torch.Generator().manual_seed(0)
    totals = []
    for step in range(100):
        batch = x[torch.randint(0, len(x), (16,), generator=g)]
        totals.append(float(stepper(step, lambda: model(batch).losses)["loss"]))
    first, last = statistics.mean(totals[:10]), statistics.mean(totals[-10:])
    assert last < 0.5 * first, (first, last)
