"""Named evaluation protocols: every choice that changes what a segmentation number means, in one record.

Papers in object-centric learning report "ARI", "mBO" and "mIoU" under different conventions (background
in or out, overlapping and unlabelled pixels, which images count, arithmetic). A number is only meaningful
with its protocol, so results carry the protocol's name and `python -m harness metrics explain NAME` prints
the record in words. Each choice cites the code it was read from; what could not be verified says so.

Conventions shared by all protocols below (the record states them too):
- gt channel 0 is the background (docs/reference.md#data-format); ARI-fg removes it from the gt before anything else, predictions
  are never altered; `ari` always uses all gt channels.
- mIoU divides the matched IoUs by the number of non-empty gt channels (unmatched gt count 0); this is what
  DIAS (`learn/metric.py: mIoU`) and OCLF (`unsupervised_mask_iou`: zeros for unmatched, mean over
  non-empty gt classes) both do.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.metrics.ari import ARITHMETICS
from harness.names import Registry

METRICS = ("ari", "ari_fg", "mbo", "miou")

_CHOICES = {
    "arithmetic": ARITHMETICS,
    "overlapping_pixels": ("each-channel", "ignored"),
    "unlabelled_pixels": ("no-label", "background"),
    "images_without_gt": ("skipped", "ari-one"),
    "mean_dtype": ("float32", "float64"),
    "miou_denominator": ("non-empty-gt",),
}

_WORDS = {
    "arithmetic": {
        "dias-v3": "the authors' dtypes: int64 pair counts with aidx·bidx wrapping modulo 2^64 (inflates ARI on "
                   "large-background images, docs/reference.md#evaluation-protocol), float32 divisions, float32 IoU, float32 per-image sums",
        "float64": "exact integer counts, float64 divisions and IoU, no wrap (ARI = sklearn adjusted_rand_score)",
    },
    "overlapping_pixels": {
        "each-channel": "a pixel in several gt channels counts in each of them",
        "ignored": "pixels in two or more gt channels are removed from pred and gt for every metric",
    },
    "unlabelled_pixels": {
        "no-label": "pixels in no gt channel (COCO VOID, VOC boundary) are outside the ARI contingency but "
                    "count in |pred| of every IoU",
        "background": "pixels in no gt channel join gt channel 0 (background) before everything",
    },
    "images_without_gt": {
        "skipped": "an image enters a metric's mean only if its gt (for ARI-fg: without channel 0) has a pixel",
        "ari-one": "every image enters the ARI and ARI-fg means, with ARI = 1.0 where the gt is empty; "
                   "mBO/mIoU skip images without a gt segment that they score",
    },
    "mean_dtype": {
        "float32": "dataset mean = numpy mean of the float32 per-image values (the authors' AverageLog)",
        "float64": "dataset mean in float64",
    },
    "miou_denominator": {
        "non-empty-gt": "mIoU = Σ matched IoU / number of non-empty gt channels (unmatched gt count 0)",
    },
}


@dataclass(frozen=True)
class Protocol:
    """The choices behind one set of numbers. `sources` say where each was read; `caveats` what could not be
    verified and what the record leaves out."""

    name: str
    summary: str
    arithmetic: str
    background_in_overlap: bool  # gt channel 0 included in mBO and mIoU
    overlapping_pixels: str
    unlabelled_pixels: str
    images_without_gt: str
    mean_dtype: str
    reported: tuple[str, ...]  # which metrics the protocol's authors publish
    sources: tuple[str, ...]
    caveats: tuple[str, ...] = ()
    miou_denominator: str = "non-empty-gt"

    def __post_init__(self):
        for field_name, allowed in _CHOICES.items():
            if getattr(self, field_name) not in allowed:
                raise ValueError(f"protocol {self.name!r}: {field_name} must be one of {allowed}, "
                                 f"got {getattr(self, field_name)!r}")
        if not set(self.reported) <= set(METRICS):
            raise ValueError(f"protocol {self.name!r}: reported must name metrics among {METRICS}")

    def mean_over(self, metric: str) -> str:
        """Which images enter the dataset mean of `metric`: "valid", "valid_fg" (the flags returned by
        `segmentation_metrics`) or "all"."""
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; valid: {', '.join(METRICS)}")
        if metric in ("mbo", "miou"):
            return "valid" if self.background_in_overlap else "valid_fg"
        if self.images_without_gt == "ari-one":
            return "all"
        return "valid" if metric == "ari" else "valid_fg"

    def explain(self) -> str:
        """The record in words, for `python -m harness metrics explain NAME`."""
        overlap = ("background channel included" if self.background_in_overlap
                   else "background channel (gt 0) removed before the IoUs and the matching")
        lines = [
            f"{self.name}: {self.summary}",
            f"  arithmetic:          {_WORDS['arithmetic'][self.arithmetic]}",
            "  ARI / ARI-fg:        ARI over all gt channels; ARI-fg with gt channel 0 removed (predictions untouched)",
            f"  mBO / mIoU:          {overlap}; mBO = best IoU per gt channel over pred channels (reuse allowed); "
            "mIoU = Hungarian one-to-one matching",
            f"  mIoU denominator:    {_WORDS['miou_denominator'][self.miou_denominator]}",
            f"  unlabelled pixels:   {_WORDS['unlabelled_pixels'][self.unlabelled_pixels]}",
            f"  overlapping pixels:  {_WORDS['overlapping_pixels'][self.overlapping_pixels]}",
            f"  images in the means: {_WORDS['images_without_gt'][self.images_without_gt]}",
            f"  dataset mean:        {_WORDS['mean_dtype'][self.mean_dtype]}",
            f"  reported:            {', '.join(self.reported)}",
            "  sources:",
            *(f"    - {s}" for s in self.sources),
        ]
        if self.caveats:
            lines += ["  caveats (not verified / not covered):", *(f"    - {u}" for u in self.caveats)]
        return "\n".join(lines)


PROTOCOLS: Registry[Protocol] = Registry("protocol")
DEFAULT_PROTOCOL = "dias-v3"

_DIAS = "Genera1Z/DIAS@06e8039"
_OCLF = "amazon-science/object-centric-learning-framework@0a97292"
_SPOT = "gkakogeorgiou/spot@13c5926"

PROTOCOLS.register("dias-v3", Protocol(
    name="dias-v3",
    summary="the DIAS authors' v3 evaluator, bit for bit: the numbers of their v3 table",
    arithmetic="dias-v3",
    background_in_overlap=True,
    overlapping_pixels="each-channel",
    unlabelled_pixels="no-label",
    images_without_gt="skipped",
    mean_dtype="float32",
    reported=("ari", "ari_fg", "mbo", "miou"),
    sources=(
        f"{_DIAS} object_centric_bench/learn/metric.py: ARI.adjusted_rand_index (float64 einsum → int64, "
        "int64 products, int/int division → float32, denominator 0 → 1), mBO, mIoU (num_gt = non-empty gt)",
        f"{_DIAS} object_centric_bench/util_learn.py: intersection_over_union (float32), hungarian_matching "
        "(scipy linear_sum_assignment, maximize=True)",
        f"{_DIAS} config-dias/dias_r-*.py acc_fn_v: ari skip=[], ari_fg skip=[0], mbo/miou skip=[]",
        f"{_DIAS} object_centric_bench/learn/callback_log.py: AverageLog.mean = np.mean over valid images",
        "docs/reference.md#evaluation-protocol (VOID pixels in |pred|, int64 wrap), docs/reference.md#acceptance-checks (three overflow cases, confirmed on their code)",
    ),
    caveats=(
        "mBO/mIoU sum float32 IoUs in the running device's reduction order; the authors ran on CUDA, so CPU "
        "values can differ from theirs in the last float32 bit (ARI has no such sum and is exact)",
    ),
))

PROTOCOLS.register("exact", Protocol(
    name="exact",
    summary="dias-v3 conventions with mathematically exact arithmetic (no int64 wrap; float64)",
    arithmetic="float64",
    background_in_overlap=True,
    overlapping_pixels="each-channel",
    unlabelled_pixels="no-label",
    images_without_gt="skipped",
    mean_dtype="float64",
    reported=("ari", "ari_fg", "mbo", "miou"),
    sources=(
        "docs/reference.md#evaluation-protocol: the authors' aidx·bidx overflow is a bug; this protocol is the corrected alternative",
        "sklearn.metrics.adjusted_rand_score on the labelled pixels (tests/metrics check equality)",
    ),
))

PROTOCOLS.register("dinosaur", Protocol(
    name="dinosaur",
    summary="OCLF (Amazon's object-centric learning framework), as DINOSAUR was evaluated: FG-ARI and "
            "mBO/mIoU over foreground instances",
    arithmetic="float64",
    background_in_overlap=False,
    overlapping_pixels="ignored",
    unlabelled_pixels="background",
    images_without_gt="ari-one",
    mean_dtype="float64",
    reported=("ari_fg", "mbo"),
    sources=(
        f"{_OCLF} configs/experiment/projects/bridging/dinosaur/_metrics_coco.yaml (also used by the VOC "
        "experiment): ARI/IoU/ABO on input.instance_mask (thing instances, no background channel ⇒ "
        "foreground only), ignore_overlaps: true, abo = matching best_overlap",
        f"{_OCLF} ocl/metrics/utils.py: adjusted_rand_index in float64, 1.0 where the denominator is not > 0",
        f"{_OCLF} ocl/metrics/masks.py: ARIMetric.update adds every image (empty gt ⇒ ARI 1.0); "
        "UnsupervisedMaskIoUMetric: overlaps removed from pred and gt, empty gt classes dropped, images "
        "without gt skipped, float64 IoU, unmatched gt 0, mean over gt classes; float64 metric states",
        f"{_OCLF} ocl/preprocessing.py: IntegerToOneHotMask maps VOC boundary (255) to no instance, "
        "i.e. background for foreground-only metrics",
    ),
    caveats=(
        "which evaluation config produced the DINOSAUR paper's numbers; the 'bridging' evaluation configs "
        "can add a VOC boundary ignore mask (_metrics_add_ignore_mask.yaml), which would also remove boundary "
        "pixels from |pred|",
        "OCLF evaluates COCO instance annotations (overlapping, things only) at 224² centre crop or original "
        "resolution; our gt comes from the data pipeline (v3: panoptic, 256²), so this protocol fixes the metric "
        "conventions, not the data",
        "ARI agrees with OCLF's float64 formula up to rounding (~1e-12), not bit for bit",
    ),
))

PROTOCOLS.register("spot", Protocol(
    name="spot",
    summary="SPOT (Kakogeorgiou et al., CVPR 2024) eval_spot.py: FG-ARI, mBO and Hungarian mIoU over "
            "foreground instances (OCLF's metric code)",
    arithmetic="float64",
    background_in_overlap=False,
    overlapping_pixels="ignored",
    unlabelled_pixels="background",
    images_without_gt="ari-one",
    mean_dtype="float64",
    reported=("ari_fg", "mbo", "miou"),
    sources=(
        f"{_SPOT} eval_spot.py L137-140: UnsupervisedMaskIoUMetric(best_overlap | hungarian, "
        "ignore_background=True, ignore_overlaps=True), ARIMetric(foreground=True, ignore_overlaps=True)",
        f"{_SPOT} ocl_metrics.py: OCLF's ARI/IoU code (float64; empty gt ⇒ ARI 1.0 counted; images without "
        "gt skipped in mBO/mIoU)",
        f"{_SPOT} datasets.py: VOC boundary (255) → 0 = background; COCO pixels of several instances go to an "
        "ignore mask (removed from pred and gt)",
    ),
    caveats=(
        "SPOT evaluates masks at 320² (val_mask_size, nearest resize + centre crop) from COCO instance "
        "annotations; these are data choices outside this protocol",
        "on our gt format this protocol computes the same numbers as 'dinosaur' (SPOT copied OCLF's metrics); "
        "the two differ in data preparation only",
        "SPOT also reports mBO_c on semantic-class masks; our gt holds instances only, so it is not computed",
    ),
))
