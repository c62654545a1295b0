"""Trivial reference rows: fixed rules evaluated by the same code as the methods, so a table shows what a
score means without learning; a grid alone scores high FG-ARI on small-object data
(docs/experiments.md#2026-11-23-cpu-feasibility).

`grid`            — a fixed near-square rows×cols partition of the image; its configs ask for the cell count
                    nearest to the dataset's slot count (12/6/6 for ClevrTex/COCO/VOC, 6 for synthetic).
`single-segment`  — every pixel in one segment.
`colour-kmeans`   — per-image k-means on the (normalised) RGB values, k = `num_slots`, optionally with the pixel
                    coordinates appended scaled by `xy_weight` (0 = colour only). The per-channel normalisation
                    is an almost uniform scale (ImageNet stds 57–58), so clusters are those of the raw RGB.

No parameters, no losses: `model(images)` → ModelOutput(slots=None, masks={MASKS[rule]: (b, k, H, W) one-hot
float}) at the input resolution, its one mask named for what it is ("grid" or "clustering").
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common import DATASETS, SLOTS, SYNTHETIC_RESOLUTION, SYNTHETIC_SLOTS, BaselineConfigError
from harness.config import EvalConfig, MethodConfig, TrainConfig
from harness.contract import ModelOutput, SlotModel
from harness.nn.dinov2 import DinoV2Backbone, DinoV2Spec
from harness.recipes import pretrained_dinov2
from harness.registry import register_method


@dataclass(kw_only=True)
class ReferenceConfig(MethodConfig):
    # k-means only: Lloyd iterations (stops earlier when no assignment changes), pixels it is fitted on,
    # k-means++ seed, weight of the (y, x) coordinates appended to the colour (0 = colour only).
    iterations: int = 30
    fit_pixels: int = 4096
    seed: int = 0
    xy_weight: float = 0.0


def near_square_grid(n: int) -> tuple[int, int]:
    """(rows, cols) of a near-square grid of about n cells: one side = √n rounded, the other = n / that side
    rounded (halves up), rows ≤ cols. 4→2×2, 5→2×3, 6→2×3, 7→2×3, 9→3×3, 11→3×4."""
    side = max(1, math.floor(math.sqrt(n) + 0.5))
    other = max(1, math.floor(n / side + 0.5))
    return min(side, other), max(side, other)


def one_hot_masks(labels: torch.Tensor, k: int) -> torch.Tensor:
    """labels (b, H, W) int → (b, k, H, W) float one-hot."""
    return F.one_hot(labels, k).permute(0, 3, 1, 2).float()


class GridSegments(SlotModel):
    def __init__(self, config: ReferenceConfig):
        super().__init__()
        self.rows, self.cols = near_square_grid(config.num_slots)
        if self.rows * self.cols != config.num_slots:
            raise BaselineConfigError(f"grid: num_slots {config.num_slots} is not a near-square grid; "
                                      f"{self.rows}×{self.cols} = {self.rows * self.cols} is")

    def forward(self, images: torch.Tensor) -> ModelOutput:
        b, _, h, w = images.shape
        row = torch.arange(h, device=images.device) * self.rows // h
        col = torch.arange(w, device=images.device) * self.cols // w
        labels = (row[:, None] * self.cols + col[None, :]).expand(b, h, w)
        return ModelOutput(None, masks={"grid": one_hot_masks(labels, self.rows * self.cols)})


class SingleSegment(SlotModel):
    def __init__(self, config: ReferenceConfig):
        super().__init__()
        if config.num_slots != 1:
            raise BaselineConfigError(f"single-segment: num_slots must be 1, got {config.num_slots}")

    def forward(self, images: torch.Tensor) -> ModelOutput:
        b, _, h, w = images.shape
        return ModelOutput(None, masks={"grid": images.new_ones(b, 1, h, w)})


def kmeans_pp_init(points: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding of one point set (N, c) → (k, c): the first centre uniform, each next one drawn with
    probability ∝ squared distance to the nearest chosen centre (inverse-CDF draw from `generator`)."""
    n = points.shape[0]

    def draw() -> torch.Tensor:
        return torch.rand((), generator=generator, device=generator.device).to(points.device)

    centres = [points[min(int(draw() * n), n - 1)]]
    d2 = (points - centres[0]).square().sum(1)
    for _ in range(1, k):
        cdf = d2.cumsum(0)
        if cdf[-1] <= 0:  # fewer distinct points than k: repeat a centre (its cluster stays empty)
            idx = 0
        else:
            idx = min(int(torch.searchsorted(cdf, draw() * cdf[-1], right=True)), n - 1)
        centres.append(points[idx])
        d2 = torch.minimum(d2, (points - points[idx]).square().sum(1))
    return torch.stack(centres)


def nearest(points: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """points (b,N,c), centres (b,k,c) → index (b,N) of the nearest centre (squared distances by matmul)."""
    d2 = centres.square().sum(2)[:, None, :] - 2 * points @ centres.transpose(1, 2)
    return d2.argmin(2)


def lloyd(points: torch.Tensor, centres: torch.Tensor, iterations: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched Lloyd iterations: points (b, N, c), centres (b, k, c) → (labels (b, N), centres); stops when no
    label changes. A centre whose cluster empties keeps its position (k-means++ seeds on images with ≥ k
    distinct colours do not empty; it keeps the batch vectorised)."""
    b, k, c = centres.shape
    labels = None
    for _ in range(iterations):
        new = nearest(points, centres)
        if labels is not None and torch.equal(new, labels):
            break
        labels = new
        index = labels[..., None].expand(-1, -1, c)
        sums = points.new_zeros(b, k, c).scatter_add_(1, index, points)
        counts = points.new_zeros(b, k, 1).scatter_add_(1, labels[..., None], points.new_ones(b, labels.shape[1], 1))
        centres = torch.where(counts > 0, sums / counts.clamp_min(1), centres)
    return nearest(points, centres), centres


class ColourKMeans(SlotModel):
    """Per-image k-means fitted on a regular subsample of at most `fit_pixels` pixels (every s-th row and column;
    all pixels at 32²), then every pixel assigned to its nearest centre. k-means++ seeds come from a generator
    seeded per image, so an image's segments do not depend on the batch it is in; Lloyd runs batched."""

    def __init__(self, config: ReferenceConfig):
        super().__init__()
        self.k, self.iterations, self.fit_pixels = config.num_slots, config.iterations, config.fit_pixels
        self.seed, self.xy_weight = config.seed, config.xy_weight

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(b,3,H,W) → (b,H,W,c): the image values, plus (y, x) ∈ [−1, 1]² × xy_weight if xy_weight ≠ 0."""
        b, _, h, w = images.shape
        points = images.permute(0, 2, 3, 1).float()
        if self.xy_weight:
            y, x = torch.meshgrid(torch.linspace(-1, 1, h, device=images.device),
                                  torch.linspace(-1, 1, w, device=images.device), indexing="ij")
            xy = torch.stack([y, x], -1).expand(b, h, w, 2) * self.xy_weight
            points = torch.cat([points, xy], 3)
        return points

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> ModelOutput:
        b, _, h, w = images.shape
        points = self.features(images)
        stride = max(1, math.ceil(math.sqrt(h * w / self.fit_pixels)))
        fit = points[:, ::stride, ::stride].reshape(b, -1, points.shape[3])
        generator = torch.Generator(device=images.device)
        inits = []
        for i in range(b):
            generator.manual_seed(self.seed)
            inits.append(kmeans_pp_init(fit[i], self.k, generator))
        _, centres = lloyd(fit, torch.stack(inits), self.iterations)
        labels = nearest(points.reshape(b, h * w, -1), centres)
        return ModelOutput(None, masks={"clustering": one_hot_masks(labels.view(b, h, w), self.k)})


class FeatureKMeans(ColourKMeans):
    """Per-image k-means on the frozen pretrained backbone's patch tokens instead of the pixels: what the features
    alone separate, with no training — the bar a method built on those features should clear (and the evidence that
    the signal is there). Segments are token-sized; the evaluation upsamples them as any method's masks."""

    def __init__(self, config: "FeatureKMeansConfig", pretrained: bool = False):
        super().__init__(config)
        spec = dataclasses.replace(config.backbone)
        self.encode_backbone = DinoV2Backbone(spec, config.norm_out, config.backbone_weights if pretrained else None)
        self.encode_backbone.requires_grad_(False)

    def frozen_backbone(self) -> nn.Module:
        return self.encode_backbone

    @torch.no_grad()
    def forward(self, images: torch.Tensor, features: torch.Tensor | None = None) -> ModelOutput:
        feature = self.encode_backbone(images) if features is None else features  # (b, c, h, w)
        return super().forward(feature.float())


@dataclass(kw_only=True)
class FeatureKMeansConfig(ReferenceConfig):
    backbone: DinoV2Spec
    backbone_weights: str | None
    norm_out: bool = True


def _build(cls, config: ReferenceConfig, *, pretrained: bool = False) -> nn.Module:
    """A rule has nothing pretrained to load (k-means on features loads its backbone)."""
    return cls(config, pretrained) if cls is FeatureKMeans else cls(config)


# What each rule's segmentation is, named as its only mask (the reports caption it so).
MASKS = {"grid": "grid", "single-segment": "grid", "colour-kmeans": "clustering", "dinov2-kmeans": "clustering"}
NO_TRAINING = dict(steps=0, batch_size=32, lr=0.0, warmup_steps=0, val_interval=0, save_since=0)


def _config(method: str, dataset: str) -> ReferenceConfig:
    """num_slots = the number of segments the rule outputs: k = the dataset's slot count for k-means, the grid's
    real cell count (rows·cols nearest to k), 1 for the single segment."""
    resolution = {"synthetic": SYNTHETIC_RESOLUTION, "textured": pretrained_dinov2.RESOLUTION}.get(dataset, 256)
    k = {"synthetic": SYNTHETIC_SLOTS, "textured": pretrained_dinov2.SLOTS}.get(dataset) or SLOTS[dataset]
    if method == "grid":
        k = math.prod(near_square_grid(k))
    elif method == "single-segment":
        k = 1
    return ReferenceConfig(
        num_slots=k,
        resolution=resolution, train=TrainConfig(**NO_TRAINING),
        eval=EvalConfig(mask=MASKS[method], resolution=resolution, amp="off"),
    )


for _name, _cls, _doc in (
    ("grid", GridSegments, "a fixed spatial partition of every image into a near-square grid of about num_slots "
                           "cells, whatever it shows: what position alone scores."),
    ("single-segment", SingleSegment, "every pixel in one segment: the floor of ARI-fg."),
    ("colour-kmeans", ColourKMeans, "per-image k-means clustering of pixel colours (k = num_slots): what low-level "
                                    "colour alone achieves."),
):
    _rule = register_method(_name, kind="reference", description=_doc)
    _rule.builder(partial(_build, _cls))
    _rule.config(*DATASETS, "synthetic", "textured")(partial(_config, _name))


DINOV2_KMEANS = register_method(
    "dinov2-kmeans", kind="reference",
    description="per-image k-means clustering of the frozen pretrained DINOv2's patch tokens (k = num_slots), no "
                "training: what the features alone separate.")
DINOV2_KMEANS.builder(partial(_build, FeatureKMeans))


@DINOV2_KMEANS.config("textured")
def feature_kmeans_textured(dataset: str) -> FeatureKMeansConfig:
    base = _config("colour-kmeans", dataset)
    return FeatureKMeansConfig(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)},
                               backbone=pretrained_dinov2.BACKBONE, backbone_weights=pretrained_dinov2.PRETRAINED)
