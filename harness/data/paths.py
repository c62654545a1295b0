"""Where a split lives on disk (one place for the layout of docs/reference.md#data-format)."""

from __future__ import annotations

import os
from pathlib import Path


def split_path(data_dir: str | os.PathLike, dataset: str, split: str) -> Path:
    """Where a split lives: `<data_dir>/<dataset>/<split>.lmdb` (docs/reference.md#data-format)."""
    return Path(data_dir) / dataset / f"{split}.lmdb"
