"""The optimiser step — the one every trainer takes: training (harness.run.train), `bench`, the GPU check and the
recognition probe (harness.run.probe) all build a `Stepper` and call it, so what is timed, checked or probed is the step
training takes (docs/reference.md#training-loop-and-seeding).

Read top to bottom, one call: the learning rate of the 0-based step from the schedule (the authors' CbLinearCosine),
the model's per-step hook (`before_step`: loss-weight ramps, detach flags, teacher updates), the forward under the
run's precision, the loss terms weighted by their schedules (the authors' CbCosine), a finite check, the scaled
backward, unscale, the model's own clip (`clip_gradients`: L2 or the infinity norm), the optimiser step, the scaler's
update. A module that is not a `SlotModel` (the probe's MLP) gets Adam over its trainable parameters, no hook and no
clip, as the authors' probe.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from harness.compute import forward_precision
from harness.contract import SlotModel, trainable_parameters
from harness.errors import HarnessError
from harness.run.evaluate import at_least_float32
from harness.run.schedules import learning_rate, loss_weights


class NonFiniteLoss(HarnessError):
    pass


class Stepper:
    """What one optimiser step of `model` needs, built once: its optimiser (`model.optimizer(schedule)`; every group's
    lr is set from the schedule before each step), the AMP scaler (fp16 on CUDA only, as the authors), the clip and
    the hook. `schedule`: a TrainConfig (or any config with steps, lr, warmup_steps, lr_final_ratio, loss_weights)."""

    def __init__(self, model: nn.Module, schedule, device: torch.device, amp: str):
        self.model, self.schedule, self.device, self.amp = model, schedule, torch.device(device), amp
        slot_model = isinstance(model, SlotModel)
        self.optimizer = (model.optimizer(schedule) if slot_model
                          else torch.optim.Adam(trainable_parameters(model), lr=0.0))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=amp == "fp16" and self.device.type == "cuda")
        self.clip = (lambda: model.clip_gradients(schedule)) if slot_model else None
        self.before_step = model.before_step if slot_model else None

    def __call__(self, step: int, forward: Callable[[], dict[str, torch.Tensor]], *, scale: float = 1.0,
                 average: Callable[[dict], dict] = dict) -> dict:
        """Take optimiser step `step` (0-based) on the loss terms `forward()` returns (unweighted, by name). `scale`
        multiplies this process's loss (its share of a data-parallel global batch); `average` turns this process's
        terms into the global batch's for the record (harness.run.distributed). Returns what the log records, as
        tensors (read only when logged): lr, loss, every term, its weight `w_<name>`, the unscaled gradient norm."""
        lr = learning_rate(step, self.schedule)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.before_step is not None:
            self.before_step(step, self.schedule.steps)
        with forward_precision(self.device, self.amp):
            terms = {name: at_least_float32(value) for name, value in forward().items()}
        weights = loss_weights(step, self.schedule, terms)
        batch_terms = average({name: value * scale for name, value in terms.items()})  # global means
        for name, value in batch_terms.items():
            if not torch.isfinite(value):
                raise NonFiniteLoss(f"step {step}: loss term {name!r} is {value.item()}")
        loss = sum(weights[name] * value for name, value in terms.items()) * scale

        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        grad_norm = self.clip() if self.clip is not None else None
        if grad_norm is not None and not self.scaler.is_enabled() and not torch.isfinite(grad_norm):
            raise NonFiniteLoss(f"step {step}: the gradient norm is {grad_norm.item()}")
        self.scaler.step(self.optimizer)
        self.scaler.update()
        result = {"lr": lr, "loss": sum(weights[name] * value for name, value in batch_terms.items()), **batch_terms,
                  **{f"w_{name}": weight for name, weight in weights.items()}}
        return result if grad_norm is None else {**result, "grad_norm": grad_norm}

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
