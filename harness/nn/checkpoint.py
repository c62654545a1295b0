"""Checkpoints in the authors' layout (docs/reference.md#checkpoints): a plain state_dict whose keys all start with
"m.".

The authors trained `ModelWrap(m=model)` and saved `state_dict()`, so every key is "m." + the model's own key.
We save and load exactly that, so their released `.pth` files load strictly into our models and ours into theirs.
Also here: the listing format of tests/reference/keys_*.txt ("key (shape) dtype" per line), the authors'
`ckpt_map` loading (keys matched by order within prefixes, docs/reference.md#quirks, quirk 11) and the sha256 of a
module's state. The harness's own compact files, which name their frozen pretrained backbone instead of storing it,
are written and reassembled by harness.run.weights; `read_weights` here reads full state_dicts only.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
from pathlib import Path

import torch
from torch import nn

from harness.errors import HarnessError
from harness.io import atomic_write_bytes

PREFIX = "m."
# The "format" entry of a compact weights file (harness.run.weights): a dict that is not a plain state_dict.
COMPACT_FORMAT = "harness.compact-weights/1"

Listing = list[tuple[str, tuple[int, ...], str]]


class CheckpointError(HarnessError):
    """A checkpoint could not be read or is not a state_dict in the authors' layout."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint's keys or shapes do not match the model. The message is a summary of at most ten lines (counts
    and the first few names of each kind); the full lists stay on the exception (`missing`, `unexpected`,
    `mismatched`)."""

    SHOWN = 3  # names shown per kind

    def __init__(self, source: str, model: str, missing: Listing, unexpected: Listing,
                 mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]):
        self.source, self.missing, self.unexpected, self.mismatched = source, missing, unexpected, mismatched
        lines = [f"checkpoint {source} does not fit {model}: {len(missing)} missing, {len(unexpected)} unexpected, "
                 f"{len(mismatched)} mis-shaped key(s)"]
        for kind, items in (("missing", [f"{k} {shape}" for k, shape, _ in missing]),
                            ("unexpected", [f"{k} {shape}" for k, shape, _ in unexpected]),
                            ("mis-shaped", [f"{k} checkpoint {got} model {want}" for k, got, want in mismatched])):
            if items:
                more = f" … and {len(items) - self.SHOWN} more" if len(items) > self.SHOWN else ""
                lines.append(f"  {kind}: " + "; ".join(items[:self.SHOWN]) + more)
        super().__init__("\n".join(lines))


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def _dtype(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def checkpoint_state_dict(model: nn.Module, exclude: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """The model's state_dict in the authors' layout: "m."-prefixed, fp32 (floating tensors; a float64 model's stay
    float64, as they were trained), CPU, own storage. Keys starting with a prefix in `exclude` (checkpoint names) are
    left out, uncopied."""
    out = {}
    for key, value in model.state_dict().items():
        if (PREFIX + key).startswith(exclude):
            continue
        value = value.detach().to("cpu")
        if value.is_floating_point():
            value = value.to(torch.promote_types(value.dtype, torch.float32))
        out[PREFIX + key] = value.clone()  # clone: a view must not drag its base's storage into the file
    return out


def weights_bytes(model: nn.Module) -> bytes:
    """The bytes `save_weights` writes for `model` (equal weights ⇒ equal bytes)."""
    buffer = io.BytesIO()
    torch.save(checkpoint_state_dict(model), buffer)
    return buffer.getvalue()


def save_weights(model: nn.Module, path: str | os.PathLike) -> None:
    """Write `checkpoint_state_dict(model)` to `path` atomically (a reader never sees a half-written file).

    Serialised through a buffer: torch.save names the zip's inner folder after the file, so saving to the
    temporary path would make equal weights give different bytes; from a buffer, equal weights ⇒ equal files
    (and equal sha256 in result records)."""
    atomic_write_bytes(path, weights_bytes(model))


def module_sha256(module: nn.Module) -> str:
    """sha256 over the module's state_dict: each entry's name, dtype, shape and bytes, in order."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def is_compact(state) -> bool:
    """Whether a loaded checkpoint is a compact harness weights file (harness.run.weights)."""
    return isinstance(state, dict) and state.get("format") == COMPACT_FORMAT


def read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A full state_dict file (the authors' layout) read with `load_checkpoint_file`; a compact file is refused with
    the way to read it."""
    return plain_state_dict(load_checkpoint_file(path), path)


def plain_state_dict(state, path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """`state` (loaded from `path`) if it is a full state_dict, else the error that says what it is."""
    if is_compact(state):
        raise CheckpointError(f"checkpoint {path} is a compact harness weights file (it names its frozen backbone "
                              "instead of storing it): read it with harness.run.weights.read_full_weights, or write "
                              "a full one with `python -m harness export --authors-layout`")
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise CheckpointError(f"checkpoint {path} is not a plain state_dict (str → tensor)")
    return state


def load_checkpoint_file(path: str | os.PathLike):
    """torch.load(map_location="cpu", weights_only=True) with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" in str(e):  # weights_only refused an object that is not a tensor or a container
            raise CheckpointError(f"checkpoint {path} holds Python objects other than tensors; only plain weights "
                                  "are loaded (weights_only=True)") from None
        raise CheckpointError(f"checkpoint {path} is not a torch checkpoint (neither torch.save's zip format nor a "
                              "legacy pickle)") from None
    except (RuntimeError, EOFError, OSError, ValueError):
        with path.open("rb") as f:
            zipped = f.read(4) == b"PK\x03\x04"  # torch.save's format is a zip archive
        what = "is truncated or corrupt (a torch zip archive that cannot be read)" if zipped else \
            "is not a torch checkpoint (neither torch.save's zip format nor a legacy pickle)"
        raise CheckpointError(f"checkpoint {path} {what}") from None
    return state


def load_weights(model: nn.Module, source: str | os.PathLike | dict, strict: bool = True, described: str | None = None,
                 name: str | None = None):
    """Load an authors'-layout state_dict (a path or an already loaded dict) into `model`.

    Every key is expected as "m." + a key of `model.state_dict()`. A mis-shaped key always fails; with
    strict=True a missing or unexpected key fails too. The error summarises the bad keys with their shapes, names
    the checkpoint as `name` (default: the path) and the model as `described` (e.g. "dias, coco config") or by its
    class. Returns torch's (missing_keys, unexpected_keys) named tuple (in the model's own names).
    """
    name = name or ("<state_dict>" if isinstance(source, dict) else str(source))
    state = source if isinstance(source, dict) else read_weights(source)
    expected = {PREFIX + k: v for k, v in model.state_dict().items()}
    missing = [(k, _shape(v), _dtype(v)) for k, v in expected.items() if k not in state]
    unexpected = [(k, _shape(v), _dtype(v)) for k, v in state.items() if k not in expected]
    mismatched = [(k, _shape(v), _shape(expected[k])) for k, v in state.items()
                  if k in expected and _shape(v) != _shape(expected[k])]
    if mismatched or (strict and (missing or unexpected)):
        raise CheckpointMismatchError(name, described or type(model).__name__, missing, unexpected, mismatched)
    own = {k[len(PREFIX):]: v for k, v in state.items() if k in expected}
    return model.load_state_dict(own, strict=strict)


def state_dict_listing(model: nn.Module, prefix: str = PREFIX) -> Listing:
    """[(key, shape, dtype)] of the model's checkpoint, in state_dict order (the keys_*.txt content)."""
    return [(prefix + k, _shape(v), _dtype(v)) for k, v in model.state_dict().items()]


def format_listing(listing: Listing) -> str:
    """One "key (d0, d1, ...) dtype" line per tensor, Python tuple notation for shapes, as keys_*.txt."""
    return "".join(f"{k} {shape} {dtype}\n" for k, shape, dtype in listing)


_LINE = re.compile(r"^(\S+) \(((?:\d+, )*\d*,?)\) (\w+)$")


def parse_listing(source: str | os.PathLike) -> Listing:
    """Parse a keys_*.txt listing (path); "#" lines are comments. Errors name the file and line."""
    path = Path(source)
    out = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = _LINE.match(line.strip())
        if match is None:
            raise CheckpointError(f"{path}:{number}: not a 'key (shape) dtype' line: {line!r}")
        key, dims, dtype = match.groups()
        out.append((key, tuple(int(d) for d in dims.replace(" ", "").split(",") if d), dtype))
    return out


def _own_names(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip the checkpoint's "m." when every key has it (a file as saved), else take the dict as is."""
    if state_dict and all(k.startswith(PREFIX) for k in state_dict):
        return {k[len(PREFIX):]: v for k, v in state_dict.items()}
    return state_dict


def load_by_prefix_order(model: nn.Module, state_dict: dict[str, torch.Tensor],
                         pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The authors' `ckpt_map` load: for each (target prefix, source prefix) the model keys starting with the
    target prefix receive, in order, the `state_dict` values whose keys start with the source prefix.

    Names after the prefixes are NOT compared, only counts and shapes (their VQ-VAE stage → SLATE/SlotDiffusion
    `mediat`). Prefixes are in the model's own names (no "m."); `state_dict` may be in checkpoint layout
    (every key "m."-prefixed) or in the model's names. The authors only warn when a pair matches nothing; that
    is an error here, as is a count or shape mismatch. Returns the (target, source) key pairs loaded.
    """
    source = _own_names(state_dict)
    current = model.state_dict()
    loaded, problems, update = [], [], {}
    for dst, src in pairs:
        dkeys = [k for k in current if k.startswith(dst)]
        skeys = [k for k in source if k.startswith(src)]
        if not dkeys or len(dkeys) != len(skeys):
            problems.append(f"prefix pair ({dst!r} ← {src!r}): {len(dkeys)} model key(s) vs {len(skeys)} source "
                            f"key(s)")
            continue
        for dk, sk in zip(dkeys, skeys):
            if _shape(current[dk]) != _shape(source[sk]):
                problems.append(f"{dk} {_shape(current[dk])} ← {sk} {_shape(source[sk])}: shapes differ")
            else:
                update[dk] = source[sk]
                loaded.append((dk, sk))
    if problems:
        raise CheckpointError("cannot load by prefix order:\n  " + "\n  ".join(problems))
    # Through load_state_dict (not in-place writes into state_dict() tensors as the authors do): some modules
    # (the DINOv2 backbone) export derived tensors whose storage is not the parameter's.
    model.load_state_dict({**current, **update}, strict=True)
    return loaded
