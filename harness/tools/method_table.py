"""What is registered (`python -m harness methods`) — methods, reference rows and stages — with the size of
each one's full-size model (built on the meta device: no memory, no weights, about a second each)."""

from __future__ import annotations

import re

import torch

from harness.errors import HarnessError
from harness.registry import METHODS, get_config

# The dataset whose full-size config a row describes when it has one (parameter counts depend on it only
# through the slot count).
DEFAULT_DATASET = "coco"
SMALL_DATASETS = ("synthetic",)

COLUMNS = ("name", "kind", "datasets", "slots", "steps", "batch", "params", "trainable", "mask", "stage")


def _described_dataset(datasets: list[str], wanted: str) -> str:
    if wanted in datasets:
        return wanted
    full = [d for d in datasets if d not in SMALL_DATASETS]
    return (full or datasets)[0]


def _build(build, config) -> torch.nn.Module:
    """The model on the meta device (shapes only); on CPU if a builder cannot run there."""
    try:
        with torch.device("meta"):
            return build(config)
    except (RuntimeError, NotImplementedError, TypeError, ValueError):
        return build(config)


def parameter_counts(model: torch.nn.Module, freeze: list[str]) -> tuple[int, int]:
    """(elements of the model's checkpoint, trainable parameters).

    The first counts what a checkpoint in the authors' layout holds (so it equals the "total elements" of their
    key listings; library-only tensors such as HF DINOv2's mask_token are not in it). The second counts the
    parameters the config trains: `freeze` regexes match names without the checkpoint's "m."."""
    total = sum(t.numel() for t in model.state_dict().values())
    trainable = sum(p.numel() for name, p in model.named_parameters()
                    if p.requires_grad and not any(re.match(f, name) for f in freeze))
    return total, trainable


def method_rows(dataset: str = DEFAULT_DATASET) -> list[dict]:
    """One row per registered name (registration order), describing its config on `dataset` if it has one."""
    known = {d for name in METHODS.names() for d in METHODS.get(name).configs}
    if dataset not in known:
        raise HarnessError(f"no method has a config for dataset {dataset!r}; known: {', '.join(sorted(known))}")
    rows = []
    for name in METHODS.names():
        spec = METHODS.get(name)
        datasets = list(spec.configs)
        row = dict.fromkeys(COLUMNS, "")
        row.update(name=name, kind=spec.kind, datasets=",".join(datasets))
        if datasets:
            described = _described_dataset(datasets, dataset)
            config = get_config(name, described)
            total, trainable = parameter_counts(_build(spec.build, config), config.train.freeze)
            slots = [str(get_config(name, d).num_slots) for d in datasets]
            row.update(slots="/".join(slots) if spec.kind != "stage" else "", steps=config.train.steps,
                       batch=config.train.batch_size, params=total, trainable=trainable,
                       mask=config.eval.mask, stage=config.stage or "", described=described)
        rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    def cell(row, column):
        value = row[column]
        return f"{value:,}" if isinstance(value, int) and column in ("params", "trainable", "steps") else str(value)

    table = [list(COLUMNS)] + [[cell(r, c) for c in COLUMNS] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
