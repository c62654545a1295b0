"""DIAS configs (docs/reference.md#dias, docs/reference.md#hyper-parameters) and the registered builder.

Full-size configs reproduce config-dias/dias_r-{clevrtex,coco,voc}.py (v3); `synthetic` uses the same classes at
CPU size. The backbone's pretrained weights are loaded only when the builder is asked to (training): evaluating a
released checkpoint builds everything randomly and loads the whole model from the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from dias.decoder import RandomOrderDecoder
from dias.extension import ExtensionConfig
from dias.model import DIAS
from harness.config import EvalConfig, MethodConfig, TrainConfig, WeightSchedule
from harness.data import DATASETS
from harness.errors import HarnessError
from harness.nn.dinov2 import DINOV2_SMALL_REG4, DinoV2Spec, make_encoder
from harness.nn.initializers import NOISE_MODES, NormalShared
from harness.nn.mlp import MLP
from harness.nn.slot_attention import SlotAttention
from harness.recipes import pretrained_dinov2
from harness.recipes import random_vit as synthetic_recipe
from harness.registry import DEFAULT_TABLES, register_method

# Slots per dataset: the authors' max_num, the same for every method (harness.data.DATASETS); total steps.
NUM_SLOTS = {name: DATASETS.get(name).num_slots for name in ("clevrtex", "coco", "voc", "synthetic")}
TOTAL_STEPS = {"clevrtex": 50_000, "coco": 100_000, "voc": 50_000}


@dataclass(kw_only=True)
class DIASConfig(MethodConfig):
    """Model fields of DIAS; the released architecture by default (ViT-S/14 reg4, 256 → 224, slot dim 256)."""

    backbone: DinoV2Spec = field(default_factory=DinoV2Spec)
    backbone_scale: float = 0.875  # input resize before the ViT (256 → 224)
    # the DINOv2's pretrained weights (a harness.nn.dinov2 source), loaded only when the builder is asked for them
    backbone_weights: str | None = DINOV2_SMALL_REG4
    norm_out: bool = False  # the authors drop DINOv2's final LayerNorm
    slot_dim: int = 256
    num_iter: int = 3
    sa_ffn_dim: int = 1024
    decoder_layers: int = 4
    decoder_heads: int = 4
    decoder_ffn_dim: int = 1536  # decoder width = the backbone's hidden size
    eval_noise: str = "sample"  # "sample": the authors' stochastic slot init at evaluation; "mean": ε = 0
    extension: ExtensionConfig = field(default_factory=ExtensionConfig)  # paper extension, off = released code


def _check(config: DIASConfig) -> None:
    resized = int(config.resolution * config.backbone_scale)
    if resized != config.backbone.image_size:
        raise HarnessError(f"dias config: resolution {config.resolution} × backbone_scale {config.backbone_scale} = "
                           f"{resized}, but backbone.image_size is {config.backbone.image_size}")
    if config.backbone.image_size % config.backbone.patch:
        raise HarnessError(f"dias config: backbone.image_size {config.backbone.image_size} is not a multiple of "
                           f"backbone.patch {config.backbone.patch}")
    if config.eval_noise not in NOISE_MODES:
        raise HarnessError(f"dias config: eval_noise must be one of {NOISE_MODES}, got {config.eval_noise!r}")


DIAS_METHOD = register_method(
    "dias", subject=True, train_cost=4, authors_label="dias_r-{dataset}",
    tables=(*DEFAULT_TABLES, "mini-long", "v3", "recogn-v3"),
    description="DIAS (Zhao et al. 2025) as released: frozen DINOv2-S/14 reg4, Slot Attention with first→last "
                "attention self-distillation, random-order masked Transformer decoder; segments from decoder attention. "
                "Paper extension (pruning + re-initialised aggregation) behind `extension.*`, off by default.")


@DIAS_METHOD.builder
def build(config: DIASConfig, *, pretrained: bool = False) -> DIAS:
    """The DIAS model of `config`; `pretrained=True` (training) loads `config.backbone_weights` into the backbone."""
    _check(config)
    spec, dim = config.backbone, config.backbone.hidden
    return DIAS(
        encode_backbone=make_encoder(spec, config.norm_out, config.backbone_scale,
                                     config.backbone_weights if pretrained else None),
        encode_posit_embed=nn.Identity(),
        encode_project=MLP(dim, [dim, dim], ln="pre"),
        initializ=NormalShared(config.num_slots, config.slot_dim, config.eval_noise),
        aggregat=SlotAttention(config.num_iter, config.slot_dim, config.sa_ffn_dim, dropout=0.0, kv_dim=dim),
        decode=RandomOrderDecoder(dim, config.slot_dim, spec.grid**2, config.decoder_layers, config.decoder_heads,
                                  config.decoder_ffn_dim),
        extension=config.extension,
    )


@DIAS_METHOD.config("clevrtex", "coco", "voc")
def full_size(dataset: str) -> DIASConfig:
    """docs/reference.md#hyper-parameters: batch 32, Adam 2e-4, warm-up total/20 then cosine to lr/1000, validation
    every total/40 steps, checkpoints from total/2, AMP fp16, distillation weight cosine 0 → 1 over the run, backbone
    frozen."""
    total = TOTAL_STEPS[dataset]
    return DIASConfig(
        num_slots=NUM_SLOTS[dataset],
        train=TrainConfig(
            steps=total, batch_size=32, lr=2e-4, lr_final_ratio=1e-3, grad_clip=1.0, amp="fp16",
            loss_weights={"distill": WeightSchedule(kind="cosine", start=0.0, end=1.0)},
            freeze=[r"^encode_backbone\."],
        ),
        eval=EvalConfig(mask="decoder", resolution=256, batch_size=32, amp="fp16"),
    )


@DIAS_METHOD.config("synthetic")
def synthetic(dataset: str) -> DIASConfig:
    """Same classes at CPU size (harness.recipes.random_vit: 32² images, a frozen random 2-block ViT with patch 2
    giving the authors' 16×16 token grid, 4 slots, its step budget): slot dim 64, a 2-layer decoder, fp32 (bf16
    autocast is slower than fp32 for this decoder on CPU).

    Distillation schedule: the authors' cosine ramp to weight 1 spans 50k–100k steps; compressed into a short run
    its cross-entropy outweighs the feature MSE and collapses the maps while the slots are still forming, so the
    CPU config keeps the loss and cosine shape but ramps to 0.1 (docs/experiments.md#2026-11-23-cpu-feasibility,
    docs/experiments.md#2026-11-24-synthetic-cpu-recipe)."""
    return DIASConfig(
        num_slots=synthetic_recipe.SLOTS,
        resolution=synthetic_recipe.RESOLUTION,
        backbone=synthetic_recipe.backbone(registers=4),
        backbone_scale=1.0,
        backbone_weights=None,
        slot_dim=64,
        sa_ffn_dim=256,
        decoder_layers=2,
        decoder_heads=4,
        decoder_ffn_dim=256,
        train=synthetic_recipe.train_config(
            lr=4e-4, amp="off", freeze=[r"^encode_backbone\."],
            loss_weights={"distill": WeightSchedule(kind="cosine", start=0.0, end=0.1)}),
        eval=EvalConfig(mask="decoder", resolution=synthetic_recipe.RESOLUTION, batch_size=32, amp="off"),
    )


@DIAS_METHOD.config("textured")
def textured(dataset: str) -> DIASConfig:
    """The small DIAS on the pretrained-DINOv2 recipe (harness.recipes.pretrained_dinov2): no registers and the
    final LayerNorm kept, as every method of that table."""
    return pretrained_dinov2.adapt(synthetic(dataset))
