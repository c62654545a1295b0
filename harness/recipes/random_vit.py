"""The CPU recipe shared by every method's `synthetic` config: image size, slot count, the frozen tiny ViT that
stands in for DINOv2, and the step budget — in one place, so the methods of the `mini-random` and `mini-ci` tables
differ only where the methods differ.

Why these numbers (measurements: docs/experiments.md#2026-11-24-synthetic-cpu-recipe):
- 32² images with 2–3 objects of radius 0.18–0.3 (harness.data.SynthConfig defaults): objects span several
  tokens; 4 slots = the most objects + background.
- The ViT has patch 2, so 32² images give the authors' 16×16 = 256 token grid and DIAS's hard-coded 24 visible
  tokens (docs/reference.md#dias) keep the authors' masking ratio; on a coarser grid its decoder copies them.
- The ViT is random and frozen (no weights can be downloaded here): 2 blocks whose small LayerScale keeps the
  features close to each patch's colour embedding; init std 0.1 gives them a within-image variance ≈ 0.5. Its
  position table is a smooth sin-cos one of std 0.5 (`DinoV2Spec.sincos_pos_std`) because a trained DINOv2's is
  smooth and slots need position to find their object (docs/experiments.md#2026-11-24-dinosaur-and-the-position-table).
- 800 steps of batch 8 per method fit all methods × 3 seeds in the README's 15-minute budget when two cells
  train at once (docs/experiments.md#2026-11-24-mini-table).
"""

from __future__ import annotations

import dataclasses

from harness.config import TrainConfig, WeightSchedule
from harness.data import DATASETS, SynthConfig
from harness.nn.dinov2 import DinoV2Spec

RESOLUTION = SynthConfig().resolution
SLOTS = DATASETS.get("synthetic").num_slots
STEPS = 800
BATCH_SIZE = 8
# Prerequisite stages (VQ-VAE tokenizers) train with their own steps and batch size.
STAGE_STEPS = 500
STAGE_BATCH_SIZE = 32

_BACKBONE = DinoV2Spec(hidden=64, layers=2, heads=4, mlp_ratio=4, patch=2, image_size=RESOLUTION, registers=4,
                       layerscale_init=0.1, init_std=0.1, sincos_pos_std=0.5)


def backbone(registers: int) -> DinoV2Spec:
    """The tiny frozen ViT; DIAS uses 4 registers like its ViT-S/14-reg4, the baselines none (docs/reference.md#shared-encoder-and-slot-attention)."""
    return dataclasses.replace(_BACKBONE, registers=registers)


def train_config(*, lr: float, amp: str, steps: int = STEPS, batch_size: int = BATCH_SIZE,
                 loss_weights: dict[str, WeightSchedule] | None = None, freeze: list[str] | None = None
                 ) -> TrainConfig:
    """The authors' schedule shape (warm-up steps/20, cosine to lr/1000) at CPU size; validation on the first 100
    val images twice per run (the table's evaluation covers the whole split); data loading in the main process
    (workers cost more than they save here).
    `amp` per method: whichever of "bf16"/"off" trains faster on this CPU."""
    return TrainConfig(steps=steps, batch_size=batch_size, lr=lr, val_points=2, num_workers=0, amp=amp, val_limit=100,
                       loss_weights=dict(loss_weights or {}), freeze=list(freeze or []))
