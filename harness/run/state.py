"""The full training state in one file, written atomically: a killed run resumes from it bit-identically (on CPU).

Contents: model and optimiser state, GradScaler state, the step, the data-loader position (epoch and batches
consumed in it), every global RNG state of every data-parallel rank (`rng`, a list in rank order), the number of
processes, and the config hash and seed it belongs to (a resume under another recipe, or with another number of
processes whose RNG streams the file does not hold, is refused rather than silently mixed).
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from harness.errors import HarnessError
from harness.io import atomic_write_bytes

TRAIN_STATE = "train_state.pt"


class TrainStateError(HarnessError):
    pass


def save_train_state(path: str | Path, **state) -> None:
    buffer = io.BytesIO()  # see harness.nn.checkpoint.save_weights: equal states ⇒ equal bytes
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_train_state(path: str | Path, *, config_hash: str, seed: int, world_size: int = 1) -> dict:
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file: say which, keep the cause
        raise TrainStateError(f"{path}: cannot read the training state ({type(e).__name__}: {e})") from e
    for field, expected in (("config_hash", config_hash), ("seed", seed)):
        if state.get(field) != expected:
            raise TrainStateError(
                f"{path}: belongs to {field}={state.get(field)!r}, this run has {field}={expected!r}; "
                "use another run directory or delete the file to start over"
            )
    if state.get("world_size") != world_size:
        raise TrainStateError(
            f"{path}: was written by a run of {state.get('world_size')} process(es), this run has {world_size}; "
            "resume with the same number of processes (each one continues its own random stream), or use "
            "another run directory"
        )
    return state
