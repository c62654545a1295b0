"""`smoothsa`: SmoothSA's image model as the DIAS authors release it (docs/reference.md#smoothsa).

The DIAS recipe (dias/: frozen DINOv2-S/14 reg4 at 224 without its final LayerNorm, MLP 384→384→384, the
random-order masked Transformer decoder whose last cross-attention is the evaluated mask, the optimiser, clipping and
schedule) with three swaps:
- the slot initialiser is "preheated": one shared Gaussian sample per slot goes through a cross-attention-first
  Transformer block over the projected features; its output `qinit`, detached and (in training) with learnt noise
  added, is Slot Attention's query;
- Slot Attention is truncated bi-level (gradients reach only the last iteration and, straight through, the query),
  and only its last map is kept ("aggregator");
- the extra loss is `preheat` = MSE(qinit, slots.detach()), weighted 100, instead of DIAS's attention distillation.
For the first tenth of training the preheater reads the features detached (`detach_flag`, a buffer of the checkpoint
that the authors' schedule reassigns before every step). Outputs, losses and gradients equal the authors' code
(docs/experiments.md#2026-12-06-smoothsa-against-the-authors-code).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common import BaselineConfigError
from baselines.spot import check_config as check_dias_recipe
from dias.configs import DIASConfig
from dias.decoder import RandomOrderDecoder
from dias.model import DIAS
from harness.config import WeightSchedule
from harness.contract import ModelOutput
from harness.nn.dinov2 import make_encoder
from harness.nn.initializers import NOISE_MODES
from harness.nn.mlp import MLP
from harness.nn.slot_attention import SlotAttention
from harness.recipes import pretrained_dinov2
from harness.registry import DEFAULT_TABLES, get_config, register_method

# docs/reference.md#smoothsa: the preheat loss weight (constant) and the share of the run during which the preheater
# reads detached features (the authors' square wave: detached for steps < total // 10).
PREHEAT_WEIGHT = 100.0
DETACH_DIVISOR = 10
# The preheater's block: 4 heads and a feed-forward 4 × the slot width, fixed in the authors' class.
PREHEAT_HEADS, PREHEAT_FFN_RATIO = 4, 4


class CrossFirstDecoderLayer(nn.TransformerDecoderLayer):
    """The authors' `nn.TransformerDecoderLayer(norm_first, gelu, dropout 0, bias=False)` with `norm2` deleted and
    its forward replaced by `forward_switch_sa_ca`: cross-attention on the un-normalised query first, then
    self-attention over the slots, then the feed-forward; no final norm. Keys: self_attn, multihead_attn, linear1,
    linear2, norm1, norm3 (no norm2). Dropout is 0, so its modules are left out of the forward."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: int):
        super().__init__(dim, num_heads, ffn_dim, dropout=0.0, activation="gelu", batch_first=True, norm_first=True,
                         bias=False)
        del self.norm2

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """x (b, n, dim) queries, memory (b, m, dim) → (b, n, dim)."""
        x = x + self.multihead_attn(x, memory, memory, need_weights=False)[0]
        h = self.norm1(x)
        x = x + self.self_attn(h, h, h, need_weights=False)[0]
        return x + self.linear2(self.activation(self.linear1(self.norm3(x))))


class NormalSharedPreheated(nn.Module):
    """The authors' `NormalSharedPreheated` (docs/reference.md#smoothsa). State in checkpoint order: `mean`,
    `logstd`, `logstd2` (1, 1, dim), all zero at first; the 0-dim bool buffer `detach_flag` (True at first);
    `qproj_kv` Linear(kv_dim → dim) with its default (not zeroed) bias; `qinit` (CrossFirstDecoderLayer).

    forward(encode (b, m, kv_dim)) → (qinit, query), each (b, n, dim):
    smpl = mean + ε1·exp(logstd); qinit = block(smpl, qproj_kv(encode, detached while `detach_flag`));
    query = qinit.detach() (+ ε2·exp(logstd2) in training). ε1 is drawn in training and, as the authors do, at
    evaluation (`eval_noise="sample"`; "mean": ε1 = 0 at evaluation, which makes every slot the same). So the query
    carries no gradient to the preheater, which learns from the preheat loss alone; `logstd2` learns only through
    bi-level Slot Attention's straight-through path.

    `detach_flag` selects with torch.where rather than a Python branch, so that the forward also runs on the meta
    device and compiles without a graph break; while it is True the features get a zero gradient from here.
    """

    def __init__(self, num: int, dim: int, kv_dim: int, eval_noise: str = "sample"):
        super().__init__()
        if eval_noise not in NOISE_MODES:
            raise ValueError(f"eval_noise must be one of {NOISE_MODES}, got {eval_noise!r}")
        self.num, self.dim, self.eval_noise = num, dim, eval_noise
        self.mean = nn.Parameter(torch.zeros(1, 1, dim))
        self.logstd = nn.Parameter(torch.zeros(1, 1, dim))
        self.qproj_kv = nn.Linear(kv_dim, dim)
        self.qinit = CrossFirstDecoderLayer(dim, PREHEAT_HEADS, PREHEAT_FFN_RATIO * dim)
        self.logstd2 = nn.Parameter(torch.zeros(1, 1, dim))
        self.register_buffer("detach_flag", torch.tensor(True))

    def forward(self, encode: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        smpl = self.mean.expand(encode.shape[0], self.num, -1)
        if self.training or self.eval_noise == "sample":
            smpl = smpl + torch.randn_like(smpl) * self.logstd.exp()
        kv = torch.where(self.detach_flag, encode.detach(), encode)
        qinit = self.qinit(smpl, self.qproj_kv(kv))
        query = qinit.detach()
        if self.training:
            query = query + torch.randn_like(qinit) * self.logstd2.exp()
        return qinit, query

    def extra_repr(self) -> str:
        return f"num={self.num}, dim={self.dim}, eval_noise={self.eval_noise}"


class SmoothSA(DIAS):
    """The authors' `SmoothSA` on DIAS's model class: the same attributes in the same order (the checkpoint
    format), the frozen backbone, the zeroed biases (DIAS also zeroes the decoder's; it has none) and `masks_only`.

    forward(images, features=None) → ModelOutput(slots (b, n, d), masks {"decoder": the decoder's last
    cross-attention, "aggregator": the last Slot Attention map} (b, n, h, w), losses {"recon", "preheat"}
    unweighted, extras under the authors' names {"feature", "qinit", "attenta", "recon", "attentd"}).
    `before_step` sets `detach_flag` from the step, as the authors' schedule does before every step, whatever a
    loaded checkpoint held.
    """

    def before_step(self, step: int, total: int) -> None:
        self.initializ.detach_flag.fill_(step < total // DETACH_DIVISOR)

    def forward(self, images: torch.Tensor, features: torch.Tensor | None = None) -> ModelOutput:
        feature = (self.encode_backbone(images) if features is None else features).detach()  # (b, c, h, w); frozen
        b, _, h, w = feature.shape
        encode = self.encode_project(self.encode_posit_embed(feature.permute(0, 2, 3, 1)).flatten(1, 2))
        qinit, query = self.initializ(encode)
        slotz, attenta = self.aggregat(encode, query)
        attenta = attenta[-1].unflatten(2, (h, w))
        reconstruct = not self._masks_only
        recon, attentd = self.decode(feature.flatten(2).transpose(1, 2), slotz, None, reconstruct)
        attentd = attentd.unflatten(2, (h, w))
        masks = {"decoder": attentd, "aggregator": attenta}
        extras = {"feature": feature, "qinit": qinit, "attenta": attenta, "attentd": attentd}
        if not reconstruct:
            return ModelOutput(slots=slotz, masks=masks, extras=extras)
        extras["recon"] = recon = recon.transpose(1, 2).reshape(feature.shape)
        return ModelOutput(
            slots=slotz,
            masks=masks,
            losses={"recon": F.mse_loss(recon, feature), "preheat": F.mse_loss(qinit, slotz.detach())},
            extras=extras,
        )


@dataclass(kw_only=True)
class SmoothSAConfig(DIASConfig):
    """DIAS's model fields (the released architecture by default); DIAS's paper `extension` does not apply."""


def check_config(config: SmoothSAConfig) -> None:
    check_dias_recipe(config)
    if config.extension.active:
        raise BaselineConfigError("smoothsa config: extension.* is DIAS's paper extension; SmoothSA has none")


SMOOTHSA = register_method(
    "smoothsa", train_cost=4, authors_label="smoothsa_r-{dataset}",
    tables=(*DEFAULT_TABLES, "mini-long", "v3", "recogn-v3"),
    description="SmoothSA's image model as the DIAS authors release it: DIAS's recipe with a preheated slot "
                "initialiser self-distilled onto the final slots, bi-level Slot Attention and no attention "
                "distillation; segments from decoder attention.")


@SMOOTHSA.builder
def build(config: SmoothSAConfig, *, pretrained: bool = False) -> SmoothSA:
    """The SmoothSA model of `config`; `pretrained=True` (training) loads `config.backbone_weights` into the
    backbone."""
    check_config(config)
    spec, dim = config.backbone, config.backbone.hidden
    return SmoothSA(
        encode_backbone=make_encoder(spec, config.norm_out, config.backbone_scale,
                                     config.backbone_weights if pretrained else None),
        encode_posit_embed=nn.Identity(),
        encode_project=MLP(dim, [dim, dim], ln="pre"),
        initializ=NormalSharedPreheated(config.num_slots, config.slot_dim, dim, config.eval_noise),
        aggregat=SlotAttention(config.num_iter, config.slot_dim, config.sa_ffn_dim, dropout=0.0, kv_dim=dim,
                               trunc_bp="bi-level"),
        decode=RandomOrderDecoder(dim, config.slot_dim, spec.grid**2, config.decoder_layers, config.decoder_heads,
                                  config.decoder_ffn_dim),
    )


def from_dias(config: DIASConfig) -> SmoothSAConfig:
    """DIAS's config of the same data set with SmoothSA's loss weights: the authors' smoothsa_r-<ds>.py differ from
    dias_r-<ds>.py only in the model swaps and the loss (docs/reference.md#smoothsa). The detach schedule follows
    the step budget (total // 10), on the CPU configs too."""
    fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(DIASConfig)}
    train = dataclasses.replace(config.train, loss_weights={"preheat": WeightSchedule(kind="constant",
                                                                                      end=PREHEAT_WEIGHT)})
    return SmoothSAConfig(**{**fields, "train": train})


@SMOOTHSA.config("clevrtex", "coco", "voc", "synthetic")
def from_dias_config(dataset: str) -> SmoothSAConfig:
    return from_dias(get_config("dias", dataset))


@SMOOTHSA.config("textured")
def textured(dataset: str) -> SmoothSAConfig:
    """The small SmoothSA on the pretrained-DINOv2 recipe (harness.recipes.pretrained_dinov2), as DIAS."""
    return pretrained_dinov2.adapt(from_dias_config("synthetic"))
