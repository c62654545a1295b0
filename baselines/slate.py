"""`slate`: SLATE as the authors' VQ-VFM-OCL baseline (docs/reference.md#slate). Needs the stage `vqvae-c256`.

Shared encoder (baselines.dino_slots); `mediat` = the stage's VQ-VAE encoder + codebook (no decoder), frozen and
run without gradients: zidx = nearest code of each 16×16 latent, quant = its code vector. `decode` = an
autoregressive transformer decoder: query = [BOS, quant tokens 0..m−2] + learnt PE `pe` → `norm0` (layer 0's
first LayerNorm moved out, as the authors do) → 4 pre-norm nn.TransformerDecoderLayers (d 256, 4 heads, ffn 1024,
GELU, no biases, causal self-attention, memory = the slots) → Linear(256 → 4096, no bias) logits.
Loss: cross-entropy(logits, zidx). Segmentation = the aggregator's attention ("aggregator").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common import DATASETS, SLOTS, SYNTHETIC_RESOLUTION, SYNTHETIC_SLOTS, BaselineConfigError, vvo_train
from baselines.dino_slots import FREEZE_BACKBONE, FREEZE_MEDIAT, DinoSlotConfig, DinoSlotModel
from baselines.vqvae import (
    CODE_DIM,
    SYNTHETIC_CODE_DIM,
    VQVAE,
    StageUser,
    TokenizerSpec,
    full_tokenizer,
    synthetic_tokenizer,
    textured_tokenizer,
)
from harness.config import EvalConfig
from harness.nn.dinov2 import DinoV2Spec
from harness.nn.output import ModelOutput
from harness.nn.posembed import LearntPositionalEmbedding
from harness.recipes import pretrained_dinov2
from harness.recipes import random_vit as synthetic
from harness.registry import DEFAULT_TABLES, register_method

STAGE = "vqvae-c256"


@dataclass(kw_only=True)
class SlateConfig(DinoSlotConfig):
    tokenizer: TokenizerSpec
    decoder_layers: int = 4
    decoder_heads: int = 4
    decoder_ffn: int = 1024


class ARTransformerDecoder(nn.Module):
    """Teacher-forced causal decoder over `tokens` positions; parameters in the authors' order (bos,
    posit_embed.pe, norm0, backbone.layers.*, readout)."""

    def __init__(self, tokens: int, dim: int, heads: int, ffn: int, layers: int, num_codes: int):
        super().__init__()
        self.bos = nn.Parameter(torch.randn(1, 1, dim) * dim**-0.5)
        self.posit_embed = LearntPositionalEmbedding([tokens], dim, param_name="pe")
        layer = nn.TransformerDecoderLayer(dim, heads, ffn, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True, bias=False)
        backbone = nn.TransformerDecoder(layer, layers)
        self.norm0 = backbone.layers[0].norm1
        backbone.layers[0].norm1 = nn.Identity()
        self.backbone = backbone
        self.readout = nn.Linear(dim, num_codes, bias=False)
        self.register_buffer("mask", torch.triu(torch.ones(tokens, tokens, dtype=torch.bool), 1), persistent=False)

    def forward(self, target: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
        """target (b,m,c) code vectors, slots (b,n,c) → logits (b,m,num_codes); position i sees targets < i."""
        b, m, _ = target.shape
        query = torch.cat([self.bos.expand(b, -1, -1), target[:, :-1]], 1)
        query = self.norm0(self.posit_embed(query))
        # tgt_is_causal=True is what nn.TransformerDecoder itself concludes from this mask in the authors' run
        # (it compares the mask with a causal one on every call); saying it skips that comparison.
        return self.readout(self.backbone(query, memory=slots, tgt_mask=self.mask[:m, :m], tgt_is_causal=True))


class Slate(StageUser, DinoSlotModel):
    def __init__(self, config: SlateConfig, pretrained: bool = False):
        super().__init__(config, pretrained)
        if config.tokenizer.code_dim != config.slot_dim:
            raise BaselineConfigError(
                f"slate: tokenizer.code_dim {config.tokenizer.code_dim} must equal slot_dim {config.slot_dim} "
                f"(the decoder reads code vectors and attends to slots at one width)")
        self.mediat = VQVAE(config.tokenizer, decode=False)
        side = config.tokenizer.tokens(config.resolution)
        self.decode = ARTransformerDecoder(side * side, config.slot_dim, config.decoder_heads, config.decoder_ffn,
                                           config.decoder_layers, config.tokenizer.num_codes)
        self.finish_init()

    def forward(self, images: torch.Tensor, features: torch.Tensor | None = None) -> ModelOutput:
        """`features` replace the frozen DINOv2's output only; the frozen tokenizer (`mediat`) still reads
        `images`."""
        _, slots, attent = self.encode(images, features)
        zidx, quant = self.tokens(images)
        logits = self.decode(quant.flatten(2).transpose(1, 2), slots)
        return ModelOutput(
            slots,
            masks={"aggregator": attent},
            losses={"recon": F.cross_entropy(logits.flatten(0, 1), zidx.flatten())},
            extras={"attent": attent, "zidx": zidx, "recon": logits.transpose(1, 2).unflatten(2, zidx.shape[1:])},
        )


SLATE = register_method("slate", train_cost=1, authors_label="slate_r_vqvae-{dataset}",
                        tables=(*DEFAULT_TABLES, "v3", "recogn-v3"),
                        description="SLATE (VQ-VFM-OCL port): frozen DINOv2-S/14, SA, autoregressive transformer over "
                                    "VQ-VAE tokens (stage vqvae-c256)")


@SLATE.builder
def build_slate(config: SlateConfig, *, pretrained: bool = False) -> Slate:
    """`pretrained=True` (training) loads `config.backbone_weights` DINOv2 weights into the backbone; the
    tokenizer comes from the trained stage (`model.load_stage`)."""
    return Slate(config, pretrained)


@SLATE.config(*DATASETS)
def full_size(dataset: str) -> SlateConfig:
    return SlateConfig(
        num_slots=SLOTS[dataset], stage=STAGE, backbone=DinoV2Spec(registers=0),
        tokenizer=full_tokenizer(CODE_DIM[STAGE]), train=vvo_train(freeze=[FREEZE_BACKBONE, FREEZE_MEDIAT]),
        eval=EvalConfig(mask="aggregator"),
    )


@SLATE.config("synthetic")
def synthetic_config(dataset: str) -> SlateConfig:
    return SlateConfig(
        num_slots=SYNTHETIC_SLOTS, resolution=SYNTHETIC_RESOLUTION,
        stage=STAGE, backbone=synthetic.backbone(registers=0), backbone_scale=1.0, backbone_weights=None,
        tokenizer=synthetic_tokenizer(SYNTHETIC_CODE_DIM[STAGE]), slot_dim=64, project_hidden=128, ffn_dim=128,
        decoder_layers=2, decoder_ffn=128,
        train=synthetic.train_config(lr=4e-4, amp="off", freeze=[FREEZE_BACKBONE, FREEZE_MEDIAT]),
        eval=EvalConfig(mask="aggregator", resolution=SYNTHETIC_RESOLUTION, amp="off"),
    )


@SLATE.config("textured")
def textured(dataset: str) -> SlateConfig:
    return pretrained_dinov2.adapt(synthetic_config(dataset), tokenizer=textured_tokenizer(SYNTHETIC_CODE_DIM[STAGE]))
