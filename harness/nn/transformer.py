"""The slot-conditioned Transformer decoder stack shared by DIAS and SPOT (docs/reference.md#dias,
docs/reference.md#spot).

Both decoders are `nn.TransformerDecoder` (pre-norm, GELU, no biases, dropout 0, no final norm) over DINO tokens
with the slots, projected by Linear + LayerNorm, as memory. Layer 0's first LayerNorm is moved out of the stack as
`norm0` (the authors call it "very beneficial"; same function, other checkpoint key). The segmentation is the last
layer's cross-attention weights averaged over heads, which the authors read with forward hooks; `decode_layers`
runs the same submodules itself and asks that layer for its weights.
"""

from __future__ import annotations

import torch
from torch import nn


def linear_ln(in_dim: int, out_dim: int) -> nn.Sequential:
    """Linear without bias, then LayerNorm (checkpoint keys `0.weight`, `1.weight`, `1.bias`)."""
    return nn.Sequential(nn.Linear(in_dim, out_dim, bias=False), nn.LayerNorm(out_dim))


def pre_norm_decoder(dim: int, num_layers: int, num_heads: int, ffn_dim: int) -> tuple[nn.LayerNorm,
                                                                                       nn.TransformerDecoder]:
    """(norm0, backbone): the decoder stack with layer 0's norm1 taken out (an Identity left in its place)."""
    layer = nn.TransformerDecoderLayer(dim, num_heads, ffn_dim, dropout=0.0, activation="gelu", batch_first=True,
                                       norm_first=True, bias=False)
    backbone = nn.TransformerDecoder(layer, num_layers)
    norm0 = backbone.layers[0].norm1
    backbone.layers[0].norm1 = nn.Identity()
    return norm0, backbone


def decode_layers(backbone: nn.TransformerDecoder, x: torch.Tensor, memory: torch.Tensor,
                  tgt_mask: torch.Tensor | None = None, memory_key_padding_mask: torch.Tensor | None = None,
                  reconstruct: bool = True) -> tuple[torch.Tensor | None, torch.Tensor]:
    """nn.TransformerDecoder's pre-norm forward written out over its submodules, so that the last layer's
    cross-attention returns its head-averaged weights. `tgt_mask` (m, m) bool, True = not attended (SPOT's causal
    mask); `memory_key_padding_mask` (b, n) bool, True = dropped slot. Returns (output (b, m, dim), weights
    (b, m, n)); (None, weights) without `reconstruct`, stopping right after the last cross-attention (its
    feed-forward and the output norm feed only the reconstruction, not the masks)."""
    last = len(backbone.layers) - 1
    for i, layer in enumerate(backbone.layers):
        h = layer.norm1(x)
        x = x + layer.dropout1(layer.self_attn(h, h, h, attn_mask=tgt_mask, key_padding_mask=None,
                                               need_weights=False)[0])
        h, weights = layer.multihead_attn(layer.norm2(x), memory, memory, attn_mask=None,
                                          key_padding_mask=memory_key_padding_mask, need_weights=i == last)
        if i == last and not reconstruct:
            return None, weights
        x = x + layer.dropout2(h)
        h = layer.linear2(layer.dropout(layer.activation(layer.linear1(layer.norm3(x)))))
        x = x + layer.dropout3(h)
    if backbone.norm is not None:
        x = backbone.norm(x)
    return x, weights
