"""Learning-rate schedule of docs/reference.md#hyper-parameters: linear warm-up from 0 to lr over `warmup_steps`, then
half a cosine to lr·lr_final_ratio at the last step — the authors' CbLinearCosine, indexed by the 0-based step before it
is taken (so the very first step runs at lr = 0, as theirs does)."""

from __future__ import annotations

import math

from harness.config import TrainConfig


def learning_rate(step: int, train: TrainConfig) -> float:
    base, final, warm = train.lr, train.lr * train.lr_final_ratio, train.warmup_steps
    if step <= warm:
        return base / warm * step if warm else base
    span = train.steps - warm
    n = min(step - warm, span)
    return 0.5 * (base - final) * (1 + math.cos(math.pi * n / span)) + final


def loss_weights(step: int, train: TrainConfig, names) -> dict[str, float]:
    """Weight of every loss term at `step` (1.0 unless the config schedules it)."""
    return {name: (train.loss_weights[name](step, train.steps) if name in train.loss_weights else 1.0)
            for name in names}
