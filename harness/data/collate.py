"""Batching: the authors' `ClPadToMax1(keys=["segment", "bbox", "clazz"], dims=[2, 0, 0])` then
`default_collate` (docs/reference.md#transforms-and-collate, #object-recognition-probe)."""

from __future__ import annotations

import torch
from torch.utils.data import default_collate

# key → (dimension padded to the batch's largest size, fill value); keys a sample lacks are left alone.
PADDING = {"segment": (2, False), "bbox": (0, 0.0), "clazz": (0, 0)}


def _pad(tensor: torch.Tensor, dim: int, size: int, value) -> torch.Tensor:
    shape = list(tensor.shape)
    shape[dim] = size - shape[dim]
    return torch.cat([tensor, tensor.new_full(shape, value)], dim)


def collate(samples: list[dict]) -> dict:
    """Right-pad each (R,R,S) bool `segment` with all-False channels to the batch's largest S, and the optional
    per-object `bbox` (K,4) with 0.0 and `clazz` (K,) with 0 to the largest K, then stack.

    → {"image": (b,3,R,R) float32, "segment": (b,R,R,Smax) bool[, "bbox": (b,Kmax,4), "clazz": (b,Kmax)]}.
    Padded channels are empty, and empty channels change no metric; padded objects have an empty mask, so
    the recognition matching never keeps them.
    """
    padded = [dict(s) for s in samples]
    for key, (dim, value) in PADDING.items():
        if key in samples[0]:
            size = max(s[key].shape[dim] for s in samples)
            for s in padded:
                s[key] = _pad(s[key], dim, size, value)
    return default_collate(padded)
