"""Configs are plain dataclasses: one per method × dataset, registered by name, overridable by path.

No config language of our own. A config fully determines a run together with the data card and seed;
`config_hash` is what results and checkpoints record so that two numbers are only compared when they
came from the same recipe.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(kw_only=True)
class WeightSchedule:
    """A loss weight as a function of the training step.

    kind "constant": `end` throughout. kind "cosine": the authors' `CbCosine`, from `start` to `end`
    along half a cosine over `steps` steps (default: the whole run), held at `end` afterwards;
    `delay` steps at `start` come first (small CPU runs use it, see the synthetic configs).
    """

    kind: str = "constant"
    start: float = 0.0
    end: float = 1.0
    steps: int | None = None
    delay: int = 0

    def __call__(self, step: int, total: int) -> float:
        if self.kind == "constant":
            return self.end
        if self.kind != "cosine":
            raise ValueError(f"unknown weight schedule kind {self.kind!r}; valid: constant, cosine")
        span = self.steps if self.steps is not None else total - self.delay
        n = min(max(step - self.delay, 0), span)
        return 0.5 * (self.start - self.end) * (1 + math.cos(math.pi * n / max(span, 1))) + self.end


@dataclass(kw_only=True)
class TrainConfig:
    """Adam, linear warm-up then cosine to lr·lr_final_ratio, grad-clip after unscale (docs/reference.md#hyper-parameters,
    docs/reference.md#training-loop-and-seeding); the model's `optimizer` and `clip_gradients` (harness.contract) read
    these fields."""

    steps: int
    batch_size: int
    lr: float
    warmup_steps: int
    lr_final_ratio: float = 1e-3
    grad_clip: float = 1.0
    grad_clip_norm_type: float = 2.0  # the norm clipped: 2 (L2, the authors' DIAS) or inf (SPOT)
    val_interval: int
    save_since: int
    # Full training state (model, optimiser, scaler, RNG, loader position) is saved every this many steps
    # (None: every val_interval) so that a killed run resumes where it was.
    checkpoint_interval: int | None = None
    # Validation during training uses the first `val_limit` images of the val split (None: all, as the authors).
    val_limit: int | None = None
    num_workers: int = 4
    # "fp16" = the authors' autocast + GradScaler (CUDA only; plain fp32 on CPU); "bf16" autocast; "off".
    amp: str = "fp16"
    loss_weights: dict[str, WeightSchedule] = field(default_factory=dict)
    # Parameter-name regexes (names without the checkpoint's "m." prefix) that get requires_grad=False.
    freeze: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class EvalConfig:
    """docs/reference.md#evaluation-protocol: which named attention is the segmentation, evaluated at `resolution`² after bilinear upsampling."""

    mask: str
    resolution: int = 256
    batch_size: int = 32
    amp: str = "fp16"


@dataclass(kw_only=True)
class MethodConfig:
    """Fields every method config has; methods subclass it and add their model fields."""

    method: str
    dataset: str
    num_slots: int
    resolution: int = 256
    train: TrainConfig
    eval: EvalConfig
    # Name of a prerequisite stage: a registered method of kind "stage" (a VQ-VAE tokenizer) or "learned" (SPOT's
    # stage 1 under spot-distill), trained first; the model's `load_stage` takes its weights.
    stage: str | None = None


def to_dict(config) -> dict:
    """The config as strict JSON data: a non-finite float (SPOT clips the infinity norm) becomes its str, "inf",
    which an override parses back (`--set train.grad_clip_norm_type=inf`)."""

    def strict(value):
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        if isinstance(value, dict):
            return {k: strict(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(strict(v) for v in value)
        return value

    return strict(dataclasses.asdict(config))


def config_hash(config) -> str:
    """sha256 (16 hex digits) of the config's canonical JSON: equal recipes ⇔ equal hashes."""
    text = json.dumps(to_dict(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _parse_value(text: str, current: Any) -> Any:
    if isinstance(current, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected a boolean, got {text!r}")
    if isinstance(current, int) and not isinstance(current, bool):
        return int(float(text)) if "e" in text.lower() else int(text)
    if isinstance(current, float):
        return float(text)
    if isinstance(current, str):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _set_path(obj, path: list[str], value, full: str):
    head, rest = path[0], path[1:]
    if dataclasses.is_dataclass(obj):
        names = [f.name for f in dataclasses.fields(obj)]
        if head not in names:
            raise KeyError(f"config has no field {full!r} ({head!r} not among: {', '.join(names)})")
        current = getattr(obj, head)
        new = _set_path(current, rest, value, full) if rest else _coerce(value, current, full)
        return dataclasses.replace(obj, **{head: new})
    if isinstance(obj, dict):
        if rest:
            if head not in obj:
                raise KeyError(f"config has no entry {full!r} ({head!r} not among: {', '.join(obj)})")
            return {**obj, head: _set_path(obj[head], rest, value, full)}
        return {**obj, head: _coerce(value, obj.get(head), full)}
    raise KeyError(f"config field {full!r} cannot be set: {type(obj).__name__} is not a config")


def _coerce(value, current, full: str):
    if isinstance(value, str) and not isinstance(current, str):
        try:
            return _parse_value(value, current)
        except ValueError as e:
            raise ValueError(f"bad value for {full}: {e}") from None
    return value


def apply_overrides(config, overrides: dict | list[str]):
    """Return a copy of `config` with dotted-path overrides: {"train.steps": 200} or ["train.steps=200"]."""
    if isinstance(overrides, (list, tuple)):
        pairs = {}
        for item in overrides:
            if "=" not in item:
                raise ValueError(f"override {item!r} is not of the form path=value")
            key, value = item.split("=", 1)
            pairs[key.strip()] = value.strip()
        overrides = pairs
    for key, value in overrides.items():
        config = _set_path(config, key.split("."), value, key)
    return config
