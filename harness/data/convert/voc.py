"""Pascal VOC raw → LMDB (docs/reference.md#pascal-voc): VOC2012 SegmentationObject → train, VOC2007 SegmentationObject
→ val.

Raw layout: RAW/VOC2012/{JPEGImages,SegmentationObject} and RAW/VOC2007/{JPEGImages,SegmentationObject}
(the VOCdevkit folder). Every SegmentationObject PNG, sorted by name, gives one record: `image` = the JPEG
bytes, `segment` = index map with the boundary colour (224,224,192) → 0 (it must be present) and the other
colours ascending by packed value → 1, 2, ... (black background, packed 0, is the smallest ⇒ index 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from harness.data.codec import encode_index_map
from harness.data.convert.common import rank_map, read_bytes, read_rgb, require_dir, rgb2id, write_split
from harness.data.errors import RawDataError

FOLDERS = {"train": "VOC2012", "val": "VOC2007"}
BOUNDARY_RGB = (224, 224, 192)
BOUNDARY_ID = BOUNDARY_RGB[0] + 256 * BOUNDARY_RGB[1] + 256 * 256 * BOUNDARY_RGB[2]


def voc_index_map(rgb: np.ndarray, where: Path) -> np.ndarray:
    """RGB object PNG → uint8 index map: boundary 0, other colours by ascending packed value from 1."""
    values, ranks = rank_map(rgb2id(rgb), where)
    at = int(np.searchsorted(values, BOUNDARY_ID))
    if at == values.size or values[at] != BOUNDARY_ID:
        raise RawDataError(f"{where}: no boundary pixels of colour {BOUNDARY_RGB} (the authors' converter "
                           "requires them)")
    lookup = np.arange(1, values.size + 1)
    lookup[at] = 0
    lookup[at + 1:] -= 1
    return lookup[ranks].astype(np.uint8)


def records(src: Path, split: str, version: str) -> Iterator[dict]:
    root = Path(src) / FOLDERS[split]
    images = require_dir(root / "JPEGImages", "VOC images")
    for png in sorted(require_dir(root / "SegmentationObject", "VOC object masks").iterdir()):
        parts = png.name.split(".")
        if len(parts) != 2 or parts[1] != "png":
            raise RawDataError(f"{png}: SegmentationObject should hold only <name>.png files")
        yield {
            "image": read_bytes(images / f"{parts[0]}.jpg"),
            "segment": encode_index_map(voc_index_map(read_rgb(png), png), version),
        }


def convert_split(src: Path, out: Path, split: str, version: str = "v3", check_count: bool = True) -> int:
    """The authors assert no VOC count, so `check_count` has nothing to check."""
    return write_split(out, records(src, split, version), "voc", split, version)
