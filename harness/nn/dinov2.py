"""DINOv2 ViT through HF transformers, exposing the authors' timm checkpoint layout (docs/reference.md#shared-encoder-and-slot-attention, docs/reference.md#checkpoints).

The authors built DINOv2 with timm (`vit_small_patch14_reg4_dinov2` for DIAS, `vit_small_patch14_dinov2` for the
VVO baselines) and their checkpoints store its parameters under timm names. We compute with transformers'
`Dinov2WithRegistersModel` / `Dinov2Model` and translate names in `state_dict()` / `load_state_dict()` hooks, so a
released `.pth` loads strictly and our checkpoints are interchangeable with theirs.

The mapping (verified numerically against timm, docs/reference.md#shared-encoder-and-slot-attention): `cls_token`, `reg_token`, `pos_embed`,
`patch_embed.proj.*`, `blocks.i.{norm1, attn.qkv, attn.proj, ls1.gamma, norm2, mlp.fc1, mlp.fc2, ls2.gamma}.*`,
`norm.*` ↔ `embeddings.{cls_token, register_tokens, position_embeddings, patch_embeddings.projection.*}`,
`encoder.layer.i.{norm1, attention.{q,k,v}_proj (qkv split in thirds), attention.o_proj, layer_scale1.lambda1, norm2,
mlp.fc1, mlp.fc2, layer_scale2.lambda1}.*`, `layernorm.*` (transformers 4.x: `attention.attention.{query,key,value}`,
`attention.output.dense`). timm's register variant has no class position embedding: HF's row 0 of
`position_embeddings` is held at zero and, if it ever is not, folded into `cls_token` on export (HF adds it to the
class token only). HF's `embeddings.mask_token` has no timm counterpart and is neither saved nor touched on load.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from harness.errors import HarnessError

# Hugging Face ids of the weights the authors used through timm (ViT-S/14, LVD-142M).
DINOV2_SMALL_REG4 = "facebook/dinov2-with-registers-small"
DINOV2_SMALL = "facebook/dinov2-small"

_HF = "hf."  # attribute of DinoV2Backbone holding the transformers model


class PretrainedWeightsError(HarnessError):
    """Pretrained DINOv2 weights could not be loaded or do not fit the requested spec."""


@dataclass
class DinoV2Spec:
    """Architecture of the ViT. Defaults: ViT-S/14 at 224² with 4 registers (DIAS); registers=0 for the baselines.

    `init_std` (HF's initializer_range) and `sincos_pos_std` only matter for random, never-loaded weights, i.e.
    the tiny frozen backbones of the CPU configs. `init_std` sets their feature scale. `sincos_pos_std` > 0 replaces
    HF's i.i.d. normal patch position rows by a fixed 2D sin-cos table (`sincos_position_table`) of that std: a
    trained DINOv2's position embedding is smooth, so its features say where a patch is, while i.i.d. rows
    average to nothing over an object — DINOSAUR's slots then never learn where their object is and its decoder
    alpha stays uniform (docs/experiments.md#2026-11-24-dinosaur-and-the-position-table).
    """

    hidden: int = 384
    layers: int = 12
    heads: int = 6
    mlp_ratio: int = 4
    patch: int = 14
    image_size: int = 224
    registers: int = 4
    layerscale_init: float = 1.0
    layer_norm_eps: float = 1e-6
    init_std: float = 0.02
    sincos_pos_std: float = 0.0

    @property
    def grid(self) -> int:
        """Tokens per side: image_size / patch."""
        return self.image_size // self.patch

    def forward_flops(self) -> int:
        """FLOPs (2 per multiply-add) of one image's forward: the patch embedding, 2·tokens·(weights of the
        qkv, proj, fc1, fc2 layers) and the attention products QKᵀ and A·V (2·tokens²·hidden each) per block.
        Biases, norms, GELU and softmax are left out (under 1 % at ViT-S)."""
        tokens = 1 + self.registers + self.grid**2
        block_weights = (4 + 2 * self.mlp_ratio) * self.hidden**2
        block = 2 * tokens * block_weights + 2 * 2 * tokens**2 * self.hidden
        patch_embed = 2 * self.grid**2 * 3 * self.patch**2 * self.hidden
        return patch_embed + self.layers * block


def sincos_position_table(grid: int, dim: int, temperature: float = 100.0) -> torch.Tensor:
    """(grid², dim) row-major 2D sin-cos position table (MAE's layout: sin x, cos x, sin y, cos y, dim/4 frequencies
    each), scaled to unit std. Temperature 100 rather than MAE's 10000 so that, at the CPU configs' 64 channels, the
    frequencies span the 16-token grid instead of leaving most channels nearly constant."""
    if dim % 4:
        raise ValueError(f"sin-cos position table needs a channel count divisible by 4, got {dim}")
    quarter = dim // 4
    omega = temperature ** (-torch.arange(quarter, dtype=torch.float64) / quarter)
    y, x = torch.meshgrid(torch.arange(grid, dtype=torch.float64), torch.arange(grid, dtype=torch.float64),
                          indexing="ij")
    x, y = x.flatten()[:, None] * omega, y.flatten()[:, None] * omega
    table = torch.cat([x.sin(), x.cos(), y.sin(), y.cos()], 1)
    return (table / table.std()).float()


def _hf_config(spec: DinoV2Spec):
    from transformers import Dinov2Config, Dinov2WithRegistersConfig

    common = dict(
        hidden_size=spec.hidden, num_hidden_layers=spec.layers, num_attention_heads=spec.heads,
        mlp_ratio=spec.mlp_ratio, patch_size=spec.patch, image_size=spec.image_size,
        layerscale_value=spec.layerscale_init, layer_norm_eps=spec.layer_norm_eps, initializer_range=spec.init_std,
        hidden_act="gelu",
        qkv_bias=True, use_swiglu_ffn=False, drop_path_rate=0.0,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    if spec.registers:
        return Dinov2WithRegistersConfig(num_register_tokens=spec.registers, **common)
    return Dinov2Config(use_mask_token=False, **common)


def _hf_model_class(spec: DinoV2Spec):
    from transformers import Dinov2Model, Dinov2WithRegistersModel

    return Dinov2WithRegistersModel if spec.registers else Dinov2Model


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


def _key_table(layers: int, attention: tuple[str, str, str, str], registers: int,
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


def _to_timm(hf: dict[str, torch.Tensor], table, registers: int) -> dict[str, torch.Tensor]:
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


def _from_timm(name: str, value: torch.Tensor, sources: tuple[str, ...], registers: int) -> dict[str, torch.Tensor]:
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


class DinoV2Backbone(nn.Module):
    """(b, 3, S, S) float → (b, hidden, S/p, S/p) patch features (prefix tokens dropped, row-major).

    norm_out=False returns the features before the final LayerNorm, which then does not exist (no `norm.*` keys,
    as the authors' DIAS); norm_out=True after it (the VVO baselines). `pretrained`: an HF model id or local
    directory loaded with `from_pretrained` (the position table resampled to `spec.image_size` like timm does);
    None builds random weights, e.g. to load a full checkpoint.
    """

    def __init__(self, spec: DinoV2Spec, norm_out: bool, pretrained: str | None = None):
        super().__init__()
        self.spec, self.norm_out = spec, norm_out
        self.hf = _hf_model_class(spec)(_hf_config(spec))
        if not norm_out:
            self.hf.layernorm = nn.Identity()
        with torch.no_grad():
            position = self.hf.embeddings.position_embeddings
            if spec.sincos_pos_std:
                position[0, 1:] = sincos_position_table(spec.grid, spec.hidden) * spec.sincos_pos_std
            if spec.registers:
                position[:, 0].zero_()
        self._table = _key_table(spec.layers, hf_attention_names(self.hf.encoder.layer[0]), spec.registers,
                                 norm_out)
        self.register_state_dict_post_hook(_export_timm_names)
        self.register_load_state_dict_pre_hook(_import_timm_names)
        if pretrained is not None:
            self.load_pretrained(pretrained)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        b, _, h, w = images.shape
        if h != self.spec.image_size or w != self.spec.image_size:
            raise ValueError(f"DINOv2 expects {self.spec.image_size}² inputs (timm's fixed img_size), got {h}×{w}")
        tokens = self.hf(pixel_values=images).last_hidden_state
        patches = tokens[:, 1 + self.spec.registers:]
        g = self.spec.grid
        return patches.transpose(1, 2).reshape(b, self.spec.hidden, g, g)

    def _hf_tensors(self) -> dict[str, torch.Tensor]:
        return self.hf.state_dict(keep_vars=True)

    def load_pretrained(self, source: str) -> None:
        """Load HF weights (`from_pretrained`: a hub id, found offline in the local HF cache, or a directory)."""
        try:
            pretrained = _hf_model_class(self.spec).from_pretrained(source)
        except (OSError, ValueError) as e:
            raise PretrainedWeightsError(f"cannot load DINOv2 weights from {source!r}: {e}") from None
        _check_pretrained_config(pretrained.config, self.spec, source)
        table = _key_table(self.spec.layers, hf_attention_names(pretrained.encoder.layer[0]), self.spec.registers,
                           norm_out=True)
        with torch.no_grad():
            timm = _to_timm(pretrained.state_dict(), table, self.spec.registers)
            timm = {k: v.detach().clone() for k, v in timm.items()
                    if self.norm_out or not k.startswith("norm.")}
        timm["pos_embed"] = resample_pos_embed(timm["pos_embed"], self.spec.grid,
                                               prefix_rows=0 if self.spec.registers else 1)
        self.load_state_dict(timm, strict=True)

    def extra_repr(self) -> str:
        return f"{self.spec}, norm_out={self.norm_out}"


def _check_pretrained_config(config, spec: DinoV2Spec, source: str) -> None:
    want = {"hidden_size": spec.hidden, "num_hidden_layers": spec.layers, "num_attention_heads": spec.heads,
            "mlp_ratio": spec.mlp_ratio, "patch_size": spec.patch, "layer_norm_eps": spec.layer_norm_eps,
            "num_register_tokens": spec.registers, "use_swiglu_ffn": False, "qkv_bias": True}
    got = {k: getattr(config, k, 0 if k == "num_register_tokens" else None) for k in want}
    bad = [f"{k}={got[k]!r} (spec wants {v!r})" for k, v in want.items() if got[k] != v]
    if bad:
        raise PretrainedWeightsError(f"pretrained DINOv2 {source!r} does not match the spec: {', '.join(bad)}")


def _export_timm_names(module: DinoV2Backbone, state_dict, prefix: str, local_metadata) -> None:
    """state_dict post-hook: replace the HF-named entries of this module by timm-named ones (timm order)."""
    hf = {k[len(prefix) + len(_HF):]: state_dict.pop(k) for k in list(state_dict) if k.startswith(prefix + _HF)}
    for name, value in _to_timm(hf, module._table, module.spec.registers).items():
        state_dict[prefix + name] = value


def _import_timm_names(module: DinoV2Backbone, state_dict, prefix, local_metadata, strict, missing_keys,
                       unexpected_keys, error_msgs) -> None:
    """load_state_dict pre-hook: translate timm-named entries into HF names, reporting problems under timm names.

    HF-named entries are rejected (unexpected): the layout on disk is timm's. A missing or mis-shaped timm entry
    is reported by its timm name and its HF targets are refilled with their current values, so the HF submodules
    add no second report; unknown timm-like names stay in place and surface as unexpected keys.
    """
    for key in [k for k in state_dict if k.startswith(prefix + _HF)]:
        state_dict.pop(key)
        unexpected_keys.append(key)
    current = module._hf_tensors()
    with torch.no_grad():
        expected = {k: v.shape for k, v in _to_timm(current, module._table, module.spec.registers).items()}
    for name, sources in module._table:
        key = prefix + name
        if key not in state_dict:
            missing_keys.append(key)
            converted = {s: current[s].detach().clone() for s in sources}
        else:
            value = state_dict.pop(key)
            if value.shape != expected[name]:
                error_msgs.append(f"size mismatch for {key}: copying a param with shape {tuple(value.shape)} from "
                                  f"checkpoint, the shape in current model is {tuple(expected[name])}.")
                converted = {s: current[s].detach().clone() for s in sources}
            else:
                converted = _from_timm(name, value, sources, module.spec.registers)
        for s, v in converted.items():
            state_dict[prefix + _HF + s] = v
    for name, value in current.items():  # HF-only tensors (mask_token): keep as they are
        if prefix + _HF + name not in state_dict:
            state_dict[prefix + _HF + name] = value.detach().clone()


class Interpolate(nn.Module):
    """Resize by a scale factor (the authors' `Interpolate`: 256 → 224 bicubic before DINOv2; align_corners=False)."""

    def __init__(self, scale_factor: float, mode: str = "bicubic"):
        super().__init__()
        self.scale_factor, self.mode = scale_factor, mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.scale_factor, mode=self.mode, align_corners=False)

    def extra_repr(self) -> str:
        return f"scale_factor={self.scale_factor}, mode={self.mode}"


def make_encoder(spec: DinoV2Spec, norm_out: bool, scale: float = 0.875,
                 pretrained: str | None = None) -> nn.Sequential:
    """Sequential(Interpolate(scale), DinoV2Backbone): checkpoint keys `encode_backbone.1.*` as the authors'."""
    return nn.Sequential(Interpolate(scale), DinoV2Backbone(spec, norm_out, pretrained))
