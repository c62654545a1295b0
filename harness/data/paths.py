"""Where a split lives on disk (one place for the layout of SPEC §1.1)."""

from __future__ import annotations

import os
from pathlib import Path


def split_path(data_dir: str | os.PathLike, dataset: str, split: str) -> Path:
    """Where a split lives: `<data_dir>/<dataset>/<split>.lmdb` (SPEC §1.1)."""
    return Path(data_dir) / dataset / f"{split}.lmdb"
