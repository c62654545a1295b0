"""What the three converters share: reading label PNGs as the authors do and writing a split."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from harness.data.errors import RawDataError
from harness.data.lmdb_io import LmdbWriter


def read_bgr(path: Path) -> np.ndarray:
    """A label/depth PNG as the authors read it: cv2.imread's default (8-bit BGR, palette expanded)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise RawDataError(f"{path}: cannot be read as an image")
    return image


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(read_bgr(path), cv2.COLOR_BGR2RGB)


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise RawDataError(f"{path}: cannot be read ({e.strerror})") from None


def rgb2id(rgb: np.ndarray) -> np.ndarray:
    """Packed colour R + 256·G + 256²·B as int64: panopticapi's `rgb2id` (COCO panoptic segment ids),
    which the authors use for every colour-coded label map."""
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def rank_map(ids: np.ndarray, where: Path) -> tuple[np.ndarray, np.ndarray]:
    """(unique ids ascending, index map of each pixel's rank among them as uint8)."""
    values, inverse = np.unique(ids, return_inverse=True)
    if values.size > 256:
        raise RawDataError(f"{where}: {values.size} distinct labels do not fit a uint8 index map")
    return values, inverse.reshape(ids.shape).astype(np.uint8)


def write_split(path: Path, records: Iterable[dict], dataset: str, split: str, version: str) -> int:
    """Write the records to `path` atomically; returns how many were written."""
    meta = {"dataset": dataset, "split": split, "format": version}
    with LmdbWriter(path, meta=meta) as writer:
        for record in records:
            writer.append(record)
    return len(writer.keys)


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise RawDataError(f"{path}: no such folder ({what})")
    return path
