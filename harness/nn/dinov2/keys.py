"""The authors' timm names of a DINOv2's tensors ↔ transformers' (docs/reference.md#shared-encoder-and-slot-attention,
docs/reference.md#checkpoints): the key table, the conversions both ways, and timm's resampling of the position table.

The mapping (verified numerically against timm): `cls_token`, `reg_token`, `pos_embed`, `patch_embed.proj.*`,
`blocks.i.{norm1, attn.qkv, attn.proj, ls1.gamma, norm2, mlp.fc1, mlp.fc2, ls2.gamma}.*`, `norm.*` ↔
`embeddings.{cls_token, register_tokens, position_embeddings, patch_embeddings.projection.*}`, `encoder.layer.i.{norm1,
attention.{q,k,v}_proj (qkv split in thirds), attention.o_proj, layer_scale1.lambda1, norm2, mlp.fc1, mlp.fc2,
layer_scale2.lambda1}.*`, `layernorm.*` (transformers 4.x: `attention.attention.{query,key,value}`,
`attention.output.dense`). timm's register variant has no class position embedding: HF's row 0 of
`position_embeddings` is held at zero and, if it ever is not, folded into `cls_token` on export (HF adds it to the
class token only). HF's `embeddings.mask_token` has no timm counterpart.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def hf_attention_names(layer: nn.Module) -> tuple[str, str, str, str]:
    """Names (relative to one HF encoder layer) of the q, k, v and output projections.

    transformers ≥ 5 names them `attention.{q,k,v,o}_proj`; 4.x `attention.attention.{query,key,value}` and
    `attention.output.dense`. Detected from the module's attributes, not from the version string.
    """
    attn = getattr(layer, "attention", None)
    if all(hasattr(attn, n) for n in ("q_proj", "k_proj", "v_proj", "o_proj")):
        return ("attention.q_proj", "attention.k_proj", "attention.v_proj", "attention.o_proj")
    inner, output = getattr(attn, "attention", None), getattr(attn, "output", None)
    if inner is not None and output is not None and all(hasattr(inner, n) for n in ("query", "key", "value")):
        return ("attention.attention.query", "attention.attention.key", "attention.attention.value",
                "attention.output.dense")
    raise TypeError(f"unrecognised transformers DINOv2 attention layout in {type(layer).__name__}")


def key_table(layers: int, attention: tuple[str, str, str, str], registers: int,
               norm_out: bool) -> list[tuple[str, tuple[str, ...]]]:
    """(timm name, HF names) in timm's state_dict order. Three HF names = concatenated along dim 0 (qkv)."""
    q, k, v, o = attention
    table = [("cls_token", ("embeddings.cls_token",))]
    if registers:
        table.append(("reg_token", ("embeddings.register_tokens",)))
    table.append(("pos_embed", ("embeddings.position_embeddings",)))
    for p in ("weight", "bias"):
        table.append((f"patch_embed.proj.{p}", (f"embeddings.patch_embeddings.projection.{p}",)))
    for i in range(layers):
        t, h = f"blocks.{i}.", f"encoder.layer.{i}."
        table += [(f"{t}norm1.{p}", (f"{h}norm1.{p}",)) for p in ("weight", "bias")]
        table += [(f"{t}attn.qkv.{p}", (f"{h}{q}.{p}", f"{h}{k}.{p}", f"{h}{v}.{p}")) for p in ("weight", "bias")]
        table += [(f"{t}attn.proj.{p}", (f"{h}{o}.{p}",)) for p in ("weight", "bias")]
        table.append((f"{t}ls1.gamma", (f"{h}layer_scale1.lambda1",)))
        table += [(f"{t}norm2.{p}", (f"{h}norm2.{p}",)) for p in ("weight", "bias")]
        table += [(f"{t}mlp.{fc}.{p}", (f"{h}mlp.{fc}.{p}",)) for fc in ("fc1", "fc2") for p in ("weight", "bias")]
        table.append((f"{t}ls2.gamma", (f"{h}layer_scale2.lambda1",)))
    if norm_out:
        table += [(f"norm.{p}", (f"layernorm.{p}",)) for p in ("weight", "bias")]
    return table


def to_timm(hf: dict[str, torch.Tensor], table, registers: int) -> dict[str, torch.Tensor]:
    """HF-named tensors → timm-named tensors (timm order)."""
    out = {}
    for name, sources in table:
        if name == "cls_token" and registers:
            out[name] = hf[sources[0]] + hf["embeddings.position_embeddings"][:, :1]
        elif name == "pos_embed" and registers:
            out[name] = hf[sources[0]][:, 1:]
        elif len(sources) == 3:
            out[name] = torch.cat([hf[s] for s in sources], 0)
        else:
            out[name] = hf[sources[0]]
    return out


def from_timm(name: str, value: torch.Tensor, sources: tuple[str, ...], registers: int) -> dict[str, torch.Tensor]:
    """One timm-named tensor → its HF-named tensor(s)."""
    if name == "pos_embed" and registers:
        return {sources[0]: torch.cat([value.new_zeros(value.shape[0], 1, value.shape[2]), value], 1)}
    if len(sources) == 3:
        return dict(zip(sources, value.chunk(3, 0)))
    return {sources[0]: value}


def resample_pos_embed(pos: torch.Tensor, grid: int, prefix_rows: int) -> torch.Tensor:
    """Resize a square (1, prefix + g², c) position table to grid² patches, as timm does when it loads
    pretrained weights at another image size: bicubic, antialias, align_corners=False, in float32."""
    prefix, patches = pos[:, :prefix_rows], pos[:, prefix_rows:]
    side = round(patches.shape[1] ** 0.5)
    if side * side != patches.shape[1]:
        raise ValueError(f"position table of {patches.shape[1]} patches is not square")
    if side == grid:
        return pos
    c = patches.shape[2]
    img = patches.float().reshape(1, side, side, c).permute(0, 3, 1, 2)
    img = F.interpolate(img, size=(grid, grid), mode="bicubic", antialias=True, align_corners=False)
    patches = img.permute(0, 2, 3, 1).reshape(1, grid * grid, c).to(pos.dtype)
    return torch.cat([prefix, patches], 1)


def hf_timm_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A transformers DINOv2 model's weights in the timm layout (final LayerNorm included), detached copies."""
    registers = getattr(model.config, "num_register_tokens", 0)
    table = key_table(model.config.num_hidden_layers, hf_attention_names(model.encoder.layer[0]), registers,
                       norm_out=True)
    with torch.no_grad():
        return {k: v.detach().clone() for k, v in to_timm(model.state_dict(), table, registers).items()}
