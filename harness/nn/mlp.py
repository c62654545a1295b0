"""MLP with optional pre/post LayerNorm, laid out as the authors' `MLP` so checkpoint indices match."""

from __future__ import annotations

from torch import nn


class MLP(nn.Sequential):
    """[LN] → (Linear → GELU [→ Dropout]) × (k−1) → Linear [→ LN].

    The Sequential indices are part of the checkpoint format: `MLP(384, [384, 384], ln="pre")` has
    parameters at 0 (LN), 1 and 3 (Linear); `MLP(256, [1024, 256], dropout=0.01)` at 0 and 3.
    """

    def __init__(self, in_dim: int, dims: list[int], ln: str | None = None, dropout: float = 0.0):
        if ln not in (None, "pre", "post"):
            raise ValueError(f"ln must be None, 'pre' or 'post', got {ln!r}")
        layers: list[nn.Module] = []
        if ln == "pre":
            layers.append(nn.LayerNorm(in_dim))
        c = in_dim
        for i, d in enumerate(dims):
            layers.append(nn.Linear(c, d))
            if i + 1 < len(dims):
                layers.append(nn.GELU())
                if dropout:
                    layers.append(nn.Dropout(dropout))
            c = d
        if ln == "post":
            layers.append(nn.LayerNorm(c))
        super().__init__(*layers)
