"""Slot Attention with the authors' inverted attention (docs/reference.md#shared-encoder-and-slot-attention).

Per iteration: q ← proj_q(norm1q(slots)); logits = (q·D^-½) kᵀ; a0 = softmax over *slots*;
a = a0 / (Σ_tokens a0 + 1e-5); updates = a v; slots ← GRU(updates, slots); slots ← slots + ffn(norm2(slots)).
The reported attention is a0 (before the renormalisation over tokens), which is what the authors segment.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.nn.mlp import MLP


def inverted_attention(q, k, v, smask=None, eps: float = 1e-5):
    """Returns (updates (b,n,c), a0 (b,n,m)). smask (b,n) bool: False slots get −inf logits (dropped slots)."""
    logits = torch.einsum("bqc,bkc->bqk", q * q.size(2) ** -0.5, k)
    if smask is not None:
        logits = logits.where(smask[:, :, None], -torch.inf)
    a0 = logits.softmax(1)
    a = a0 / (a0.sum(2, keepdim=True) + eps)
    return torch.einsum("bqv,bvc->bqc", a, v), a0


class SlotAttention(nn.Module):
    """Parameter names and order are the checkpoint format (norm1q, proj_q, norm1kv, proj_k, proj_v, rnn, norm2, ffn).

    trunc_bp="bi-level" (BO-QSA): the last iteration's input is `slots.detach() + init − init.detach()`, so
    gradients reach the initialiser but not through earlier iterations.
    forward returns (slots, [a0 of every iteration]); a plain SA user takes the last map.
    """

    def __init__(self, num_iter: int, embed_dim: int, ffn_dim: int, dropout: float = 0.0,
                 kv_dim: int | None = None, trunc_bp: str | None = None):
        super().__init__()
        if trunc_bp not in (None, "bi-level"):
            raise ValueError(f"trunc_bp must be None or 'bi-level', got {trunc_bp!r}")
        kv_dim = kv_dim or embed_dim
        self.num_iter, self.trunc_bp = num_iter, trunc_bp
        self.norm1q = nn.LayerNorm(embed_dim)
        self.proj_q = nn.Linear(embed_dim, embed_dim, bias=False)
        self.norm1kv = nn.LayerNorm(kv_dim)
        self.proj_k = nn.Linear(kv_dim, embed_dim, bias=False)
        self.proj_v = nn.Linear(kv_dim, embed_dim, bias=False)
        self.rnn = nn.GRUCell(embed_dim, embed_dim)
        self.norm2 = nn.LayerNorm(embed_dim)
        self.ffn = MLP(embed_dim, [ffn_dim, embed_dim], None, dropout)

    def forward(self, inputs: torch.Tensor, init: torch.Tensor, smask: torch.Tensor | None = None,
                num_iter: int | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """inputs (b, m, kv_dim), init (b, n, d) → slots (b, n, d), [a0 (b, n, m)] × iterations."""
        b, n, _ = init.shape
        kv = self.norm1kv(inputs)
        k, v = self.proj_k(kv), self.proj_v(kv)
        iters = num_iter or self.num_iter
        slots, maps = init, []
        for i in range(iters):
            if i + 1 == iters and self.trunc_bp == "bi-level":
                slots = slots.detach() + init - init.detach()
            prev = slots
            updates, a0 = inverted_attention(self.proj_q(self.norm1q(slots)), k, v, smask)
            slots = self.rnn(updates.flatten(0, 1), prev.flatten(0, 1)).view(b, n, -1)
            slots = slots + self.ffn(self.norm2(slots))
            maps.append(a0)
        return slots, maps


def zero_biases(*modules: nn.Module) -> None:
    """The authors' `reset_parameters`: zero every Linear/Conv2d/GRUCell bias; other inits stay PyTorch defaults."""
    for module in modules:
        for m in module.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)) and m.bias is not None:
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.GRUCell) and m.bias:
                nn.init.zeros_(m.bias_ih)
                nn.init.zeros_(m.bias_hh)
