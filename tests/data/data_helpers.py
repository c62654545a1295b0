"""Small builders for data tests: encoded images and LMDB files written the authors' way with raw lmdb
calls (an oracle independent of harness.data's writer)."""

from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import lmdb
import numpy as np


def png(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()


def jpeg(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()


def index_buf(index_map: np.ndarray, ext: str = ".webp") -> np.ndarray:
    """What the authors' converters store: cv2.imencode(".webp") in v3, ".png" in v4."""
    return cv2.imencode(ext, index_map.astype(np.uint8))[1]


def random_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def write_authors_lmdb(path: Path, records: list[dict], keys: list[bytes] | None = None,
                       with_keys: bool = True) -> Path:
    """A split file as the authors' converters write it: records under b"000000"..., then b"__keys__"."""
    path.parent.mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(path), map_size=1 << 30, subdir=False, meminit=False)
    default_keys = [f"{i:06d}".encode() for i in range(len(records))]
    with env.begin(write=True) as txn:
        for key, record in zip(default_keys, records):
            txn.put(key, record if isinstance(record, bytes) else pickle.dumps(record))
        if with_keys:
            txn.put(b"__keys__", pickle.dumps(default_keys if keys is None else keys))
    env.close()
    Path(str(path) + "-lock").unlink(missing_ok=True)
    return path


def read_authors_way(path: Path) -> tuple[list[bytes], list[dict]]:
    """Read a split as the authors' v3 loader does (flags, key list, pickled dicts)."""
    env = lmdb.open(str(path), subdir=False, readonly=True, readahead=False, meminit=False,
                    max_spare_txns=4, lock=False)
    with env.begin(write=False) as txn:
        keys = pickle.loads(txn.get(b"__keys__"))
        records = [pickle.loads(txn.get(k)) for k in keys]
    env.close()
    return keys, records


VOC_PALETTE = {0: (0, 0, 0), 1: (128, 0, 0), 2: (0, 128, 0), 255: (224, 224, 192)}


def voc_palette_png(path: Path, indices: np.ndarray) -> None:
    """A palette PNG like VOC's SegmentationObject files (index 255 = the boundary colour)."""
    from PIL import Image

    image = Image.fromarray(indices.astype(np.uint8), mode="P")
    palette = [0] * 768
    for i, rgb in VOC_PALETTE.items():
        palette[3 * i:3 * i + 3] = rgb
    image.putpalette(palette)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
