"""EXTENSION — not the released code: the paper's slot redundancy reduction and re-initialised aggregation.

The DIAS paper reduces redundant slots after aggregation and runs an extra, re-initialised aggregation that
updates the remaining slots. The authors' README says pruning and re-initialisation are not in the released code,
and no commit holds them (docs/reference.md#dias); the published numbers come from the released path. The criterion,
threshold and iteration count below are therefore our reading, configurable and OFF by default. No new parameters: a
released checkpoint loads into a model with the extension on.

Our reading:
* redundancy is judged on the aggregator's last attention map a0 (b, n, m), detached (a discrete decision):
  - "iou": soft IoU of two slots' maps, Σ min / Σ max over tokens. Slots are visited by attention mass, largest
    first; a slot whose IoU with an already kept slot exceeds `threshold` is dropped (its tokens go to the slots
    that remain). Duplicated slots have IoU 1; slots on disjoint objects ≈ 0.
  - "mass": a slot whose mean attention over tokens (its share of the image) is below `threshold` is dropped.
  The slot with the largest mass is always kept.
* dropped slots are masked out of attention (SlotAttention `smask`: −inf logits ⇒ zero attention) and out of
  decoding (`memory_key_padding_mask`), the only hooks the released code has for them.
* re-initialised aggregation: the remaining slots are the initial queries of `reinit_iters` further Slot Attention
  iterations (the same module and weights) on the same inputs. Its maps are appended to the first aggregation's,
  so the self-distillation still drives the first map toward the very last one.
* prune without reinit: the last map is restricted to the kept slots (a0 renormalised over them — exactly the
  softmax over the kept slots' logits).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.errors import HarnessError

CRITERIA = ("iou", "mass")


@dataclass
class ExtensionConfig:
    """prune: drop redundant slots by `criterion`/`threshold`; reinit: extra aggregation of `reinit_iters`."""

    prune: bool = False
    criterion: str = "iou"
    threshold: float = 0.5
    reinit: bool = False
    reinit_iters: int = 3

    def __post_init__(self):
        if self.criterion not in CRITERIA:
            raise HarnessError(f"extension.criterion must be one of {CRITERIA}, got {self.criterion!r}")
        if not 0.0 <= self.threshold <= 1.0:
            raise HarnessError(f"extension.threshold must lie in [0, 1], got {self.threshold}")
        if self.reinit_iters < 1:
            raise HarnessError(f"extension.reinit_iters must be ≥ 1, got {self.reinit_iters}")

    @property
    def active(self) -> bool:
        return self.prune or self.reinit


def soft_iou(maps: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """maps (b, n, m) ≥ 0 → (b, n, n) Σ_m min(a_i, a_j) / Σ_m max(a_i, a_j)."""
    a, b = maps[:, :, None], maps[:, None]
    return torch.minimum(a, b).sum(-1) / torch.maximum(a, b).sum(-1).clamp_min(eps)


def redundancy_mask(maps: torch.Tensor, criterion: str, threshold: float) -> torch.Tensor:
    """maps (b, n, m) aggregator attention → (b, n) bool, True = slot kept. The heaviest slot is always kept."""
    maps = maps.detach().float()
    b, n, _ = maps.shape
    mass = maps.mean(2)
    rows = torch.arange(b, device=maps.device)
    if criterion == "mass":
        keep = mass >= threshold
        keep[rows, mass.argmax(1)] = True
        return keep
    if criterion != "iou":
        raise ValueError(f"unknown redundancy criterion {criterion!r}; valid: {CRITERIA}")
    iou = soft_iou(maps)
    order = mass.argsort(dim=1, descending=True, stable=True)
    keep = torch.zeros(b, n, dtype=torch.bool, device=maps.device)
    for r in range(n):
        slot = order[:, r]
        redundant = ((iou[rows, slot] > threshold) & keep).any(1)
        keep[rows, slot] = ~redundant
    return keep


def restrict_to_slots(maps: torch.Tensor, smask: torch.Tensor) -> torch.Tensor:
    """Renormalise per-token slot probabilities (b, n, m) over the kept slots (smask (b, n)); dropped → 0."""
    kept = maps * smask[:, :, None]
    return kept / kept.sum(1, keepdim=True).clamp_min(torch.finfo(maps.dtype).tiny)


def refine_slots(aggregat, inputs: torch.Tensor, slots: torch.Tensor, maps: list[torch.Tensor],
                 config: ExtensionConfig):
    """After the first aggregation: (slots, maps, smask or None) with redundant slots dropped and/or re-aggregated.

    aggregat: the model's SlotAttention; inputs (b, m, c) its keys/values; maps [a0 (b, n, m)] per iteration.
    """
    smask = redundancy_mask(maps[-1], config.criterion, config.threshold) if config.prune else None
    if config.reinit:
        slots, extra = aggregat(inputs, slots, smask=smask, num_iter=config.reinit_iters)
        return slots, maps + extra, smask
    if smask is not None:
        return slots, maps[:-1] + [restrict_to_slots(maps[-1], smask)], smask
    return slots, maps, smask
