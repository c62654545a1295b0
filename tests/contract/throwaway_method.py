"""A throwaway method, written the way docs/architecture.md#add-a-method says: this one file, plus one registration
line (here: loading this module as a pytest plugin; in the project, an import in baselines/__init__.py).

Pixel Slot Attention: slots attend over 4×4-pooled pixels, each pooled pixel is reconstructed as the attention-
weighted mean of the slots' colours. Small on purpose; what matters is that the contract tests cover it unedited.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from harness.config import EvalConfig, MethodConfig, TrainConfig
from harness.contract import ModelOutput, SlotModel
from harness.nn.initializers import NormalShared
from harness.nn.slot_attention import SlotAttention
from harness.registry import register_method

THROWAWAY = register_method("throwaway", description="test-only: pixel Slot Attention (tests/contract/throwaway_method.py)")


@dataclass(kw_only=True)
class ThrowawayConfig(MethodConfig):
    slot_dim: int = 16


class PixelSlots(SlotModel):
    def __init__(self, config: ThrowawayConfig):
        super().__init__()
        self.embed = nn.Linear(3, config.slot_dim)
        self.initializ = NormalShared(config.num_slots, config.slot_dim)
        self.aggregat = SlotAttention(2, config.slot_dim, 2 * config.slot_dim, kv_dim=config.slot_dim)
        self.colour = nn.Linear(config.slot_dim, 3)

    def forward(self, images: torch.Tensor, features: torch.Tensor | None = None) -> ModelOutput:
        pooled = F.avg_pool2d(images, 4)
        b, _, h, w = pooled.shape
        slots, attents = self.aggregat(self.embed(pooled.flatten(2).transpose(1, 2)), self.initializ(b))
        attent = attents[-1]  # (b, n, h·w), softmax over slots
        recon = torch.einsum("bnm,bnc->bcm", attent, self.colour(slots)).unflatten(2, (h, w))
        return ModelOutput(slots, masks={"aggregator": attent.unflatten(2, (h, w))},
                           losses={"recon": F.mse_loss(recon, pooled)})


@THROWAWAY.builder
def build(config: ThrowawayConfig, *, pretrained: bool = False) -> PixelSlots:
    return PixelSlots(config)


@THROWAWAY.config("synthetic")
def synthetic(dataset: str) -> ThrowawayConfig:
    return ThrowawayConfig(
        num_slots=4, resolution=32,
        train=TrainConfig(steps=4, batch_size=2, lr=1e-3, warmup_steps=0, val_interval=4, save_since=2,
                          num_workers=0, amp="off"),
        eval=EvalConfig(mask="aggregator", resolution=32, batch_size=4, amp="off"),
    )
