"""Index map after the transform → (R,R,S) bool ground-truth masks, per dataset as the v3 loaders do it
(docs/reference.md#data-format). Which pixels belong to no channel (COCO VOID, VOC boundaries) and the channel order are
what the metrics see, so each rule is kept exactly, quirks included.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def clevrtex_masks(index_map: torch.Tensor) -> torch.Tensor:
    """One channel per index 0..max (channel 0 = background); channels emptied by a crop stay (all False).

    Also used for the synthetic data, which has the same index semantics.
    """
    return F.one_hot(index_map.long()).bool()


def voc_masks(index_map: torch.Tensor) -> torch.Tensor:
    """Drop index 0 (boundary outlines: in no channel) and channels left empty; background is channel 0
    when present (if a crop removed all background, channel 0 is an object: the authors' quirk)."""
    masks = F.one_hot(index_map.long()).bool()[:, :, 1:]
    return masks[:, :, masks.any(dim=(0, 1))]


def coco_instance_masks(index_map: torch.Tensor, isthing: torch.Tensor) -> torch.Tensor:
    """COCO "instance" mode: channel 0 = union of the stuff segments (all False if none), then the thing
    segments in index order. VOID (index 0) is in no channel; segments emptied by a crop are dropped.

    `isthing` (S,) bool describes indices 1..S; every index must be ≤ S (checked by the caller).
    """
    masks = F.one_hot(index_map.long(), num_classes=isthing.shape[0] + 1).bool()[:, :, 1:]
    present = masks.any(dim=(0, 1))
    masks, isthing = masks[:, :, present], isthing[present]
    stuff = masks[:, :, ~isthing].any(dim=2, keepdim=True)
    return torch.cat([stuff, masks[:, :, isthing]], dim=2)
