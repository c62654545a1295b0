"""`segmentation_metrics`: ARI, ARI-fg, mBO and mIoU per image, under a named protocol
(docs/architecture.md#public-contracts)."""

from __future__ import annotations

import torch

from harness.errors import HarnessError
from harness.metrics.ari import adjusted_rand_index
from harness.metrics.counts import pixel_counts
from harness.metrics.iou import iou_matrix, mean_best_overlap, mean_hungarian_iou
from harness.metrics.protocols import DEFAULT_PROTOCOL, PROTOCOLS, Protocol


class MetricInputError(HarnessError):
    """Masks handed to the metrics do not have the contracted type or shape."""


def _check(pred: torch.Tensor, gt: torch.Tensor) -> None:
    for name, masks, channels in (("pred", pred, "c"), ("gt", gt, "d")):
        if not isinstance(masks, torch.Tensor) or masks.dtype != torch.bool or masks.ndim != 3:
            got = f"{masks.dtype} {tuple(masks.shape)}" if isinstance(masks, torch.Tensor) else type(masks).__name__
            raise MetricInputError(f"{name}: expected a bool tensor (b, N, {channels}) of one-hot masks, got {got}")
    if pred.shape[:2] != gt.shape[:2]:
        raise MetricInputError(f"pred {tuple(pred.shape)} and gt {tuple(gt.shape)} differ in batch or pixel count")
    if pred.device != gt.device:
        raise MetricInputError(f"pred is on {pred.device} but gt on {gt.device}")


def _apply_pixel_rules(pred: torch.Tensor, gt: torch.Tensor, protocol: Protocol):
    """The protocol's treatment of overlapping and unlabelled gt pixels, before anything is counted."""
    keep = None
    if protocol.overlapping_pixels == "ignored":
        keep = (gt.sum(-1) <= 1)[..., None]
        pred, gt = pred & keep, gt & keep
    if protocol.unlabelled_pixels == "background" and gt.shape[2]:
        unlabelled = ~gt.any(-1, keepdim=True)
        if keep is not None:
            unlabelled &= keep
        gt = torch.cat([gt[..., :1] | unlabelled, gt[..., 1:]], -1)
    return pred, gt


def segmentation_metrics(pred: torch.Tensor, gt: torch.Tensor,
                         protocol: str | Protocol = DEFAULT_PROTOCOL) -> dict[str, torch.Tensor]:
    """Per-image metrics of one batch.

    pred: bool (b, N, c) one-hot predicted segments (N pixels); gt: bool (b, N, d) one-hot gt segments,
    channel 0 = background; pixels in no gt channel (VOID, boundary) are unlabelled.
    Returns float tensors (b,) `ari`, `ari_fg`, `mbo`, `miou` (float32 under "dias-v3", float64 otherwise)
    and bool (b,) `valid` (the gt has a labelled pixel) and `valid_fg` (the gt without channel 0 has one),
    both judged after the protocol's pixel rules. Values of invalid images are what the formulas give
    (ARI 1.0, mBO/mIoU NaN): `Protocol.mean_over` says which images enter each dataset mean.

    Runs on the inputs' device; the only host transfer is the batch's IoU matrices for the Hungarian
    matching. Autocast is switched off: counts must stay exact.
    """
    _check(pred, gt)
    spec = protocol if isinstance(protocol, Protocol) else PROTOCOLS.get(protocol)
    dtype = torch.float32 if spec.arithmetic == "dias-v3" else torch.float64
    with torch.autocast(pred.device.type, enabled=False):
        pred, gt = _apply_pixel_rules(pred, gt, spec)
        contingency, pred_sizes, gt_sizes = pixel_counts(pred, gt)
        skip = 0 if spec.background_in_overlap else 1
        iou = iou_matrix(contingency[:, :, skip:], pred_sizes, gt_sizes[:, skip:], dtype)
        return {
            "ari": adjusted_rand_index(contingency, spec.arithmetic),
            "ari_fg": adjusted_rand_index(contingency[:, :, 1:], spec.arithmetic),
            "mbo": mean_best_overlap(iou, gt_sizes[:, skip:]),
            "miou": mean_hungarian_iou(iou, pred_sizes, gt_sizes[:, skip:]),
            "valid": (gt_sizes > 0).any(1),
            "valid_fg": (gt_sizes[:, 1:] > 0).any(1),
        }
