"""DIAS's decoder: a Transformer decoder over randomly permuted, partly masked DINO tokens (docs/reference.md#dias).

The authors' `ARRandTransformerDecoder`. Training: each sample's m tokens are put in a random order, the first
`keep` of that order stay visible and the rest become the learnt `mask_token`; positional embeddings travel with
their tokens; one non-causal pass over the slots (memory) predicts every token; outputs and attention are put
back in the original order. Evaluation: no permutation, no masking (the decoder sees the full target).
The segmentation is the last layer's cross-attention (slots as keys), averaged over heads.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.nn.posembed import LearntPositionalEmbedding
from harness.nn.transformer import decode_layers, linear_ln, pre_norm_decoder

# The authors' second keep count, `int(256 * 0.1) - 1`, hard-coded for 256 tokens and used as is for any m.
FIXED_KEEP = int(256 * 0.1) - 1


def sample_keep_counts(b: int, m: int, p: float = 0.5, device=None) -> torch.Tensor:
    """(b, 1) visible-token counts: uniform in [0, m−2] with probability p, else FIXED_KEEP (= 24)."""
    uniform = torch.randint(0, m - 1, (b, 1), device=device)
    fixed = torch.full((b, 1), FIXED_KEEP, dtype=torch.long, device=device)
    return torch.where(torch.rand(b, 1, device=device) < p, uniform, fixed)


def random_orders(b: int, m: int, device=None) -> torch.Tensor:
    """(b, m) one uniformly random permutation of range(m) per sample."""
    return torch.rand(b, m, device=device).argsort(1)


def _gather_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x (b, m, c), index (b, m) → x[i, index[i]]."""
    return x.gather(1, index[:, :, None].expand(-1, -1, x.shape[2]))


class RandomOrderDecoder(nn.Module):
    """Parameter names are the checkpoint format: mask_token, posit_embed._pe, project1, project2, norm0,
    backbone.layers.i (harness.nn.transformer: pre-norm, no biases; layer 0's norm1 moved out as norm0)."""

    def __init__(self, dim: int, slot_dim: int, num_tokens: int, num_layers: int, num_heads: int, ffn_dim: int,
                 p_uniform_keep: float = 0.5):
        super().__init__()
        self.num_tokens, self.p_uniform_keep = num_tokens, p_uniform_keep
        self.mask_token = nn.Parameter(torch.randn(1, 1, dim) * dim**-0.5)
        self.posit_embed = LearntPositionalEmbedding([num_tokens], dim, param_name="_pe")
        self.project1 = linear_ln(dim, dim)
        self.project2 = linear_ln(slot_dim, dim)
        self.norm0, self.backbone = pre_norm_decoder(dim, num_layers, num_heads, ffn_dim)
        self.readout = nn.Identity()

    def forward(self, features: torch.Tensor, slots: torch.Tensor, smask: torch.Tensor | None = None,
                reconstruct: bool = True):
        """features (b, m, dim) target tokens, slots (b, n, slot_dim), smask (b, n) bool (False = dropped slot)
        → recon (b, m, dim), attention (b, n, m) of the last layer's cross-attention (sums to 1 over slots).
        `reconstruct=False` (evaluation of masks): recon is None and the last layer stops at its attention weights,
        skipping its feed-forward and the output norm, which feed only the reconstruction."""
        b, m, _ = features.shape
        if m != self.num_tokens:
            raise ValueError(f"decoder was built for {self.num_tokens} tokens, got {m}")
        tokens = self.project1(features)
        pe = self.posit_embed.table[:, :m].expand(b, -1, -1)
        if self.training:
            order = random_orders(b, m, features.device)
            visible = torch.arange(m, device=features.device)[None] < sample_keep_counts(
                b, m, self.p_uniform_keep, features.device)
            tokens = _gather_rows(tokens, order).where(visible[:, :, None], self.mask_token.expand(b, m, -1))
            query = tokens + _gather_rows(pe, order)
        else:
            query = tokens + pe
        out, attention = self.decode_layers(self.norm0(query), self.project2(slots),
                                            None if smask is None else ~smask, reconstruct)
        if not reconstruct:
            if self.training:
                attention = _gather_rows(attention, order.argsort(1))
            return None, attention.transpose(1, 2)
        recon = self.readout(out)
        if self.training:
            inverse = order.argsort(1)
            recon, attention = _gather_rows(recon, inverse), _gather_rows(attention, inverse)
        return recon, attention.transpose(1, 2)

    def decode_layers(self, x: torch.Tensor, memory: torch.Tensor, memory_key_padding_mask=None,
                      reconstruct: bool = True):
        """The stack without a target mask (harness.nn.transformer.decode_layers): (output (b, m, dim), weights
        (b, m, n)) of the last layer's cross-attention; (None, weights) without `reconstruct`."""
        return decode_layers(self.backbone, x, memory, memory_key_padding_mask=memory_key_padding_mask,
                             reconstruct=reconstruct)
