"""The encoder half shared by DINOSAUR, SLATE and SlotDiffusion (VQ-VFM-OCL, docs/reference.md#models).

encode_backbone = [Interpolate(0.875, bicubic), DINOv2 ViT-S/14 without registers, final LayerNorm kept], frozen;
encode_posit_embed = Identity; encode_project = MLP(384, [768, 256], ln="pre"); initializ = NormalSeparate(n, 256)
(noise in training only); aggregat = SlotAttention(3, 256, ffn 1024, dropout 0.01, kv 256, trunc_bp "bi-level").
Biases of encode_posit_embed, encode_project and aggregat are zeroed (the authors' reset_parameters).
Attribute names and their order are the checkpoint format (`m.encode_backbone.1.*`, `m.encode_project.*`, …).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from baselines.common import BaselineConfigError
from harness.config import MethodConfig
from harness.contract import SlotModel
from harness.nn.dinov2 import DinoV2Spec, make_encoder
from harness.nn.initializers import NormalSeparate
from harness.nn.mlp import MLP
from harness.nn.slot_attention import SlotAttention, zero_biases

# Frozen parts (parameter names without the checkpoint's "m." prefix).
FREEZE_BACKBONE = r"encode_backbone\..*"
FREEZE_MEDIAT = r"mediat\..*"

# HF id of the authors' backbone `vit_small_patch14_dinov2.lvd142m`.
DINOV2_SMALL = "facebook/dinov2-small"


@dataclass(kw_only=True)
class DinoSlotConfig(MethodConfig):
    backbone: DinoV2Spec
    backbone_scale: float = 0.875  # 256² → 224² before the ViT
    # HF id or local directory of DINOv2 weights, loaded only when the builder is asked to (training).
    # Evaluating or resuming a checkpoint builds randomly: the checkpoint holds the backbone too.
    backbone_weights: str | None = DINOV2_SMALL
    slot_dim: int = 256
    project_hidden: int = 768
    ffn_dim: int = 1024
    sa_dropout: float = 0.01
    num_iter: int = 3

    @property
    def feature_side(self) -> int:
        """Side of the backbone's token grid (16 for 256² input at scale 0.875 and patch 14)."""
        return int(self.resolution * self.backbone_scale) // self.backbone.patch


class DinoSlotModel(SlotModel):
    """Builds the shared encoder modules; subclasses add `mediat`/`decode` and call `finish_init()`."""

    def __init__(self, config: DinoSlotConfig, pretrained: bool = False):
        super().__init__()
        resized = int(config.resolution * config.backbone_scale)
        if resized != config.backbone.image_size:
            raise BaselineConfigError(
                f"{config.method}: resolution {config.resolution} × backbone_scale {config.backbone_scale} = "
                f"{resized}, but backbone.image_size is {config.backbone.image_size}")
        self.encode_backbone = make_encoder(config.backbone, norm_out=True, scale=config.backbone_scale,
                                            weights=config.backbone_weights if pretrained else None)
        self.encode_posit_embed = nn.Identity()
        self.encode_project = MLP(config.backbone.hidden, [config.project_hidden, config.slot_dim], ln="pre")
        self.initializ = NormalSeparate(config.num_slots, config.slot_dim)
        self.aggregat = SlotAttention(config.num_iter, config.slot_dim, config.ffn_dim, dropout=config.sa_dropout,
                                      kv_dim=config.slot_dim, trunc_bp="bi-level")

    def frozen_backbone(self) -> nn.Module:
        return self.encode_backbone

    def finish_init(self) -> None:
        zero_biases(self.encode_posit_embed, self.encode_project, self.aggregat)

    def encode(self, images: torch.Tensor, features: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """images (b,3,H,W) → feature (b,c,h,w) (detached: the backbone is frozen), slots (b,n,d), attent
        (b,n,h,w) = the last Slot Attention iteration's map. `features`, when given, are the frozen backbone's
        output for `images` (harness.run.feature_cache) and replace `encode_backbone(images)`."""
        feature = (self.encode_backbone(images) if features is None else features).detach()
        b, c, h, w = feature.shape
        encode = self.encode_posit_embed(feature.permute(0, 2, 3, 1)).flatten(1, 2)
        encode = self.encode_project(encode)
        slots, attents = self.aggregat(encode, self.initializ(b))
        return feature, slots, attents[-1].unflatten(2, (h, w))
