"""Learnt positional embedding (channel-last), as the authors' `LearntPositionalEmbedding`."""

from __future__ import annotations

import torch
from torch import nn


class LearntPositionalEmbedding(nn.Module):
    """A (1, *resolution, dim) table initialised with trunc_normal(std=1), added to channel-last input.

    `param_name` is part of the checkpoint format: DIAS stores it as `_pe`, the VVO baselines as `pe`.
    """

    def __init__(self, resolution: list[int], dim: int, param_name: str = "pe"):
        super().__init__()
        if param_name not in ("pe", "_pe"):
            raise ValueError(f"param_name must be 'pe' or '_pe', got {param_name!r}")
        self.resolution = list(resolution)
        self.param_name = param_name
        table = nn.Parameter(torch.zeros(1, *resolution, dim))
        nn.init.trunc_normal_(table)
        self.register_parameter(param_name, table)

    @property
    def table(self) -> torch.Tensor:
        return getattr(self, self.param_name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (b, *r, c) with each r ≤ the table's resolution."""
        index = (slice(None),) + tuple(slice(0, s) for s in x.shape[1:-1]) + (slice(None),)
        return x + self.table[index]

    def extra_repr(self) -> str:
        return f"{self.resolution}, {self.table.shape[-1]}, param={self.param_name}"
