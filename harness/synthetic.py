"""The CPU recipe shared by every method's `synthetic` config: image size, slot count, the frozen tiny ViT that
stands in for DINOv2, and the step budget — in one place, so the methods of the `mini` table differ only where
the methods differ.

Why these numbers (measured on 2 CPU cores, see the README's "mini table" section):
- 32² images with 2–3 objects of radius 0.18–0.3 (harness.data.SynthConfig defaults): objects span several
  tokens; 4 slots = the most objects + background.
- The ViT has patch 2, so 32² images give the authors' 16×16 = 256 token grid: DIAS's decoder keeps its
  hard-coded 24 visible tokens in training (docs/reference.md#dias), i.e. the authors' masking ratio; with an 8×8 grid the
  same 24 tokens are 38 % of the image and the decoder learned to copy them instead of using the slots.
- The ViT is random and frozen (no weights can be downloaded here): 2 blocks whose small LayerScale keeps the
  features close to each patch's colour embedding; init std 0.1 gives them a within-image variance ≈ 0.5. Its
  position table is a smooth sin-cos one of std 0.5 (`DinoV2Spec.sincos_pos_std`), as a trained DINOv2's is
  smooth: with HF's i.i.d. random rows the features carried no usable position, DINOSAUR's slots could not learn
  where their object is and its decoder alpha stayed uniform (all seeds, lr 1e-4…2e-3, up to 3000 steps).
- 800 steps of batch 8 per method fit all methods × 3 seeds in the README's 15-minute budget when two cells
  train at once (one thread each is faster than two threads on one cell for models this small).
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
    return TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup_steps=steps // 20, val_interval=steps // 2,
                       save_since=steps // 2, num_workers=0, amp=amp, val_limit=100,
                       loss_weights=dict(loss_weights or {}), freeze=list(freeze or []))
