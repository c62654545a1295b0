"""`spot`: SPOT stage 1 as the DIAS authors run it (docs/reference.md#spot).

The DIAS encoder recipe (frozen DINOv2-S/14 reg4 at 224 without its final LayerNorm, MLP 384→384→384, one shared
Gaussian for the slots, plain Slot Attention of 3 iterations whose last map is kept) with SPOT's autoregressive
decoder `AR9TransformerDecoder`: the DINO tokens in one of nine patch orders, shifted right behind a learnt
begin-of-sequence token of that order, decoded causally with the slots as memory; no positional embedding, no
final norm. Training draws one order per forward (shared by the batch), evaluation uses raster order. Loss: MSE of
the reconstruction against the detached features; gradients clipped to 0.3 in the infinity norm. The evaluated
mask is the decoder's last cross-attention ("decoder"); the last Slot Attention map is "aggregator".

The published SPOT rows are this stage alone; the self-training stage is `spot-distill` (baselines/spot_distill.py).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common import DATASETS, SLOTS, BaselineConfigError
from harness.config import EvalConfig, MethodConfig, TrainConfig
from harness.contract import ModelOutput, SlotModel
from harness.nn.dinov2 import DINOV2_SMALL_REG4, DinoV2Spec, make_encoder
from harness.nn.initializers import NOISE_MODES, NormalSeparate, NormalShared
from harness.nn.mlp import MLP
from harness.nn.slot_attention import SlotAttention, zero_biases
from harness.nn.transformer import decode_layers, linear_ln, pre_norm_decoder
from harness.recipes import pretrained_dinov2
from harness.recipes import random_vit as synthetic
from harness.registry import DEFAULT_TABLES, register_method

TOTAL_STEPS = {"clevrtex": 50_000, "coco": 100_000, "voc": 50_000}
FREEZE_BACKBONE = r"^encode_backbone\."
# docs/reference.md#spot: SPOT clips the infinity norm of the gradients to 0.3 (DIAS: the L2 norm to 1).
GRAD_CLIP, GRAD_CLIP_NORM_TYPE = 0.3, float("inf")


@dataclass(kw_only=True)
class SPOTConfig(MethodConfig):
    """Model fields of SPOT stage 1; the authors' architecture by default (ViT-S/14 reg4, 256 → 224, slot dim 256,
    a 4-layer decoder of width 384 with 4 heads)."""

    backbone: DinoV2Spec = field(default_factory=DinoV2Spec)
    backbone_scale: float = 0.875  # input resize before the ViT (256 → 224)
    backbone_weights: str | None = DINOV2_SMALL_REG4  # a harness.nn.dinov2 source, loaded only to train
    norm_out: bool = False  # DINOv2's final LayerNorm dropped, as for DIAS
    slot_dim: int = 256
    num_iter: int = 3
    sa_ffn_dim: int = 1024
    decoder_layers: int = 4
    decoder_heads: int = 4
    decoder_ffn_dim: int = 1536
    eval_noise: str = "sample"  # "sample": the authors' stochastic slot init at evaluation; "mean": ε = 0


def patch_orders(h: int, w: int) -> torch.Tensor:
    """(9, h·w) the nine token orders of SPOT, as indices into the raster (row-major) token sequence, in the
    authors' order: 0 raster; 1 column-major (down each column, columns left → right); 2 down, columns right →
    left; 3 rows top → bottom, each right → left; 4 up, columns right → left (= 1 reversed); 5 raster reversed;
    6 up, columns left → right (= 2 reversed); 7 rows bottom → top, each left → right (= 3 reversed); 8 a spiral
    that starts at the centre and winds out counter-clockwise to the top-right corner (the reversal of the
    clockwise walk from the top-right corner down the right edge)."""
    grid = torch.arange(h * w, device="cpu").reshape(h, w)
    column_major = grid.t().flatten()
    down_right_to_left = grid.flip(1).t().flatten()
    rows_right_to_left = grid.flip(1).flatten()
    return torch.stack([grid.flatten(), column_major, down_right_to_left, rows_right_to_left,
                        column_major.flip(0), grid.flatten().flip(0), down_right_to_left.flip(0),
                        rows_right_to_left.flip(0), _spiral_from_top_right(h, w).flip(0)])


def _spiral_from_top_right(h: int, w: int) -> torch.Tensor:
    """The clockwise walk over the grid from the top-right corner, first down the right edge, turning right
    (down → left → up → right) at the border or a visited cell."""
    seen = torch.zeros(h, w, dtype=torch.bool, device="cpu")
    moves = ((1, 0), (0, -1), (-1, 0), (0, 1))
    r, c, d, walk = 0, w - 1, 0, []
    for _ in range(h * w):
        walk.append(r * w + c)
        seen[r, c] = True
        nr, nc = r + moves[d][0], c + moves[d][1]
        if not (0 <= nr < h and 0 <= nc < w) or seen[nr, nc]:
            d = (d + 1) % 4
            nr, nc = r + moves[d][0], c + moves[d][1]
        r, c = nr, nc
    return torch.tensor(walk, device="cpu")


def causal_mask(m: int) -> torch.Tensor:
    """(m, m) bool, True above the diagonal: token i attends to tokens 0..i only (nn.MultiheadAttention's bool mask
    convention, True = not attended)."""
    return torch.ones(m, m, dtype=torch.bool, device="cpu").triu(1)


class AR9Decoder(nn.Module):
    """SPOT's `AR9TransformerDecoder`. Parameter names are the checkpoint format: bos (one per order), project1,
    project2, norm0, backbone.layers.i (harness.nn.transformer, shared with DIAS); `orders` and `mask` are not
    saved (non-persistent, as the authors').

    forward(features (b, m, dim) raster tokens, slots (b, n, slot_dim)) → recon (b, m, dim), attention (b, n, m),
    both in raster order. Order: in training one uniformly drawn from the nine per forward, the same for the whole
    batch (the authors draw it with numpy's global RNG; here torch's global CPU generator, which the harness seeds
    and saves with the training state); in evaluation raster.
    """

    def __init__(self, dim: int, slot_dim: int, grid: tuple[int, int], num_layers: int, num_heads: int, ffn_dim: int):
        super().__init__()
        orders = patch_orders(*grid)  # computed on the CPU, then put where the parameters are built (e.g. meta)
        self.bos = nn.Parameter(torch.randn(len(orders), 1, 1, dim) * dim**-0.5)
        self.register_buffer("orders", orders.to(self.bos.device), persistent=False)
        self.register_buffer("mask", causal_mask(orders.shape[1]).to(self.bos.device), persistent=False)
        self.project1 = linear_ln(dim, dim)
        self.project2 = linear_ln(slot_dim, dim)
        self.norm0, self.backbone = pre_norm_decoder(dim, num_layers, num_heads, ffn_dim)
        self.readout = nn.Identity()

    def choose_order(self) -> int:
        """Index of the order this forward decodes in."""
        if self.training:
            return int(torch.randint(len(self.orders), (), device="cpu"))
        return 0

    def forward(self, features: torch.Tensor, slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, m, _ = features.shape
        if m != self.orders.shape[1]:
            raise ValueError(f"decoder was built for {self.orders.shape[1]} tokens, got {m}")
        k = self.choose_order()
        order = self.orders[k]
        query = torch.cat([self.bos[k].expand(b, -1, -1), features[:, order[:-1]]], 1)
        out, attention = decode_layers(self.backbone, self.norm0(self.project1(query)), self.project2(slots),
                                       tgt_mask=self.mask)
        inverse = order.argsort()
        return self.readout(out)[:, inverse], attention[:, inverse].transpose(1, 2)


class SPOT(SlotModel):
    """The authors' `SPOT`. Attribute names and their order are the checkpoint format (encode_backbone,
    [encode_backbone2,] encode_posit_embed, encode_project, initializ, aggregat, decode); biases of all but the
    backbone and the initialiser start at zero (the authors' reset_parameters).

    `encode_backbone2` (stage 2's student only, `finetune` in the authors' code): a frozen copy of the pretrained
    backbone whose features are the decoder's input and target, while the fine-tuned `encode_backbone` feeds
    Slot Attention. Without it both come from `encode_backbone`, whose output is detached for the decoder.

    forward(images, features=None) → ModelOutput(slots, masks {"decoder", "aggregator"} (b, n, h, w),
    losses {"recon"}, extras under the authors' names {"feature", "attenta", "recon", "attentd"}); "feature" is
    the decoder's target (their feature2). `features`: the output of `frozen_backbone()` for `images`.
    """

    def __init__(self, encode_backbone: nn.Module, encode_posit_embed: nn.Module, encode_project: nn.Module,
                 initializ: nn.Module, aggregat: nn.Module, decode: nn.Module,
                 encode_backbone2: nn.Module | None = None):
        super().__init__()
        self.encode_backbone = encode_backbone
        if encode_backbone2 is not None:
            self.encode_backbone2 = encode_backbone2
        self.encode_posit_embed = encode_posit_embed
        self.encode_project = encode_project
        self.initializ = initializ
        self.aggregat = aggregat
        self.decode = decode
        zero_biases(self.encode_posit_embed, self.encode_project, self.aggregat, self.decode)

    @property
    def finetune(self) -> bool:
        return hasattr(self, "encode_backbone2")

    def frozen_backbone(self) -> nn.Module:
        return self.encode_backbone2 if self.finetune else self.encode_backbone

    def forward(self, images: torch.Tensor, features: torch.Tensor | None = None) -> ModelOutput:
        if self.finetune:
            feature = self.encode_backbone(images)
            if features is None:
                with torch.no_grad():
                    features = self.encode_backbone2(images)
            target = features.detach()
        else:
            feature = (self.encode_backbone(images) if features is None else features).detach()  # frozen
            target = feature
        b, _, h, w = feature.shape
        encode = self.encode_project(self.encode_posit_embed(feature.permute(0, 2, 3, 1)).flatten(1, 2))
        slotz, attenta = self.aggregat(encode, self.initializ(b))
        attenta = attenta[-1].unflatten(2, (h, w))
        recon, attentd = self.decode(target.flatten(2).transpose(1, 2), slotz)
        recon = recon.transpose(1, 2).reshape(target.shape)
        attentd = attentd.unflatten(2, (h, w))
        return ModelOutput(
            slots=slotz,
            masks={"decoder": attentd, "aggregator": attenta},
            losses={"recon": F.mse_loss(recon, target)},
            extras={"feature": target, "attenta": attenta, "recon": recon, "attentd": attentd},
        )


def check_config(config: SPOTConfig) -> None:
    resized = int(config.resolution * config.backbone_scale)
    if resized != config.backbone.image_size:
        raise BaselineConfigError(f"{config.method} config: resolution {config.resolution} × backbone_scale "
                                  f"{config.backbone_scale} = {resized}, but backbone.image_size is "
                                  f"{config.backbone.image_size}")
    if config.eval_noise not in NOISE_MODES:
        raise BaselineConfigError(f"{config.method} config: eval_noise must be one of {NOISE_MODES}, got "
                                  f"{config.eval_noise!r}")


def build_spot(config: SPOTConfig, *, pretrained: bool, student_of: SPOT | None = None) -> SPOT:
    """SPOT of `config`; `pretrained=True` loads `config.backbone_weights` into the backbone. With `student_of` (a
    freshly built stage-1 model), stage 2's student (docs/reference.md#spot): per-slot Gaussians (NormalSeparate), bi-level
    truncated Slot Attention, and two copies of that model's backbone as it was built (the pretrained one, or the
    same random one for the CPU configs): the fine-tuned `encode_backbone` and the frozen `encode_backbone2`."""
    check_config(config)
    spec, dim = config.backbone, config.backbone.hidden
    student = student_of is not None
    if student:
        encode_backbone = copy.deepcopy(student_of.encode_backbone)
    else:
        encode_backbone = make_encoder(spec, config.norm_out, config.backbone_scale,
                                       config.backbone_weights if pretrained else None)
    return SPOT(
        encode_backbone=encode_backbone,
        encode_backbone2=copy.deepcopy(encode_backbone) if student else None,
        encode_posit_embed=nn.Identity(),
        encode_project=MLP(dim, [dim, dim], ln="pre"),
        initializ=(NormalSeparate(config.num_slots, config.slot_dim) if student
                   else NormalShared(config.num_slots, config.slot_dim, config.eval_noise)),
        aggregat=SlotAttention(config.num_iter, config.slot_dim, config.sa_ffn_dim, dropout=0.0, kv_dim=dim,
                               trunc_bp="bi-level" if student else None),
        decode=AR9Decoder(dim, config.slot_dim, (spec.grid, spec.grid), config.decoder_layers,
                          config.decoder_heads, config.decoder_ffn_dim),
    )


SPOT_METHOD = register_method(
    "spot", train_cost=3, authors_label="spot_r-{dataset}", tables=(*DEFAULT_TABLES, "mini-long", "v3", "recogn-v3"),
    description="SPOT stage 1 as the DIAS authors run it (SmoothSA): DIAS's frozen DINOv2-S/14 reg4 encoder and Slot "
                "Attention, autoregressive decoder over nine patch orders; segments from decoder attention. The "
                "published SPOT rows.")


@SPOT_METHOD.builder
def build(config: SPOTConfig, *, pretrained: bool = False) -> SPOT:
    return build_spot(config, pretrained=pretrained)


def full_size_train(dataset: str) -> TrainConfig:
    """docs/reference.md#spot, docs/reference.md#hyper-parameters: the DIAS recipe (batch 32, Adam 2e-4, warm-up
    total/20 then cosine to lr/1000, validation every total/40, checkpoints from total/2, AMP fp16, the backbone
    frozen) with SPOT's clipping and one loss term."""
    total = TOTAL_STEPS[dataset]
    return TrainConfig(steps=total, batch_size=32, lr=2e-4, lr_final_ratio=1e-3, grad_clip=GRAD_CLIP,
                       grad_clip_norm_type=GRAD_CLIP_NORM_TYPE, amp="fp16", freeze=[FREEZE_BACKBONE])


@SPOT_METHOD.config(*DATASETS)
def full_size_config(dataset: str, config_class: type[SPOTConfig] = SPOTConfig, **fields) -> SPOTConfig:
    """The authors' config `spot_r-<dataset>.py` (as `config_class`, with `fields` replaced)."""
    defaults = {"num_slots": SLOTS[dataset], "train": full_size_train(dataset),
                "eval": EvalConfig(mask="decoder", resolution=256, batch_size=32, amp="fp16")}
    return config_class(**{**defaults, **fields})


def synthetic_train() -> TrainConfig:
    """DIAS's CPU budget and learning rate (harness.recipes.random_vit), SPOT's clipping, fp32."""
    train = synthetic.train_config(lr=4e-4, amp="off", freeze=[FREEZE_BACKBONE])
    return dataclasses.replace(train, grad_clip=GRAD_CLIP, grad_clip_norm_type=GRAD_CLIP_NORM_TYPE)


@SPOT_METHOD.config("synthetic")
def synthetic_config(dataset: str, config_class: type[SPOTConfig] = SPOTConfig, **fields) -> SPOTConfig:
    """DIAS's CPU size (harness.recipes.random_vit: 32² images, the frozen tiny ViT with 4 registers and a 16×16 token
    grid; slot dim 64, a 2-layer decoder) as `config_class`, with `fields` replaced."""
    defaults = {
        "num_slots": synthetic.SLOTS, "resolution": synthetic.RESOLUTION,
        "backbone": synthetic.backbone(registers=4), "backbone_scale": 1.0, "backbone_weights": None, "slot_dim": 64,
        "sa_ffn_dim": 256, "decoder_layers": 2, "decoder_heads": 4, "decoder_ffn_dim": 256,
        "train": synthetic_train(),
        "eval": EvalConfig(mask="decoder", resolution=synthetic.RESOLUTION, batch_size=32, amp="off")}
    return config_class(**{**defaults, **fields})


@SPOT_METHOD.config("textured")
def textured(dataset: str) -> SPOTConfig:
    return pretrained_dinov2.adapt(synthetic_config(dataset))
