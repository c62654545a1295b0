"""Index map after the transform → (R,R,S) bool ground-truth masks, per dataset as the v3 loaders do it
(docs/reference.md#data-format). Which pixels belong to no channel (COCO VOID, VOC boundaries) and the channel order are
what the metrics see, so each rule is kept exactly, quirks included. For the recognition probe the same
channels get their object classes and boxes (`open_split(..., extra=("clazz", "bbox"))`).
"""

from __future__ import annotations

import torch


def one_hot_bool(index_map: torch.Tensor, num_classes: int | None = None) -> torch.Tensor:
    """(H,W) integer → (H,W,C) bool, equal to `F.one_hot(index_map.long(), C).bool()` (C = max + 1 by default),
    several times faster: each pixel's row is gathered from the C×C identity by index_select with int32 indices,
    with no int64 map and no conversion pass. Contiguous, as F.one_hot's (a strided result would make the
    collate's cat and stack several times slower)."""
    if num_classes is None:
        num_classes = int(index_map.max()) + 1
    rows = torch.eye(num_classes, dtype=torch.bool).index_select(0, index_map.reshape(-1).int())
    return rows.view(*index_map.shape, num_classes)


def clevrtex_masks(index_map: torch.Tensor) -> torch.Tensor:
    """One channel per index 0..max (channel 0 = background); channels emptied by a crop stay (all False).

    Also used for the synthetic data, which has the same index semantics.
    """
    return one_hot_bool(index_map)


def voc_masks(index_map: torch.Tensor) -> torch.Tensor:
    """Drop index 0 (boundary outlines: in no channel) and channels left empty; background is channel 0
    when present (if a crop removed all background, channel 0 is an object: the authors' quirk)."""
    masks = one_hot_bool(index_map)[:, :, 1:]
    return masks[:, :, masks.any(dim=(0, 1))]


def coco_instance_masks(index_map: torch.Tensor, isthing: torch.Tensor) -> torch.Tensor:
    """COCO "instance" mode: channel 0 = union of the stuff segments (all False if none), then the thing
    segments in index order. VOID (index 0) is in no channel; segments emptied by a crop are dropped.

    `isthing` (S,) bool describes indices 1..S; every index must be ≤ S (checked by the caller).
    """
    masks = one_hot_bool(index_map, isthing.shape[0] + 1)[:, :, 1:]
    present = masks.any(dim=(0, 1))
    masks, isthing = masks[:, :, present], isthing[present]
    stuff = masks[:, :, ~isthing].any(dim=2, keepdim=True)
    return torch.cat([stuff, masks[:, :, isthing]], dim=2)


def coco_thing_classes(index_map: torch.Tensor, isthing: torch.Tensor, clazz: torch.Tensor) -> torch.Tensor:
    """The category ids of `coco_instance_masks`' channels 1.. (its things, in index order): the thing indices
    still present after the crop. Stuff and VOID have no class (docs/reference.md#object-recognition-probe)."""
    present = torch.bincount(index_map.flatten().long(), minlength=isthing.shape[0] + 1)[1:] > 0
    return clazz[present & isthing].long()


def index_classes(index_map: torch.Tensor, clazz: torch.Tensor) -> torch.Tensor:
    """The classes of `clevrtex_masks`' channels 1..max index: `clazz[i - 1]` describes index i. Channels a
    crop emptied keep their class (and get an all-zero box), as their masks stay."""
    count = int(index_map.max()) if index_map.numel() else 0
    if count > clazz.shape[0]:
        raise ValueError(f"segment index {count} exceeds the {clazz.shape[0]} entries of 'clazz'")
    return clazz[:count].long()


def boxes_from_masks(masks: torch.Tensor) -> torch.Tensor:
    """(H,W,K) bool → (K,4) float32 ltrb boxes as the authors derive them from the transformed masks
    (docs/reference.md#object-recognition-probe): l, t = the smallest column, row of the mask; r, b = the
    largest (inclusive, no +1); x ÷ W and y ÷ H, so values lie in [0, (W−1)/W]. An empty mask gets 0,0,0,0."""
    h, w, k = masks.shape
    if k == 0:
        return torch.zeros(0, 4, dtype=torch.float32)
    cols, rows = masks.any(0), masks.any(1)  # (W,K), (H,K): where each mask has a pixel
    x = torch.arange(w)[:, None].expand(w, k)
    y = torch.arange(h)[:, None].expand(h, k)
    big = max(h, w)
    left = torch.where(cols, x, big).amin(0)
    right = torch.where(cols, x, -1).amax(0)
    top = torch.where(rows, y, big).amin(0)
    bottom = torch.where(rows, y, -1).amax(0)
    boxes = torch.stack([left, top, right, bottom], 1)
    boxes[~cols.any(0)] = 0
    boxes = boxes.float()
    boxes[:, 0::2] /= w
    boxes[:, 1::2] /= h
    return boxes
