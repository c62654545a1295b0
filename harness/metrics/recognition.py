"""Object recognition from slots: which slot stands for which object, and the probe's metrics, under named
protocols (`RECOGNITION_PROTOCOLS`; `python -m harness metrics explain smoothsa-v3`).

The probe protocol is the SmoothSA authors' (the DIAS authors' probe code; docs/reference.md#object-recognition-probe):
per image, slots are matched one-to-one to the ground-truth *thing* masks by the Hungarian algorithm on the IoU
of the slots' argmax segments (from the Slot Attention maps) with the things; a matched pair whose IoU is above
a threshold gives one training example and one evaluation pair — the slot vector, the object's class id and box.
Unmatched slots and objects are ignored. The metrics are micro-averages over all kept pairs of the split.

Their filter also keeps a pair only if its gt column index is among `seggt.unique()` of the *boolean* mask
tensor, i.e. in {False, True} = {0, 1}: only the first two things of an image can be kept (`smoothsa-v3`,
`smoothsa-v4` reproduce it; `all-objects` is the corrected variant).

Everything here is a pure function of tensors; `RecognitionTally` accumulates the per-pair values over batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from harness.names import Registry


@dataclass(frozen=True)
class RecognitionProtocol:
    """The choices behind a set of recognition numbers.

    iou_threshold: a matched pair is kept iff its IoU is strictly above this (float32 comparison).
    first_two_only: the authors' filter that keeps only gt thing columns 0 and 1 (see the module docstring).
    mask: the model output mask (`ModelOutput.masks[mask]`) matched against the objects.
    """

    name: str
    summary: str
    iou_threshold: float
    first_two_only: bool
    sources: tuple[str, ...]
    caveats: tuple[str, ...] = ()
    mask: str = "aggregator"

    def __post_init__(self):
        if not self.iou_threshold > 0:
            raise ValueError(f"recognition protocol {self.name!r}: iou_threshold must be > 0 (it also drops the "
                             f"padded objects, whose IoU is 0), got {self.iou_threshold}")

    def explain(self) -> str:
        kept = ("only gt thing columns 0 and 1 (the first two things of each image, in panoptic index order) "
                "can be kept: the authors' filter tests `col in seggt.unique()` on a bool tensor"
                if self.first_two_only else "every matched thing can be kept")
        lines = [
            f"{self.name}: {self.summary}",
            f"  slot masks:          the model's '{self.mask}' attention (Slot Attention), bilinear to the gt size, "
            "argmax over slots, one-hot",
            "  matching:            per image, Hungarian (scipy linear_sum_assignment, maximize) on the IoU of slot "
            "masks vs gt thing masks; |pred| counts every pixel (VOID too); union 0 ⇒ IoU 0",
            f"  kept pairs:          IoU > {self.iou_threshold:g} (strict; also drops padded objects); {kept}",
            "  classes:             top-1 / top-3 of the probe's class logits against the dataset's class id "
            "(COCO: panoptic category_id; no background class)",
            "  boxes:               the probe's raw box output and the gt box both read as (l, t, r, b); gt boxes "
            "are inclusive extents of the transformed mask ÷ size; pairs whose union area is ≤ 0 are left out "
            "of the box IoU only",
            "  aggregation:         per-pair values concatenated over the split, then the mean (micro average "
            "over matched pairs, not per image); 'matched' = number of kept pairs",
            "  sources:",
            *(f"    - {s}" for s in self.sources),
        ]
        if self.caveats:
            lines += ["  caveats (not verified / not covered):", *(f"    - {c}" for c in self.caveats)]
        return "\n".join(lines)


RECOGNITION_PROTOCOLS: Registry[RecognitionProtocol] = Registry("recognition protocol")
DEFAULT_RECOGNITION_PROTOCOL = "smoothsa-v3"
RECOGNITION_METRICS = ("top1", "top3", "box_iou", "matched")

_V3 = "Genera1Z/SmoothSA@5a8c476"
_V4 = "Genera1Z/SmoothSA@880834d"
_PROBE_SOURCES = (
    "object_centric_bench/model/obj_discov_recogn.py: ObjDiscovRecogn.filter_items (IoU of the slot masks with "
    "seggt[:, :, 1:], hungarian_matching, `iou > thresh_iou`, `col in seggt[i].unique()`)",
    "object_centric_bench/util_learn.py: intersection_over_union (float64 intersection → float32), "
    "hungarian_matching (scipy, maximize=True)",
    "object_centric_bench/learn/metric.py: ClassAccuracy (argmax / topk), BoxIoU (ltrb, valid = union > 0); "
    "learn/callback_log.py: HandleLog concatenates per-pair values, then np.mean",
    "config-spot/spot_r_recogn-coco.py: slotz_idx 1, attpd_idx 2 (SA attention), Xywh2Ltrb attached under the "
    "key 'transforms', which MetricWrap never reads (boxes stay raw ltrb)",
)

RECOGNITION_PROTOCOLS.register("smoothsa-v3", RecognitionProtocol(
    name="smoothsa-v3",
    summary="the SmoothSA/DIAS authors' object-recognition probe as published in v3 (threshold 0.001, first "
            "two things only)",
    iou_threshold=1e-3,
    first_two_only=True,
    sources=tuple(f"{_V3} {s}" for s in _PROBE_SOURCES) + (
        f"{_V3} config-spot/spot_r_recogn-coco.py, config-smoothsa/smoothsa_r_recogn-coco.py: thresh_iou=1e-3",),
    caveats=("SPOT slots carry sampled noise at evaluation too and the authors do not seed evaluation: their "
             "two published v3 evaluations of the same checkpoints differ by up to 0.3 points",),
))

RECOGNITION_PROTOCOLS.register("smoothsa-v4", RecognitionProtocol(
    name="smoothsa-v4",
    summary="the authors' later probe (v4): smoothsa-v3 with threshold 0.1 (first two things only)",
    iou_threshold=0.1,
    first_two_only=True,
    sources=tuple(f"{_V4} {s}" for s in _PROBE_SOURCES) + (
        f"{_V4} config-*/*_r_recogn-coco.py: thresh_iou=0.1",),
    caveats=("the authors' v4 numbers also come from v4 data (PNG segment maps) and code not verified here",),
))

RECOGNITION_PROTOCOLS.register("all-objects", RecognitionProtocol(
    name="all-objects",
    summary="corrected: every matched thing counts (no first-two filter), threshold 0.1",
    iou_threshold=0.1,
    first_two_only=False,
    sources=tuple(f"{_V4} {s}" for s in _PROBE_SOURCES[:3]) + (
        "threshold 0.1 as the authors' v4: once every thing counts, 0.001 would also keep the many pairs "
        "in which a slot merely touches a small thing that another slot covers; a slot with under a tenth "
        "of IoU does not stand for the object, and its class says little about the slot",),
    caveats=("not the authors' protocol: no published number is comparable; compare methods with each other",),
))


def slot_segments(attention: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """(b,n,h,w) slot attention → (b,H·W,c) bool one-hot segments, as the authors' probe builds them: bilinear
    (align_corners=False, no antialias), argmax over slots, one-hot with c = the batch's largest index + 1
    channels (their `F.one_hot` without a class count; the channel count can break Hungarian ties). The attention
    is interpolated in its own dtype, as theirs after the fp16 forward."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    index = F.interpolate(attention, size=size, mode="bilinear", align_corners=False).argmax(1)
    return F.one_hot(index.flatten(1)).bool()


def slot_object_iou(pred: torch.Tensor, things: torch.Tensor) -> torch.Tensor:
    """(b,N,c) bool slot segments × (b,N,K) bool thing masks → (b,c,K) float32 IoU, op for op as the authors:
    float64 intersection cast to float32, |pred| + |gt| − I, 0 where the union is 0. |pred| counts all pixels."""
    inter = torch.einsum("bnc,bnd->bcd", pred.double(), things.double()).float()
    union = pred.sum(1)[:, :, None] + things.sum(1)[:, None, :] - inter
    return torch.where(union == 0, torch.zeros_like(inter), inter / union)


@dataclass(frozen=True)
class Matches:
    """Kept (image, slot, object) triples, flat over the batch in the authors' order (image, then slot)."""

    image: torch.Tensor  # (m,) int64
    slot: torch.Tensor  # (m,) int64
    obj: torch.Tensor  # (m,) int64: gt object column (segment channel − 1)
    iou: torch.Tensor  # (m,) float32

    def __len__(self) -> int:
        return int(self.image.shape[0])


def match_objects(pred: torch.Tensor, segment: torch.Tensor, protocol: RecognitionProtocol) -> Matches:
    """Match slots to things and keep the pairs `protocol` keeps.

    pred: (b,N,c) bool slot segments (`slot_segments`); segment: (b,H,W,S) bool gt of the data layer, channel 0
    = background/stuff, channels 1.. = things (padded channels are empty).
    """
    b = segment.shape[0]
    flat = segment.reshape(b, -1, segment.shape[-1])
    iou = slot_object_iou(pred, flat[:, :, 1:]).cpu().numpy()
    threshold = torch.tensor(protocol.iou_threshold, dtype=torch.float32).item()  # compared in float32
    kept: list[tuple[int, int, int, float]] = []
    for i in range(b):
        rows, cols = linear_sum_assignment(iou[i], maximize=True)
        if protocol.first_two_only:
            # `col in seggt[i].unique()` with seggt bool: the values False/True, compared as 0/1.
            allowed = set(torch.unique(flat[i]).long().tolist())
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            value = iou[i, r, c]
            if value > threshold and (not protocol.first_two_only or c in allowed):
                kept.append((i, r, c, float(value)))
    columns = list(zip(*kept, strict=True)) if kept else [(), (), (), ()]
    return Matches(*(torch.tensor(col, dtype=torch.int64) for col in columns[:3]),
                   iou=torch.tensor(columns[3], dtype=torch.float32))


def gather_matched(matches: Matches, slots: torch.Tensor, clazz: torch.Tensor, bbox: torch.Tensor):
    """(b,n,d) slots, (b,K) class ids, (b,K,4) boxes → the kept pairs' (m,d) slots, (m,) int64 classes, (m,4) boxes."""
    image, slot, obj = (t.to(slots.device) for t in (matches.image, matches.slot, matches.obj))
    return slots[image, slot], clazz.to(slots.device)[image, obj].long(), bbox.to(slots.device)[image, obj].float()


def topk_hits(logits: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
    """(m,C) logits, (m,) targets → (m,) float32: 1 where the target is among the top k (k = 1: the argmax)."""
    if k == 1:
        return (logits.argmax(-1) == target).float()
    return (logits.topk(k, -1).indices == target[:, None]).any(-1).float()


def ltrb_box_iou(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(m,4) × (m,4) boxes both read as (l,t,r,b) → (iou (m,), valid (m,) bool), as the authors' BoxIoU: no clamp
    of inverted boxes (their area can be negative), intersection clamped at 0, valid = union > 0."""
    inter_w = (torch.minimum(pred[:, 2], target[:, 2]) - torch.maximum(pred[:, 0], target[:, 0])).clamp(min=0)
    inter_h = (torch.minimum(pred[:, 3], target[:, 3]) - torch.maximum(pred[:, 1], target[:, 1])).clamp(min=0)
    inter = inter_w * inter_h
    area_pred = (pred[:, 2] - pred[:, 0]) * (pred[:, 3] - pred[:, 1])
    area_target = (target[:, 2] - target[:, 0]) * (target[:, 3] - target[:, 1])
    union = area_pred + area_target - inter
    return inter / union, union > 0


@dataclass
class RecognitionTally:
    """Per-pair values of a split, batch by batch; `result()` = the micro averages (fractions) and the count."""

    top1: list = field(default_factory=list)
    top3: list = field(default_factory=list)
    box_iou: list = field(default_factory=list)

    def add(self, logits: torch.Tensor, boxes: torch.Tensor, clazz: torch.Tensor, bbox: torch.Tensor) -> None:
        logits, boxes = logits.detach().float().cpu(), boxes.detach().float().cpu()
        clazz, bbox = clazz.cpu(), bbox.cpu()
        self.top1.append(topk_hits(logits, clazz, 1).numpy())
        self.top3.append(topk_hits(logits, clazz, min(3, logits.shape[-1])).numpy())
        iou, valid = ltrb_box_iou(boxes, bbox)
        self.box_iou.append(iou[valid].numpy())

    def result(self) -> dict[str, float | int]:
        """{"top1", "top3", "box_iou": float (NaN without pairs), "matched": int}: np.mean of the concatenated
        float32 values, as the authors' log."""
        def mean(parts):
            values = np.concatenate(parts) if parts else np.zeros(0, np.float32)
            return float(np.mean(values)) if values.size else float("nan")

        matched = int(sum(len(p) for p in self.top1))
        return {"top1": mean(self.top1), "top3": mean(self.top3), "box_iou": mean(self.box_iou), "matched": matched}
