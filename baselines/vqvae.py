"""VQ-VAE tokenizers (docs/reference.md#vq-vae-tokenizers): the stage SLATE (`vqvae-c256`) and SlotDiffusion
(`vqvae-c4`) build on.

A stage is trained once per (dataset, seed) and shared by every method that names it in `config.stage`; the
method copies the stage's encoder and codebook into its frozen `mediat` with the authors' ckpt_map
(`STAGE_CKPT_MAP`: keys paired by order within prefixes, docs/reference.md#quirks, quirk 11).

Layout (the checkpoint format, `keys_vqvae-coco-c*.txt`):
  encode = [Interpolate(0.5, bicubic), TaesdEncoder (layers 0..13), GroupNorm(1, 64), Conv1x1(64 → D)]
  decode = [Conv1x1(D → 64), GroupNorm(1, 64), TaesdDecoder (layers 2..18, output ·2−1)]
  codebook.templat = Embedding(4096, D), initialised U(−1/4096, 1/4096)
Losses (unweighted; the config weighs `commit` by 0.25): recon = MSE(decode, image bicubic-resized to the
decoder's output size, 128² for 256² input), align = MSE(quant, encode.detach()), commit = MSE(encode,
quant.detach()), and for c4 `lpips` (AlexNet LPIPS on the same pair, see baselines.lpips).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common import DATASETS, SYNTHETIC_RESOLUTION, BaselineConfigError, vvo_train
from baselines.taesd import TaesdDecoder, TaesdEncoder, TaesdSpec, build_autoencoder_tiny
from harness.config import EvalConfig, MethodConfig, WeightSchedule
from harness.contract import ModelOutput, SlotModel
from harness.nn.checkpoint import load_by_prefix_order
from harness.nn.dinov2 import Interpolate
from harness.recipes import pretrained_dinov2
from harness.recipes import random_vit as synthetic
from harness.registry import get_config, register_method

# The authors' ckpt_map for loading a stage into a method (target prefix ← source prefix,
# docs/reference.md#vq-vae-tokenizers).
STAGE_CKPT_MAP = (("mediat.encode.", "encode."), ("mediat.codebook.", "codebook."))


@dataclass(kw_only=True)
class TokenizerSpec:
    """Everything that shapes a tokenizer; a stage config and the methods that load it hold equal copies."""

    code_dim: int
    num_codes: int = 4096
    scale: float = 0.5  # resize before the TAESD trunk: 256² → 128² → 16² tokens
    taesd: TaesdSpec = field(default_factory=TaesdSpec)

    def tokens(self, resolution: int) -> int:
        """Side of the token grid for a `resolution`² image."""
        return int(resolution * self.scale) // self.taesd.downsample


class Codebook(nn.Module):
    """`templat` (num_codes, dim) with the authors' uniform init; `match` picks the nearest code."""

    def __init__(self, num_codes: int, dim: int):
        super().__init__()
        self.templat = nn.Embedding(num_codes, dim)
        nn.init.uniform_(self.templat.weight, -1 / num_codes, 1 / num_codes)

    def forward(self, zidx: torch.Tensor) -> torch.Tensor:
        return self.templat(zidx)

    def match(self, encode: torch.Tensor) -> torch.Tensor:
        """encode (b,c,h,w) → zidx (b,h,w) of the nearest code.

        Computed as the authors do — expanded squared distance, argmax of softmax(−dist) — so ties and
        reduced-precision rounding under autocast pick the same code as theirs.
        """
        encode = encode.detach()
        weight = self.templat.weight
        dist = (encode.square().sum(1, keepdim=True) + weight.square().sum(1)[None, :, None, None]
                - 2 * torch.einsum("bchw,mc->bmhw", encode, weight))
        return (-dist).softmax(1).argmax(1)


class VQVAE(SlotModel):
    """encode/decode/codebook as the authors' VQVAE; `decode=False` gives the encoder-only `mediat` of SLATE and
    SlotDiffusion (same keys under `mediat.`)."""

    def __init__(self, spec: TokenizerSpec, decode: bool = True, pretrained: str | None = None,
                 lpips: nn.Module | None = None):
        super().__init__()
        autoencoder = build_autoencoder_tiny(spec.taesd, pretrained)
        width = spec.taesd.width
        self.encode = nn.Sequential(
            Interpolate(spec.scale, "bicubic"),
            TaesdEncoder(spec.taesd, autoencoder=autoencoder),
            nn.GroupNorm(1, width),
            nn.Conv2d(width, spec.code_dim, 1),
        )
        self.decode = nn.Sequential(
            nn.Conv2d(spec.code_dim, width, 1),
            nn.GroupNorm(1, width),
            TaesdDecoder(spec.taesd, autoencoder=autoencoder),
        ) if decode else None
        self.codebook = Codebook(spec.num_codes, spec.code_dim)
        # LPIPS holds frozen pretrained weights outside the checkpoint format (never in state_dict).
        self._lpips = [lpips] if lpips is not None else []

    def tokenize(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """images (b,3,H,W) → encode (b,D,h,w), zidx (b,h,w), quant (b,D,h,w)."""
        encode = self.encode(images)
        zidx = self.codebook.match(encode)
        quant = self.codebook(zidx).permute(0, 3, 1, 2)
        return encode, zidx, quant

    def forward(self, images: torch.Tensor) -> ModelOutput:
        encode, zidx, quant = self.tokenize(images)
        extras = {"encode": encode, "zidx": zidx, "quant": quant}
        if self.decode is None:
            return ModelOutput(None, extras=extras)
        decode = self.decode(encode + (quant - encode).detach())  # straight-through
        target = F.interpolate(images, size=decode.shape[-2:], mode="bicubic", antialias=True)
        losses = {
            "recon": F.mse_loss(decode, target),
            "align": F.mse_loss(quant, encode.detach()),
            "commit": F.mse_loss(encode, quant.detach()),
        }
        if self._lpips:
            losses["lpips"] = self._lpips[0].to(decode.device)(decode, target).mean()
        return ModelOutput(None, losses=losses, extras={**extras, "decode": decode})


class StageUser:
    """Mixin of the methods whose frozen `mediat` is a trained VQ-VAE stage (SLATE, SlotDiffusion)."""

    mediat: VQVAE

    def load_stage(self, stage_state_dict: dict) -> None:
        """Copy a stage's encoder and codebook into `mediat` with the authors' ckpt_map (keys paired by order
        within the prefixes of STAGE_CKPT_MAP; the stage's decoder is not used)."""
        load_by_prefix_order(self, stage_state_dict, STAGE_CKPT_MAP)

    @torch.no_grad()
    def tokens(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images → zidx (b,h,w), quant (b,D,h,w), without gradients (the authors run mediat in inference mode)."""
        _, zidx, quant = self.mediat.tokenize(images)
        return zidx, quant


@dataclass(kw_only=True)
class VQVAEConfig(MethodConfig):
    num_slots: int = 0
    tokenizer: TokenizerSpec
    # diffusers AutoencoderTiny (HF id or local dir) whose weights start training; loaded only when the builder
    # is asked to (evaluating a checkpoint builds randomly and loads everything from it).
    taesd_weights: str | None = "madebyollin/taesd"  # the TAESD trunk's pretrained weights, loaded only to train
    # The authors train vqvae-c4 with an LPIPS(alex) term (weight 1): `lpips` is True in its full-size configs.
    # Its pretrained weights are never downloaded: `lpips_weights` names a local file (see baselines.lpips), and
    # training a config with lpips=True but no file stops with an error instead of silently dropping the term.
    lpips: bool = False
    lpips_weights: str | None = None


def build_vqvae(config: VQVAEConfig, *, pretrained: bool = False) -> VQVAE:
    """`pretrained=True` (training) starts the TAESD trunk from `config.taesd_weights` and needs the LPIPS
    weights if the recipe has the term; without it (evaluation) LPIPS is loaded only when a file is named."""
    lpips = None
    if config.lpips and config.lpips_weights is not None:
        from baselines.lpips import LPIPS

        lpips = LPIPS.from_file(config.lpips_weights)
    elif config.lpips and pretrained:
        raise BaselineConfigError(
            f"{config.method}/{config.dataset}: the authors' recipe adds an LPIPS(alex) loss; name a local weight "
            f"file with --set lpips_weights=PATH (layout: baselines/lpips.py) or train without it: --set lpips=false")
    weights = config.taesd_weights if pretrained else None
    return VQVAE(config.tokenizer, decode=True, pretrained=weights, lpips=lpips)


# TAESD encoder layers 0–10 keep their pretrained weights (docs/reference.md#vq-vae-tokenizers; parameter names without
# "m.").
FROZEN_PRETRAINED_TAESD = r"encode\.1\.(?:[0-9]|10)\..*"

# Code dimension of each stage: full size, and the small CPU configs' (SLATE's codes are its decoder's width,
# which the small configs shrink with the slot size).
CODE_DIM = {"vqvae-c256": 256, "vqvae-c4": 4}
SYNTHETIC_CODE_DIM = {"vqvae-c256": 64, "vqvae-c4": 4}


def full_tokenizer(code_dim: int) -> TokenizerSpec:
    return TokenizerSpec(code_dim=code_dim)


def synthetic_tokenizer(code_dim: int) -> TokenizerSpec:
    """Small CPU tokenizer: no 0.5 resize and two stride-2 convs ⇒ 8×8 tokens at 32², width 32, 512 codes."""
    return TokenizerSpec(code_dim=code_dim, num_codes=512, scale=1.0,
                         taesd=TaesdSpec(width=32, encoder_blocks=(1, 1, 1), decoder_blocks=(1, 1, 1)))


def textured_tokenizer(code_dim: int) -> TokenizerSpec:
    """The small tokenizer on the textured data: a 0.29 resize first (112² → 32²), hence its 8×8 tokens."""
    return dataclasses.replace(synthetic_tokenizer(code_dim), scale=0.29)


def _full(name: str, dataset: str) -> VQVAEConfig:
    steps = 30_000
    return VQVAEConfig(
        tokenizer=full_tokenizer(CODE_DIM[name]), lpips=name == "vqvae-c4",
        train=vvo_train(steps=steps, batch_size=64, lr=2e-3, loss_weights={"commit": WeightSchedule(end=0.25)},
                        freeze=[FROZEN_PRETRAINED_TAESD]),
        eval=EvalConfig(mask="", batch_size=64),
    )


def _synthetic(name: str, dataset: str) -> VQVAEConfig:
    return VQVAEConfig(
        resolution=SYNTHETIC_RESOLUTION, taesd_weights=None,
        tokenizer=synthetic_tokenizer(SYNTHETIC_CODE_DIM[name]),
        train=synthetic.train_config(lr=2e-3, amp="bf16", steps=synthetic.STAGE_STEPS,
                                     batch_size=synthetic.STAGE_BATCH_SIZE,
                                     loss_weights={"commit": WeightSchedule(end=0.25)}),
        eval=EvalConfig(mask="", resolution=SYNTHETIC_RESOLUTION, amp="off"),
    )


def _textured(name: str, dataset: str) -> VQVAEConfig:
    return pretrained_dinov2.adapt(_synthetic(name, dataset), steps=pretrained_dinov2.STAGE_STEPS,
                                   batch_size=synthetic.STAGE_BATCH_SIZE,
                                   tokenizer=textured_tokenizer(SYNTHETIC_CODE_DIM[name]))


for _name, _what in (("vqvae-c256", "SLATE"), ("vqvae-c4", "SlotDiffusion")):
    _stage = register_method(_name, kind="stage",
                             description=f"VQ-VAE tokenizer (TAESD, 4096×{CODE_DIM[_name]} codes) for {_what}")
    _stage.builder(build_vqvae)
    _stage.config(*DATASETS)(partial(_full, _name))
    _stage.config("synthetic")(partial(_synthetic, _name))
    _stage.config("textured")(partial(_textured, _name))


def stage_config(config: MethodConfig) -> VQVAEConfig:
    """The config of the stage `config.stage` on the same dataset; raises if it describes another tokenizer."""
    stage = get_config(config.stage, config.dataset)
    if dataclasses.asdict(stage.tokenizer) != dataclasses.asdict(config.tokenizer):
        raise BaselineConfigError(f"{config.method}/{config.dataset}: its tokenizer differs from stage "
                         f"{config.stage!r}'s on {config.dataset}")
    return stage
