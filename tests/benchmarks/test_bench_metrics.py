"""Metric cost per evaluation batch (32 images of 256², 7 slots, up to 24 gt segments), as in the authors'
eval. Run with `python -m pytest tests/benchmarks/test_bench_metrics.py --benchmark-enable`."""

import pytest
import torch
import torch.nn.functional as F

from harness.metrics import attention_to_index, attention_to_segments, segmentation_metrics

B, SLOTS, GRID, SIZE, GT_MAX = 32, 7, 16, 256, 24


@pytest.fixture(scope="module")
def attention():
    return torch.rand(B, SLOTS, GRID, GRID, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def batch(attention):
    """Predicted segments from attention; gt from coarse random label maps (blocky segments, 2–24 per image,
    channel 0 the largest, ~3 % unlabelled pixels), padded to 24 channels like the authors' collate."""
    g = torch.Generator().manual_seed(1)
    counts = torch.randint(2, GT_MAX + 1, (B,), generator=g)
    coarse = (torch.rand(B, 1, 8, 8, generator=g) * counts[:, None, None, None]).long()
    coarse[:, :, :, :3] = 0  # a large background
    labels = F.interpolate(coarse.float(), size=(SIZE, SIZE), mode="nearest").long().flatten(1)
    labels[torch.rand(B, SIZE * SIZE, generator=g) < 0.03] = -1
    gt = labels[..., None] == torch.arange(GT_MAX)
    return attention_to_segments(attention, SIZE), gt


@pytest.mark.parametrize("protocol", ["dias-v3", "exact"])
def test_bench_segmentation_metrics(benchmark, batch, protocol):
    pred, gt = batch
    out = benchmark(segmentation_metrics, pred, gt, protocol)
    assert out["valid"].all() and out["ari"].shape == (B,)


def test_bench_attention_to_segments(benchmark, attention):
    out = benchmark(attention_to_segments, attention, SIZE)
    assert out.shape == (B, SIZE * SIZE, SLOTS)


def test_bench_argmax_reference(benchmark, attention):
    """The authors' `interpolate(...).argmax(1)`: what `max(1).indices` in attention_to_index replaces."""
    up = F.interpolate(attention, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    out = benchmark(lambda: up.argmax(1))
    assert torch.equal(out, attention_to_index(attention, SIZE))


def test_bench_max_indices(benchmark, attention):
    up = F.interpolate(attention, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    out = benchmark(lambda: up.max(1).indices)
    assert torch.equal(out, up.argmax(1))
