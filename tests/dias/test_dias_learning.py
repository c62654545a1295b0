"""Learning check of the synthetic DIAS config: a minimal Adam loop on the project's synthetic scenes."""

import re
import statistics

import pytest
import torch

from harness.data.synthetic import SynthConfig, generate
from harness.registry import create_model, get_config

IMAGENET_MEAN = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)


@pytest.mark.slow
def test_synthetic_config_total_loss_falls():
    """100 steps, batch 16, the config's lr, loss weights and frozen backbone: the total loss (recon + w·distill,
    w from the config's schedule at 0-based steps) falls to less than half."""
    torch.manual_seed(0)
    config = get_config("dias", "synthetic")
    model = create_model("dias", config=config).train()
    images, _ = generate(SynthConfig(resolution=config.resolution), "train", 0, 256)
    x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() - IMAGENET_MEAN) / IMAGENET_STD
    params = [p for n, p in model.named_parameters() if not any(re.match(f, n) for f in config.train.freeze)]
    assert len(params) < len(list(model.parameters()))
    optimizer = torch.optim.Adam(params, lr=config.train.lr)
    weights = config.train.loss_weights
    g = torch.Generator().manual_seed(0)
    totals = []
    for step in range(100):
        out = model(x[torch.randint(0, len(x), (16,), generator=g)])
        total = sum(loss * (weights[k](step, config.train.steps) if k in weights else 1.0)
                    for k, loss in out.losses.items())
        optimizer.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(params, config.train.grad_clip)
        optimizer.step()
        totals.append(total.item())
    first, last = statistics.mean(totals[:10]), statistics.mean(totals[-10:])
    assert last < 0.5 * first, (first, last)
