"""Pixel counts of one batch: the (pred × gt) contingency table and every mask's size, from one matmul.

The authors build the contingency with a float64 einsum and cast it to int64; the counts are exact integers
either way, so the dtype of the matmul is ours to choose: float32 is exact while every partial sum stays
below 2^24 (at most N pixels; also under TF32, whose 0/1 inputs are exact and accumulation is float32),
float64 beyond. A column of ones appended to both operands yields |pred| and |gt| from the same matmul —
much cheaper than reducing the bool masks over pixels. The bool → float copies dominate the cost.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

# Upper bound on the elements of one float operand; the batch is processed in chunks of whole images so
# that the float copies of the masks stay small on CPU (on GPU a chunk is usually the whole batch).
_CHUNK_ELEMENTS = 1 << 24
_FLOAT32_EXACT = 1 << 24


class PixelCounts(NamedTuple):
    contingency: torch.Tensor  # (b, c, d) int64: pixels in pred channel i and gt channel j
    pred_sizes: torch.Tensor  # (b, c) int64: |pred| over ALL pixels, labelled or not
    gt_sizes: torch.Tensor  # (b, d) int64: |gt|


def _with_ones_torch(masks: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(k, N, m) bool → (k, N, m+1) float with a trailing column of ones."""
    k, n, m = masks.shape
    out = torch.ones(k, n, m + 1, dtype=dtype, device=masks.device)
    out[..., :m] = masks
    return out


def _with_ones_numpy(masks: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The same for CPU tensors: torch's bool → float copy is several times slower than numpy's on CPU and it
    dominates the metrics' cost (docs/experiments.md#2026-11-24-speed-of-data-metrics-and-the-feature-cache)."""
    k, n, m = masks.shape
    out = np.ones((k, n, m + 1), dtype=np.float32 if dtype == torch.float32 else np.float64)
    out[..., :m] = masks.numpy()
    return torch.from_numpy(out)


def pixel_counts(pred: torch.Tensor, gt: torch.Tensor) -> PixelCounts:
    """Counts for bool masks pred (b, N, c) and gt (b, N, d) on their own device (no host sync)."""
    b, n, c = pred.shape
    d = gt.shape[2]
    dtype = torch.float32 if n <= _FLOAT32_EXACT else torch.float64
    table = torch.empty(b, c + 1, d + 1, dtype=torch.int64, device=pred.device)
    with_ones = _with_ones_numpy if pred.device.type == "cpu" else _with_ones_torch
    chunk = max(1, _CHUNK_ELEMENTS // max(1, n * (max(c, d) + 1)))
    for start in range(0, b, chunk):
        stop = start + chunk
        p = with_ones(pred[start:stop], dtype)
        g = with_ones(gt[start:stop], dtype)
        table[start:stop] = torch.bmm(p.transpose(1, 2), g).to(torch.int64)
    return PixelCounts(table[:, :c, :d], table[:, :c, d], table[:, c, :d])
