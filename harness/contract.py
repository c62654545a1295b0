"""The method contract: what every registered method gives the runner, in one place.

A method is one module that registers a builder `build(config, *, pretrained: bool) -> SlotModel` and one config
factory per dataset (harness.registry). The runner, the evaluator, the feature cache and the reports know a method
only through this contract:

- `model(images)` → `ModelOutput` (harness.nn.output): slots, named masks (the config's `eval.mask` is the
  segmentation), unweighted loss terms (the config's `train.loss_weights` weight them), extras.
- Optional abilities are *declared* by overriding a method of `SlotModel`, never discovered from attribute names or
  signatures: a frozen backbone the feature cache may run once (`frozen_backbone`), a prerequisite stage
  (`load_stage`), the optimiser and its parameter groups (`optimizer`), gradient clipping (`clip_gradients`) and a
  per-step hook (`before_step`: schedules, teacher or EMA updates). The defaults are the authors' recipe: Adam over
  the trainable parameters, the config's norm clip, no hook.

`pretrained=True` asks the builder for the state training starts from (pretrained backbone weights); `False` builds
the bare architecture, which a complete checkpoint (ours or the authors') then fills.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from harness.errors import HarnessError
from harness.nn.output import ModelOutput

__all__ = ["ContractError", "ModelOutput", "SlotModel", "trainable_parameters"]


class ContractError(HarnessError):
    """A method, config or model does not honour the contract."""


def trainable_parameters(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


class SlotModel(nn.Module):
    """Base class of every registered model (methods, stages and reference rows).

    Subclasses implement `forward(images, features=None) -> ModelOutput`; `features` is accepted only by models
    whose `frozen_backbone()` is not None and then replaces that backbone's output for `images`.
    """

    def forward(self, images: torch.Tensor, features: torch.Tensor | None = None) -> ModelOutput:
        raise NotImplementedError

    def frozen_backbone(self) -> nn.Module | None:
        """The frozen module whose output `forward(images, features=...)` takes instead of running it (the feature
        cache computes it once per image); None when the method has none."""
        return None

    def load_stage(self, stage_state_dict: dict[str, torch.Tensor]) -> None:
        """Load the trained prerequisite stage named by `config.stage` (e.g. a VQ-VAE tokenizer)."""
        raise ContractError(f"{type(self).__name__} has no prerequisite stage to load")

    def optimizer(self, train) -> torch.optim.Optimizer:
        """The optimiser over the trainable parameters (its param groups); the runner sets every group's lr from
        the schedule before each step. Default: Adam with torch's defaults, as the authors."""
        return torch.optim.Adam(trainable_parameters(self), lr=0.0)

    def clip_gradients(self, train) -> torch.Tensor:
        """Clip the (unscaled) gradients; returns the total norm before clipping. Default: `train.grad_clip` on the
        `train.grad_clip_norm_type` norm (L2 for the authors' methods, infinity for SPOT)."""
        return nn.utils.clip_grad_norm_(trainable_parameters(self), train.grad_clip,
                                        norm_type=train.grad_clip_norm_type)

    def before_step(self, step: int, total: int) -> None:
        """Called before every optimiser step with the 0-based step: per-step schedules, teacher/EMA updates."""

    @contextlib.contextmanager
    def masks_only(self):
        """Within the block the caller reads only `slots` and `masks` (the evaluator): a model may skip what feeds
        nothing else (losses, reconstructions); masks must stay bit-identical. Default: the full forward."""
        yield
