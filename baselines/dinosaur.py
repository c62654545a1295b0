"""`dinosaur`: DINOSAUR as the authors' VQ-VFM-OCL baseline (docs/reference.md#dinosaur).

Shared encoder (baselines.dino_slots) + BroadcastMLPDecoder: every slot is broadcast to the h·w feature
positions, a learnt positional embedding `pe` (1, h·w, 256) is added, an MLP 256→2048→2048→2048→385 (GELU, no LN)
gives 384 feature channels and 1 alpha logit per position; alpha = softmax over slots; recon = Σ alpha·recon.
Loss: MSE(recon, feature.detach()). Segmentation = decoder alpha ("decoder"); "aggregator" = last SA map.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common import DATASETS, SLOTS, SYNTHETIC_RESOLUTION, SYNTHETIC_SLOTS, vvo_train
from baselines.dino_slots import FREEZE_BACKBONE, DinoSlotConfig, DinoSlotModel
from harness.config import EvalConfig
from harness.nn.dinov2 import DinoV2Spec
from harness.nn.mlp import MLP
from harness.nn.output import ModelOutput
from harness.nn.posembed import LearntPositionalEmbedding
from harness.recipes import pretrained_dinov2
from harness.recipes import random_vit as synthetic
from harness.registry import DEFAULT_TABLES, register_method


@dataclass(kw_only=True)
class DinosaurConfig(DinoSlotConfig):
    decoder_hidden: int = 2048
    decoder_layers: int = 3  # hidden layers of the broadcast MLP


class BroadcastMLPDecoder(nn.Module):
    def __init__(self, tokens: int, slot_dim: int, hidden: int, layers: int, out_dim: int):
        super().__init__()
        self.posit_embed = LearntPositionalEmbedding([tokens], slot_dim, param_name="pe")
        self.backbone = MLP(slot_dim, [hidden] * layers + [out_dim + 1])

    def forward(self, slots: torch.Tensor, tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
        """slots (b,n,d) → recon (b,tokens,out_dim), alpha (b,n,tokens) (softmax over slots)."""
        b, n, d = slots.shape
        mixture = self.backbone(self.posit_embed(slots.reshape(b * n, 1, d).expand(-1, tokens, -1)))
        mixture = mixture.unflatten(0, (b, n))
        recon, alpha = mixture[..., :-1], mixture[..., -1:].softmax(1)
        return (recon * alpha).sum(1), alpha[..., 0]


class Dinosaur(DinoSlotModel):
    def __init__(self, config: DinosaurConfig, pretrained: bool = False):
        super().__init__(config, pretrained)
        self.decode = BroadcastMLPDecoder(config.feature_side ** 2, config.slot_dim, config.decoder_hidden,
                                          config.decoder_layers, config.backbone.hidden)
        self.finish_init()

    def forward(self, images: torch.Tensor, features: torch.Tensor | None = None) -> ModelOutput:
        feature, slots, attent = self.encode(images, features)
        b, c, h, w = feature.shape
        recon, alpha = self.decode(slots, h * w)
        recon = recon.transpose(1, 2).unflatten(2, (h, w))
        attent2 = alpha.unflatten(2, (h, w))
        return ModelOutput(
            slots,
            masks={"decoder": attent2, "aggregator": attent},
            losses={"recon": F.mse_loss(recon, feature)},
            extras={"feature": feature, "attent": attent, "attent2": attent2, "recon": recon},
        )


DINOSAUR = register_method("dinosaur", train_cost=2, authors_label="dinosaur_r-{dataset}",
                           tables=(*DEFAULT_TABLES, "mini-long", "v3", "recogn-v3"),
                           description="DINOSAUR (VQ-VFM-OCL port): frozen DINOv2-S/14, SA, broadcast MLP decoder "
                                       "reconstructing features")


@DINOSAUR.builder
def build_dinosaur(config: DinosaurConfig, *, pretrained: bool = False) -> Dinosaur:
    """`pretrained=True` (training) loads `config.backbone_weights` DINOv2 weights into the backbone."""
    return Dinosaur(config, pretrained)


@DINOSAUR.config(*DATASETS)
def full_size(dataset: str) -> DinosaurConfig:
    return DinosaurConfig(
        num_slots=SLOTS[dataset], backbone=DinoV2Spec(registers=0),
        train=vvo_train(freeze=[FREEZE_BACKBONE]), eval=EvalConfig(mask="decoder"),
    )


@DINOSAUR.config("synthetic")
def synthetic_config(dataset: str) -> DinosaurConfig:
    """lr 5e-3: the broadcast decoder sits at uniform alpha until its slots break symmetry, and 5e-3 is the rate
    that breaks it within the mini budget in every seed
    (docs/experiments.md#2026-11-24-dinosaur-and-the-position-table)."""
    return DinosaurConfig(
        num_slots=SYNTHETIC_SLOTS, resolution=SYNTHETIC_RESOLUTION,
        backbone=synthetic.backbone(registers=0), backbone_scale=1.0, backbone_weights=None,
        slot_dim=64, project_hidden=128, ffn_dim=128, decoder_hidden=128,
        train=synthetic.train_config(lr=5e-3, amp="bf16", freeze=[FREEZE_BACKBONE]),
        eval=EvalConfig(mask="decoder", resolution=SYNTHETIC_RESOLUTION, amp="off"),
    )


@DINOSAUR.config("textured")
def textured(dataset: str) -> DinosaurConfig:
    return pretrained_dinov2.adapt(synthetic_config(dataset))
