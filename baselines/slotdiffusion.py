"""`slotdiffusion`: SlotDiffusion as the authors' VQ-VFM-OCL baseline (docs/reference.md#slotdiffusion). Needs the stage
`vqvae-c4`.

Shared encoder (baselines.dino_slots); `mediat` = the stage's VQ-VAE encoder + codebook (4-d codes), frozen, no
gradients: quant (b,4,16,16) is the latent to denoise. `decode` = a diffusers DDPMScheduler (scaled_linear, β
0.0015→0.0195, 1000 steps, ε-prediction, clip_sample False, steps_offset 1, leading spacing, fixed_small) and a
diffusers UNet2DConditionModel (DownBlock2D + 3 CrossAttnDownBlock2D, UNetMidBlock2DCrossAttn, 3 CrossAttnUpBlock2D
+ UpBlock2D, channels 128/256/384/512, 2 layers per block, cross-attention on the slots (dim 256), dropout 0.1).
Training: t ~ U{0..999}, noise ~ N(0,1), pred = UNet(add_noise(quant, noise, t), t, slots); loss MSE(pred, noise).
Segmentation = the aggregator's attention ("aggregator").

diffusers 0.42's UNet2DConditionModel has exactly the parameter names, shapes and order of 0.36 (the version the
authors' key listing was made with): no key mapping is needed (tested against keys_slotdiffusion_r_vqvae-coco.txt).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common import DATASETS, SLOTS, SYNTHETIC_RESOLUTION, SYNTHETIC_SLOTS, vvo_train
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
from harness.recipes import pretrained_dinov2
from harness.recipes import random_vit as synthetic
from harness.registry import DEFAULT_TABLES, register_method

STAGE = "vqvae-c4"

# The authors' NoiseSchedule arguments (scheduler settings other than these are diffusers defaults they restate).
SCHEDULER = dict(beta_schedule="scaled_linear", beta_start=0.0015, beta_end=0.0195, num_train_timesteps=1000,
                 prediction_type="epsilon", clip_sample=False, clip_sample_range=1.0,
                 dynamic_thresholding_ratio=0.995, sample_max_value=1.0, steps_offset=1, thresholding=False,
                 timestep_spacing="leading", trained_betas=None, variance_type="fixed_small")

DOWN_BLOCKS = ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D")
UP_BLOCKS = ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D")


@dataclass(kw_only=True)
class SlotDiffusionConfig(DinoSlotConfig):
    tokenizer: TokenizerSpec
    unet_channels: tuple[int, ...] = (128, 256, 384, 512)
    unet_layers_per_block: int = 2
    unet_norm_groups: int = 32
    unet_head_dim: int = 8
    unet_dropout: float = 0.1


class ConditionDiffusionDecoder(nn.Module):
    """Noises the latent and predicts the noise with a slot-conditioned UNet; `backbone` holds all parameters."""

    def __init__(self, config: SlotDiffusionConfig):
        super().__init__()
        from diffusers import DDPMScheduler, UNet2DConditionModel  # slow import: only where a UNet is built

        self.scheduler = DDPMScheduler(**SCHEDULER)
        code_dim = config.tokenizer.code_dim
        self.backbone = UNet2DConditionModel(
            in_channels=code_dim, out_channels=code_dim, down_block_types=DOWN_BLOCKS,
            mid_block_type="UNetMidBlock2DCrossAttn", up_block_types=UP_BLOCKS,
            block_out_channels=tuple(config.unet_channels), layers_per_block=config.unet_layers_per_block,
            cross_attention_dim=config.slot_dim, transformer_layers_per_block=1, dropout=config.unet_dropout,
            norm_num_groups=config.unet_norm_groups, attention_head_dim=config.unet_head_dim,
        )

    def forward(self, latent: torch.Tensor, slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """latent (b,c,h,w), slots (b,n,d) → (predicted noise, noise), both (b,c,h,w)."""
        b = latent.shape[0]
        with torch.no_grad():
            timestep = torch.randint(0, self.scheduler.config.num_train_timesteps, (b,), device=latent.device)
            noise = torch.randn_like(latent)
            noisy = self.scheduler.add_noise(latent, noise, timestep)
        return self.backbone(noisy, timestep, slots).sample, noise


class SlotDiffusion(StageUser, DinoSlotModel):
    def __init__(self, config: SlotDiffusionConfig, pretrained: bool = False):
        super().__init__(config, pretrained)
        self.mediat = VQVAE(config.tokenizer, decode=False)
        self.decode = ConditionDiffusionDecoder(config)
        self.finish_init()

    def forward(self, images: torch.Tensor, features: torch.Tensor | None = None) -> ModelOutput:
        """`features` replace the frozen DINOv2's output only; the frozen tokenizer (`mediat`) still reads
        `images`."""
        _, slots, attent = self.encode(images, features)
        _, quant = self.tokens(images)
        pred, noise = self.decode(quant, slots)
        return ModelOutput(
            slots,
            masks={"aggregator": attent},
            losses={"recon": F.mse_loss(pred, noise)},
            extras={"attent": attent, "recon": pred, "noise": noise},
        )


SLOTDIFFUSION = register_method(
    "slotdiffusion", train_cost=5, authors_label="slotdiffusion_r_vqvae-{dataset}",
    tables=(*DEFAULT_TABLES, "v3", "recogn-v3"),
    description="SlotDiffusion (VQ-VFM-OCL port): frozen DINOv2-S/14, SA, slot-conditioned latent diffusion UNet "
                "(stage vqvae-c4)")


@SLOTDIFFUSION.builder
def build_slotdiffusion(config: SlotDiffusionConfig, *, pretrained: bool = False) -> SlotDiffusion:
    """`pretrained=True` (training) loads `config.backbone_weights` DINOv2 weights into the backbone; the
    tokenizer comes from the trained stage (`model.load_stage`)."""
    return SlotDiffusion(config, pretrained)


@SLOTDIFFUSION.config(*DATASETS)
def full_size(dataset: str) -> SlotDiffusionConfig:
    return SlotDiffusionConfig(
        num_slots=SLOTS[dataset], stage=STAGE,
        backbone=DinoV2Spec(registers=0), tokenizer=full_tokenizer(CODE_DIM[STAGE]),
        train=vvo_train(freeze=[FREEZE_BACKBONE, FREEZE_MEDIAT]), eval=EvalConfig(mask="aggregator"),
    )


@SLOTDIFFUSION.config("synthetic")
def synthetic_config(dataset: str) -> SlotDiffusionConfig:
    return SlotDiffusionConfig(
        num_slots=SYNTHETIC_SLOTS, resolution=SYNTHETIC_RESOLUTION,
        stage=STAGE, backbone=synthetic.backbone(registers=0), backbone_scale=1.0, backbone_weights=None,
        tokenizer=synthetic_tokenizer(SYNTHETIC_CODE_DIM[STAGE]), slot_dim=64, project_hidden=128, ffn_dim=128,
        unet_channels=(32, 32, 64, 64), unet_layers_per_block=1, unet_norm_groups=8,
        train=synthetic.train_config(lr=4e-4, amp="off", freeze=[FREEZE_BACKBONE, FREEZE_MEDIAT]),
        eval=EvalConfig(mask="aggregator", resolution=SYNTHETIC_RESOLUTION, amp="off"),
    )


@SLOTDIFFUSION.config("textured")
def textured(dataset: str) -> SlotDiffusionConfig:
    return pretrained_dinov2.adapt(synthetic_config(dataset), tokenizer=textured_tokenizer(SYNTHETIC_CODE_DIM[STAGE]))
