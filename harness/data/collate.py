"""Batching: the authors' `ClPadToMax1(keys=["segment"], dims=[2])` then `default_collate` (docs/reference.md#transforms-and-collate)."""

from __future__ import annotations

import torch.nn.functional as F
from torch.utils.data import default_collate


def collate(samples: list[dict]) -> dict:
    """Right-pad each (R,R,S) bool `segment` with all-False channels to the batch's largest S, then stack.

    → {"image": (b,3,R,R) float32, "segment": (b,R,R,Smax) bool}. Padded channels are empty, and empty
    channels change no metric (docs/reference.md#evaluation-protocol).
    """
    slots = max(s["segment"].shape[2] for s in samples)
    padded = [{**s, "segment": F.pad(s["segment"], (0, slots - s["segment"].shape[2]), value=False)}
              for s in samples]
    return default_collate(padded)
