"""Predicted segments from slot attention maps, as the authors make them (docs/reference.md#evaluation-protocol, DIAS
06e8039 `util_model.py: interpolat_argmax_attent` and the configs' `after_forward`): bilinear upsampling
(align_corners=False, no antialias) to the evaluation size, argmax over slots, one-hot.

`max(dim).indices` replaces `argmax(dim)`: the same first-index tie-breaking (tested) and several times
faster on CPU (docs/experiments.md#2026-11-24-speed-of-data-metrics-and-the-feature-cache).
The authors' one-hot has `batch max + 1` channels; ours has n (one per slot). The extra channels are
all-False, which changes no metric value (tested).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _size(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def attention_to_index(attn: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """(b, n, h, w) attention → (b, H, W) int64 index of the winning slot (for metrics and galleries).

    The attention is interpolated in its own dtype (the authors do not cast it after the fp16 forward).
    """
    upsampled = F.interpolate(attn, size=_size(size), mode="bilinear", align_corners=False)
    return upsampled.max(1).indices


def attention_to_segments(attn: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """(b, n, h, w) attention → one-hot bool (b, H·W, n) predicted segments, the `pred` of the metrics."""
    index = attention_to_index(attn, size).flatten(1)
    return index[..., None] == torch.arange(attn.shape[1], device=attn.device)
