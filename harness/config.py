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
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError
from harness.metrics.protocols import METRICS

if TYPE_CHECKING:
    import torch


class ConfigError(HarnessError):
    """A config override (`--set PATH=VALUE`) names no field, has the wrong type or an out-of-range value."""


def positive(**kwargs):
    """A field whose value must be > 0 (checked when an override sets it)."""
    return field(metadata={"range": (0, False)}, **kwargs)


def non_negative(**kwargs):
    """A field whose value must be ≥ 0 (checked when an override sets it)."""
    return field(metadata={"range": (0, True)}, **kwargs)


def one_of(choices, **kwargs):
    """A str field whose value must be one of `choices`: a tuple, or a function returning one when an override is
    checked (for choices another library defines)."""
    return field(metadata={"choices": choices}, **kwargs)


def compile_choices() -> tuple[str, ...]:
    """"off", or a torch.compile backend."""
    import torch

    return ("off", *torch.compiler.list_backends(exclude_tags=()))


AMP_CHOICES = ("fp16", "bf16", "off")
# What a model computes in: parameters, inputs and random draws. float64 keeps a CPU run's numbers independent of the
# kernels and thread counts that compute them (docs/experiments.md#2026-12-06-the-same-answer-on-every-cpu), at
# about 3× the time.
DTYPES = ("float32", "float64")
AUGMENT_POLICIES = ("authors", "flip", "off")  # harness.run.train_data

# Set by the registry (which method, which dataset): an override would silently run another recipe.
FIXED_FIELDS = ("method", "dataset")


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


# Fields the authors derive from the step budget (docs/reference.md#hyper-parameters): the warm-up is total/20, a
# validation every total/`val_points` (40 in their configs), checkpoints kept from total/2. A field that equals its rule
# at the config's `steps` is derived: it follows an override of `steps` (or `val_points`) unless the same overrides set
# it too (`apply_overrides`); a field left out of a constructor (None) takes its rule's value.
SCHEDULE_RULES = {
    "warmup_steps": lambda c: c.steps // 20,
    "val_interval": lambda c: max(1, c.steps // c.val_points),
    "save_since": lambda c: c.steps // 2,
}


def derive_schedule(config) -> None:
    """Fill the schedule fields of `config` (a dataclass with `steps`) that are None from their rules."""
    for name, rule in SCHEDULE_RULES.items():
        if getattr(config, name, 0) is None:
            setattr(config, name, rule(config))


@dataclass(kw_only=True)
class TrainConfig:
    """Adam, linear warm-up then cosine to lr·lr_final_ratio, grad-clip after unscale
    (docs/reference.md#hyper-parameters, docs/reference.md#training-loop-and-seeding); the model's `optimizer` and
    `clip_gradients` (harness.contract) read these fields. `warmup_steps`, `val_interval` and `save_since` default to
    their rules (SCHEDULE_RULES) at `steps`."""

    steps: int = positive()
    batch_size: int = positive()
    lr: float = positive()
    warmup_steps: int | None = non_negative(default=None)
    lr_final_ratio: float = non_negative(default=1e-3)
    grad_clip: float = positive(default=1.0)
    grad_clip_norm_type: float = positive(default=2.0)  # the norm clipped: 2 (L2, the authors' DIAS) or inf (SPOT)
    # Validations over the run (the authors' total/40); `val_interval` follows it unless set itself.
    val_points: int = positive(default=40)
    val_interval: int | None = positive(default=None)
    # Checkpoints count from this step on (the authors' SaveModel from total/2): the best validation since then is
    # kept per selection rule (harness.run.train.SELECTION_RULES), on the `select_on` metric.
    save_since: int | None = non_negative(default=None)
    select_on: str = one_of(METRICS, default="ari_fg")
    # Training images held out — the train split's last ones, disjoint from training and from the reported split —
    # and validated beside it, for the `best-heldout` selection rule; 0: none.
    heldout: int = non_negative(default=0)
    # Full training state (model, optimiser, scaler, RNG, loader position) is saved every this many steps
    # (None: every val_interval) so that a killed run resumes where it was.
    checkpoint_interval: int | None = None
    # Validation during training uses the first `val_limit` images of the val split (None: all, as the authors).
    val_limit: int | None = None
    num_workers: int = non_negative(default=4)
    # "authors": their random crop + flip; "flip": a seeded flip of the val transform, "off": the val transform — the
    # two that keep a frozen backbone's features cacheable (harness.run.train_data).
    augment: str = one_of(AUGMENT_POLICIES, default="authors")
    # "fp16" = the authors' autocast + GradScaler (CUDA only; plain fp32 on CPU); "bf16" autocast; "off".
    amp: str = one_of(AMP_CHOICES, default="fp16")
    # "off", or a torch.compile backend ("inductor", as the authors compile on their GPUs) for the training forward.
    compile: str = one_of(compile_choices, default="off")
    loss_weights: dict[str, WeightSchedule] = field(default_factory=dict)
    # Parameter-name regexes (names without the checkpoint's "m." prefix) that get requires_grad=False.
    freeze: list[str] = field(default_factory=list)

    def __post_init__(self):
        derive_schedule(self)


@dataclass(kw_only=True)
class EvalConfig:
    """docs/reference.md#evaluation-protocol: which named attention is the segmentation, evaluated at `resolution`²
    after bilinear upsampling."""

    mask: str
    resolution: int = positive(default=256)
    batch_size: int = positive(default=32)
    amp: str = one_of(AMP_CHOICES, default="fp16")


@dataclass(kw_only=True)
class MethodConfig:
    """Fields every method config has; methods subclass it and add their model fields. `method` and `dataset` are
    filled in by the registry (harness.registry.get_config): the names the config is registered under."""

    method: str = ""
    dataset: str = ""
    num_slots: int = positive()
    resolution: int = positive(default=256)
    train: TrainConfig
    eval: EvalConfig
    # Name of a prerequisite stage: a registered method of kind "stage" (a VQ-VAE tokenizer) or "learned" (SPOT's
    # stage 1 under spot-distill), trained first; the model's `load_stage` takes its weights.
    stage: str | None = None
    dtype: str = one_of(DTYPES, default="float32")


def torch_dtype(config) -> "torch.dtype":
    """The torch dtype a config's model computes in (`MethodConfig.dtype`)."""
    import torch

    return getattr(torch, config.dtype)


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
        raise ValueError(f"expected a boolean (true/false), got {text!r}")
    if isinstance(current, int):
        try:
            value = float(text) if "e" in text.lower() else int(text)
        except ValueError:
            raise ValueError(f"expected an integer, got {text!r}") from None
        if value != int(value):
            raise ValueError(f"expected an integer, got {text!r}")
        return int(value)
    if isinstance(current, float):
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"expected a number, got {text!r}") from None
    if isinstance(current, str):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _check_value(value, spec: dataclasses.Field, full: str) -> None:
    choices = spec.metadata.get("choices")
    if choices is not None:
        choices = choices() if callable(choices) else choices
        if value not in choices:
            raise ConfigError(f"--set {full}={value}: expected one of {', '.join(choices)}")
    bound = spec.metadata.get("range")
    if bound is None or value is None or not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    low, inclusive = bound
    if value < low or (value == low and not inclusive) or value != value:
        raise ConfigError(f"--set {full}={value}: must be {'≥' if inclusive else '>'} {low}")


def _set_path(obj, path: list[str], value, full: str):
    head, rest = path[0], path[1:]
    if dataclasses.is_dataclass(obj):
        fields = {f.name: f for f in dataclasses.fields(obj)}
        if head not in fields:
            raise ConfigError(f"--set {full}: the config has no field {head!r}; valid: {', '.join(fields)}")
        current = getattr(obj, head)
        if rest:
            new = _set_path(current, rest, value, full)
        else:
            if dataclasses.is_dataclass(current):
                raise ConfigError(f"--set {full}: {head!r} is a group of fields; set one of: "
                                  f"{', '.join(f.name for f in dataclasses.fields(current))}")
            new = _coerce(value, current, full)
            _check_value(new, fields[head], full)
        return dataclasses.replace(obj, **{head: new})
    if isinstance(obj, dict):
        if rest:
            if head not in obj:
                raise ConfigError(f"--set {full}: no entry {head!r}; valid: {', '.join(obj) or '(none)'}")
            return {**obj, head: _set_path(obj[head], rest, value, full)}
        return {**obj, head: _coerce(value, obj.get(head), full)}
    raise ConfigError(f"--set {full}: {type(obj).__name__} has no fields to set")


def _coerce(value, current, full: str):
    if isinstance(value, str) and not isinstance(current, str):
        try:
            return _parse_value(value, current)
        except ValueError as e:
            raise ConfigError(f"--set {full}={value}: {e}") from None
    return value


def parse_overrides(overrides: list[str]) -> dict[str, str]:
    """["train.steps=200", ...] → {"train.steps": "200"}; an item without `=` or a path is refused."""
    pairs = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected PATH=VALUE, e.g. --set train.steps=200")
        pairs[key.strip()] = value.strip()
    return pairs


def apply_overrides(config, overrides: dict | list[str]):
    """Return a copy of `config` with dotted-path overrides: {"train.steps": 200} or ["train.steps=200"].

    Derived schedule fields (SCHEDULE_RULES) follow the new `steps`/`val_points` unless overridden themselves; a
    schedule that then contradicts itself is refused (`check_schedule`)."""
    if isinstance(overrides, (list, tuple)):
        overrides = parse_overrides(list(overrides))
    derived = [path + name for path, part in _schedules(config) for name, rule in SCHEDULE_RULES.items()
               if hasattr(part, name) and getattr(part, name) == rule(part)]
    for key, value in overrides.items():
        if key in FIXED_FIELDS:
            raise ConfigError(f"--set {key}: fixed by the registry; choose the {key} on the command line instead")
        config = _set_path(config, key.split("."), value, key)
    for path, part in list(_schedules(config)):
        follow = {name: rule(part) for name, rule in SCHEDULE_RULES.items()
                  if path + name in derived and path + name not in overrides}
        if follow:
            config = _replace_part(config, path.rstrip("."), follow)
    check_schedule(config)
    check_precision(config)
    return config


def check_precision(config) -> None:
    """float64 computes everything in float64: an autocast to fp16/bf16 would contradict it."""
    if getattr(config, "dtype", "float32") != "float64":
        return
    mixed = [f"{part}.amp={getattr(config, part).amp}" for part in ("train", "eval")
             if getattr(config, part).amp in ("fp16", "bf16")]
    if mixed:
        raise ConfigError(f"dtype=float64 computes in float64, but {' and '.join(mixed)} asks for autocast; "
                          "set them to off")


def _schedules(config, prefix: str = ""):
    """(dotted prefix, part) of every part of `config` with a step budget: itself or a nested dataclass."""
    if not dataclasses.is_dataclass(config):
        return
    if hasattr(config, "steps") and any(hasattr(config, name) for name in SCHEDULE_RULES):
        yield prefix, config
    for f in dataclasses.fields(config):
        yield from _schedules(getattr(config, f.name), f"{prefix}{f.name}.")


def _replace_part(config, prefix: str, changes: dict):
    """`config` with the fields `changes` replaced in its part at dotted `prefix` ("" = the config itself)."""
    if not prefix:
        return dataclasses.replace(config, **changes)
    head, _, rest = prefix.partition(".")
    return dataclasses.replace(config, **{head: _replace_part(getattr(config, head), rest, changes)})


def check_schedule(config) -> None:
    """Refuse a step budget that contradicts itself: a warm-up that never ends, a validation interval or a first
    saved checkpoint beyond the last step. Configs that do not train (steps = 0: reference rows) are exempt."""
    for path, part in _schedules(config):
        if not part.steps:
            continue
        steps = f"{path}steps={part.steps}"
        problems = []
        if part.warmup_steps >= part.steps:
            problems.append(f"{path}warmup_steps={part.warmup_steps} ≥ {steps}: the learning rate would never leave "
                            "its warm-up")
        if getattr(part, "val_interval", 0) > part.steps:
            problems.append(f"{path}val_interval={part.val_interval} > {steps}: training would never validate")
        if getattr(part, "save_since", 0) >= part.steps:
            problems.append(f"{path}save_since={part.save_since} ≥ {steps}: no checkpoint would be kept before the "
                            "last step")
        if problems:
            raise ConfigError("; ".join(problems))
