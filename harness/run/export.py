"""Exporting a harness weights file as the authors' full checkpoint (`python -m harness export --authors-layout`).

The authors' release files (`<label>/<seed>-<epoch>.pth`, docs/reference.md#checkpoints) are plain state_dicts with
every tensor, frozen backbone included, in their models' key order. The harness's own files leave out a frozen
pretrained backbone (harness.run.weights); exporting reassembles it, loads the result strictly into the method's
model, writes that model's full state_dict and checks that the written file loads strictly into a fresh model with
every tensor equal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from harness.errors import HarnessError
from harness.nn.checkpoint import checkpoint_state_dict, load_weights, read_weights, save_weights
from harness.run.train import SUMMARY, WEIGHTS, build_model
from harness.run.weights import load_weights_file


@dataclass(frozen=True)
class Exported:
    path: Path
    keys: int
    bytes: int


def run_of(source: Path) -> tuple[Path, dict | None]:
    """(weights file, the run's run.json record or None) of a run directory (its weights.pth) or of a weights file
    (with the record of the run directory it lies in: weights.pth or checkpoints/<rule>.pth)."""
    if source.is_dir():
        summary = source / SUMMARY
        if not summary.is_file():
            raise HarnessError(f"{source} is not a finished run directory (no {SUMMARY}); name a weights file and "
                               "--method / --dataset")
        return source / WEIGHTS, json.loads(summary.read_text())
    if not source.is_file():
        raise HarnessError(f"{source} does not exist (expected a run directory or a weights file)")
    for folder in (source.parent, source.parent.parent):
        if (folder / SUMMARY).is_file():
            return source, json.loads((folder / SUMMARY).read_text())
    return source, None


def export_authors_layout(weights: Path, config, output: Path) -> Exported:
    """Write `weights` (any weights file of `config`'s model) to `output` as the authors' full state_dict, checked by
    a strict round trip."""
    described = f"{config.method} ({config.dataset} config)"
    model = build_model(config, torch.device("cpu"), initial=False)
    load_weights_file(model, weights, described=described)
    full = checkpoint_state_dict(model)
    save_weights(model, output)
    back = read_weights(output)
    fresh = build_model(config, torch.device("cpu"), initial=False)
    load_weights(fresh, back, described=described, name=str(output))
    if list(back) != list(full) or not all(torch.equal(v, full[k]) for k, v in checkpoint_state_dict(fresh).items()):
        raise HarnessError(f"{output}: the written file does not load back to the same tensors")
    return Exported(output, len(back), output.stat().st_size)
