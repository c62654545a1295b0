"""Converters from the raw datasets to the authors' LMDB layout, with their split choices and index
semantics: `convert(dataset, src, out_dir)` writes `<out_dir>/<dataset>/{train,val}.lmdb`."""

from __future__ import annotations

import os
from pathlib import Path

from harness.data.convert import clevrtex, coco, voc
from harness.data.paths import split_path
from harness.data.specs import DATASETS

CONVERTERS = {"clevrtex": clevrtex.convert_split, "coco": coco.convert_split, "voc": voc.convert_split}


def convert(dataset: str, src: str | os.PathLike, out_dir: str | os.PathLike, splits=None,
            version: str = "v3", check_count: bool = True) -> dict[str, Path]:
    """Convert the raw `dataset` under `src` (all its splits unless `splits` names some); returns split →
    written file. `version` "v3" stores index maps as WebP (the table's files), "v4" as PNG.
    `check_count=False` skips the authors' count check."""
    if dataset not in CONVERTERS:
        raise KeyError(f"no converter for {dataset!r}; valid: {', '.join(CONVERTERS)}")
    written = {}
    for split in splits or DATASETS.get(dataset).splits:
        if split not in DATASETS.get(dataset).splits:
            raise ValueError(f"{dataset} has no split {split!r}")
        path = split_path(out_dir, dataset, split)
        CONVERTERS[dataset](Path(src), path, split, version=version, check_count=check_count)
        written[split] = path
    return written
