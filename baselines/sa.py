"""`sa`: vanilla Slot Attention (Locatello et al., NeurIPS 2020), the pixel-reconstruction anchor.

CNN encoder (4 × conv k×k, ReLU) → soft positional embedding (a linear map of the 4-channel grid
[y, x, 1−y, 1−x] added to the features) → LayerNorm + MLP → Slot Attention (3 iterations, one shared Gaussian
initialiser) → spatial broadcast decoder (each slot tiled on a small grid + positional embedding, transposed convs
up to the image size) giving per-slot RGB and an alpha logit; alphas are a softmax over slots and the
reconstruction is Σ alpha·RGB; loss = pixel MSE. Masks: "decoder" = alpha (evaluated), "aggregator" = the last
iteration's attention.

No authors' code or checkpoint exists for it in the reproduced repositories. Its Slot Attention is the harness's
(the authors' variant, GELU in the slot MLP, attention eps 1e-5) so that every method aggregates alike. Images are
resized to `internal_resolution` (128², Locatello's CLEVR setting) and the masks come out at that size; the
evaluator upsamples them bilinearly to 256² like every other method's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common import DATASETS, SLOTS, SYNTHETIC_RESOLUTION, SYNTHETIC_SLOTS, BaselineConfigError, vvo_train
from harness.config import EvalConfig, MethodConfig
from harness.contract import ModelOutput, SlotModel
from harness.nn.initializers import NormalShared
from harness.nn.slot_attention import SlotAttention
from harness.recipes import pretrained_dinov2
from harness.recipes import random_vit as synthetic
from harness.registry import register_method


@dataclass(kw_only=True)
class SAConfig(MethodConfig):
    internal_resolution: int = 128
    channels: int = 64
    kernel_size: int = 5
    slot_dim: int = 64
    mlp_dim: int = 128
    num_iter: int = 3
    broadcast: int = 8  # side of the decoder's initial grid; doubled by each transposed conv up to the image


def coordinate_grid(h: int, w: int, device=None) -> torch.Tensor:
    """(h, w, 4) grid [y, x, 1−y, 1−x] with y, x = linspace(0, 1) — Locatello's `build_grid`."""
    y, x = torch.meshgrid(torch.linspace(0, 1, h, device=device), torch.linspace(0, 1, w, device=device),
                          indexing="ij")
    return torch.stack([y, x, 1 - y, 1 - x], -1)


class SoftPositionEmbed(nn.Module):
    """Adds Linear(4 → dim) of the coordinate grid to channel-last features (b, h, w, dim)."""

    def __init__(self, dim: int):
        super().__init__()
        self.project = nn.Linear(4, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.project(coordinate_grid(x.shape[1], x.shape[2], x.device).to(x.dtype))


class BroadcastCNNDecoder(nn.Module):
    """Slots (b, n, d) → per-slot RGB (b, n, 3, R, R) and alpha logits (b, n, 1, R, R)."""

    def __init__(self, slot_dim: int, channels: int, kernel_size: int, broadcast: int, resolution: int):
        super().__init__()
        ups = math.log2(resolution / broadcast)
        if ups < 0 or ups != int(ups):
            raise BaselineConfigError(
                f"sa: internal_resolution {resolution} is not broadcast {broadcast} × a power of 2")
        self.broadcast = broadcast
        self.posit_embed = SoftPositionEmbed(slot_dim)
        layers: list[nn.Module] = []
        c, pad = slot_dim, kernel_size // 2
        for _ in range(int(ups)):
            layers += [nn.ConvTranspose2d(c, channels, kernel_size, 2, pad, output_padding=1), nn.ReLU()]
            c = channels
        layers += [nn.ConvTranspose2d(c, channels, kernel_size, 1, pad), nn.ReLU(),
                   nn.ConvTranspose2d(channels, 4, 3, 1, 1)]
        self.backbone = nn.Sequential(*layers)

    def forward(self, slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, d = slots.shape
        grid = slots.reshape(b * n, 1, 1, d).expand(-1, self.broadcast, self.broadcast, -1)
        out = self.backbone(self.posit_embed(grid).permute(0, 3, 1, 2))
        out = out.unflatten(0, (b, n))
        return out[:, :, :3], out[:, :, 3:]


class SlotAttentionAutoEncoder(SlotModel):
    def __init__(self, config: SAConfig):
        super().__init__()
        c, k, r = config.channels, config.kernel_size, config.internal_resolution
        self.resolution = r
        convs: list[nn.Module] = []
        for i in range(4):
            convs += [nn.Conv2d(3 if i == 0 else c, c, k, padding=k // 2), nn.ReLU()]
        self.encode_backbone = nn.Sequential(*convs)
        self.encode_posit_embed = SoftPositionEmbed(c)
        self.encode_project = nn.Sequential(nn.LayerNorm(c), nn.Linear(c, c), nn.ReLU(), nn.Linear(c, c))
        self.initializ = NormalShared(config.num_slots, config.slot_dim)
        self.aggregat = SlotAttention(config.num_iter, config.slot_dim, config.mlp_dim, kv_dim=c)
        self.decode = BroadcastCNNDecoder(config.slot_dim, c, k, config.broadcast, r)

    def forward(self, images: torch.Tensor) -> ModelOutput:
        if images.shape[-1] != self.resolution or images.shape[-2] != self.resolution:
            images = F.interpolate(images, size=(self.resolution,) * 2, mode="bilinear", antialias=True)
        feature = self.encode_backbone(images).permute(0, 2, 3, 1)  # (b, h, w, c)
        b, h, w, _ = feature.shape
        encode = self.encode_project(self.encode_posit_embed(feature).flatten(1, 2))
        slots, attents = self.aggregat(encode, self.initializ(b))
        rgb, alpha = self.decode(slots)
        alpha = alpha.softmax(1)
        recon = (alpha * rgb).sum(1)
        return ModelOutput(
            slots,
            masks={"decoder": alpha[:, :, 0], "aggregator": attents[-1].unflatten(2, (h, w))},
            losses={"recon": F.mse_loss(recon, images)},
            extras={"recon": recon, "rgb": rgb},
        )


SA = register_method("sa", train_cost=3,
                     description="vanilla Slot Attention (Locatello et al. 2020): CNN encoder, pixel broadcast decoder")


@SA.builder
def build_sa(config: SAConfig, *, pretrained: bool = False) -> SlotAttentionAutoEncoder:
    """Trained from scratch: `pretrained` has nothing to load."""
    return SlotAttentionAutoEncoder(config)


@SA.config(*DATASETS)
def full_size(dataset: str) -> SAConfig:
    # The baselines' budget (50k steps, batch 32) with Locatello's learning rate 4e-4.
    return SAConfig(num_slots=SLOTS[dataset], train=vvo_train(lr=4e-4), eval=EvalConfig(mask="decoder"))


@SA.config("synthetic")
def synthetic_config(dataset: str) -> SAConfig:
    return SAConfig(
        num_slots=SYNTHETIC_SLOTS, resolution=SYNTHETIC_RESOLUTION,
        internal_resolution=SYNTHETIC_RESOLUTION, channels=32, kernel_size=3,
        train=synthetic.train_config(lr=1e-3, amp="bf16"),
        eval=EvalConfig(mask="decoder", resolution=SYNTHETIC_RESOLUTION, amp="off"),
    )


@SA.config("textured")
def textured(dataset: str) -> SAConfig:
    """Pixels, no backbone: SA reads the textured images at the random-ViT recipe's 32² (its CNN's cost grows with
    pixels)."""
    return pretrained_dinov2.adapt(synthetic_config(dataset))
