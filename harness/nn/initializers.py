"""Slot initialisers: where the first slots come from (docs/reference.md#dias, docs/reference.md#dinosaur)."""

from __future__ import annotations

import torch
from torch import nn

NOISE_MODES = ("sample", "mean")


class NormalShared(nn.Module):
    """One Gaussian shared by all slots: slots = mean + ε·exp(logstd), params (1, 1, dim), both xavier-uniform.

    The authors sample ε in training *and* evaluation (no `self.training` check), so their evaluation is
    stochastic. `eval_noise="sample"` keeps that (faithful; the evaluator seeds the generator so results
    repeat), `"mean"` uses ε = 0 at evaluation.
    """

    def __init__(self, num: int, dim: int, eval_noise: str = "sample"):
        super().__init__()
        if eval_noise not in NOISE_MODES:
            raise ValueError(f"eval_noise must be one of {NOISE_MODES}, got {eval_noise!r}")
        self.num, self.dim, self.eval_noise = num, dim, eval_noise
        self.mean = nn.Parameter(torch.empty(1, 1, dim))
        self.logstd = nn.Parameter(torch.empty(1, 1, dim))
        nn.init.xavier_uniform_(self.mean)
        nn.init.xavier_uniform_(self.logstd)

    def forward(self, b: int, n: int | None = None) -> torch.Tensor:
        mean = self.mean.expand(b, n or self.num, -1)
        if not self.training and self.eval_noise == "mean":
            return mean
        return mean + torch.randn_like(mean) * self.logstd.exp()

    def extra_repr(self) -> str:
        return f"num={self.num}, dim={self.dim}, eval_noise={self.eval_noise}"


class NormalSeparate(nn.Module):
    """One Gaussian per slot: params (1, n, dim); mean xavier-uniform, logstd = log(dim^-½); noise only in training."""

    def __init__(self, num: int, dim: int):
        super().__init__()
        self.num, self.dim = num, dim
        self.mean = nn.Parameter(torch.empty(1, num, dim))
        self.logstd = nn.Parameter((torch.ones(1, num, dim) * dim**-0.5).log())
        nn.init.xavier_uniform_(self.mean[0])

    def forward(self, b: int) -> torch.Tensor:
        mean = self.mean.expand(b, -1, -1)
        if self.training:
            return mean + torch.randn_like(mean) * self.logstd.exp()
        return mean

    def extra_repr(self) -> str:
        return f"num={self.num}, dim={self.dim}"
