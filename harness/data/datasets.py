"""`open_split`: one LMDB split as a torch Dataset of {"image": float32 (3,R,R), "segment": bool (R,R,S)}.

Per item, as the authors' v3 loaders: decode the record (codec.py), apply the train or val transform
(transforms.py) to the uint8 image and index map together, then build the dataset's masks (masks.py).
With `extra` the item also holds, for segment channels 1..S−1, "clazz" int64 (S−1,) from the record's
`clazz` array and "bbox" float32 (S−1,4) ltrb boxes derived from the transformed masks, as the authors' probe
data (docs/reference.md#object-recognition-probe).
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

import torch
from torch.utils.data import Dataset

from harness.data.card import data_card
from harness.data.codec import decode_image, decode_index_map
from harness.data.errors import CorruptDataError, DataError, DataFileMissingError
from harness.data.formats import check_supported, pre_v3_refusal
from harness.data.lmdb_io import LmdbReader
from harness.data.masks import boxes_from_masks
from harness.data.paths import split_path
from harness.data.specs import DATASETS, DatasetSpec
from harness.data.transforms import TrainTransform, ValTransform

EXTRA_KEYS = ("clazz", "bbox")


class LmdbSplit(Dataset):
    """A split file read through its dataset's rules. `keys` (str, index order), `path`, `card`, `format`."""

    def __init__(self, path: str | os.PathLike, spec: DatasetSpec, split: str, train: bool = False,
                 resolution: int | None = None, extra: tuple[str, ...] = (), mirror: bool = False):
        self.path = Path(path)
        self.spec = spec
        self.split = split
        self.train = train
        self.extra = tuple(extra)
        unknown = sorted(set(self.extra) - set(EXTRA_KEYS))
        if unknown:
            raise DataError(f"extra keys {', '.join(map(repr, unknown))} are unknown; valid: {', '.join(EXTRA_KEYS)}")
        if self.extra and spec.classes is None:
            raise DataError(f"dataset {spec.name!r} has no object classes, so no {', '.join(self.extra)}")
        self._reader = LmdbReader(self.path)
        self.format = check_supported(self._reader, spec.name)
        self.keys = [k.decode("ascii", "replace") for k in self._reader.keys]
        self.resolution = resolution or spec.resolution or self._stored_size()
        self.transform = TrainTransform(self.resolution) if train else ValTransform(self.resolution, mirror)

    def _stored_size(self) -> int:
        """The generator's size (synthetic data is evaluated at the size it was made)."""
        generator = (self._reader.meta or {}).get("generator", {})
        if "resolution" in generator:
            return int(generator["resolution"])
        if not self.keys:
            raise CorruptDataError(f"{self.path}: no records, so no stored size to evaluate at")
        image, _ = self._decode(self._reader.keys[0], self._reader.get(self._reader.keys[0]))
        return min(image.shape[-2:])

    @cached_property
    def card(self) -> dict:
        return data_card(self.path, self.spec.name, self.split, reader=self._reader)

    def __len__(self) -> int:
        return len(self._reader.keys)

    def _decode(self, key: bytes, record: dict) -> tuple[torch.Tensor, torch.Tensor]:
        missing = [f for f in self.spec.fields if f not in record]
        if missing == ["isthing"]:
            raise pre_v3_refusal(self._reader, self.spec.name, f"record {key!r} has no 'isthing'")
        if missing:
            raise CorruptDataError(f"{self.path}: key {key!r}: record lacks {', '.join(map(repr, missing))} "
                                   f"(fields: {sorted(record)})")
        image = decode_image(record["image"])
        if image is None:
            raise CorruptDataError(f"{self.path}: key {key!r}: 'image' does not decode to an 8-bit image")
        index_map = decode_index_map(record["segment"])
        if index_map is None:
            raise CorruptDataError(f"{self.path}: key {key!r}: 'segment' does not decode")
        if index_map.shape != image.shape[:2]:
            raise CorruptDataError(f"{self.path}: key {key!r}: segment {index_map.shape} and image "
                                   f"{image.shape[:2]} differ in size")
        return torch.from_numpy(image).permute(2, 0, 1), torch.from_numpy(index_map)

    def __getitem__(self, index: int) -> dict:
        key = self._reader.keys[index]
        record = self._reader.get(key)
        image, index_map = self._decode(key, record)
        image, index_map = self.transform(image, index_map)
        try:
            segment = self.spec.masks(index_map, record)
        except ValueError as e:
            raise CorruptDataError(f"{self.path}: key {key!r}: {e}") from None
        item = {"image": image, "segment": segment}
        if self.extra:
            item.update(self._objects(key, record, index_map, segment))
        return item

    def _objects(self, key: bytes, record: dict, index_map: torch.Tensor, segment: torch.Tensor) -> dict:
        """The requested "clazz"/"bbox" of segment channels 1.. (channel 0 is background or stuff: none)."""
        if "clazz" not in record:
            raise CorruptDataError(f"{self.path}: key {key!r}: record lacks 'clazz', needed for "
                                   f"{', '.join(self.extra)} (fields: {sorted(record)})")
        try:
            clazz = self.spec.classes(index_map, record)
        except ValueError as e:
            raise CorruptDataError(f"{self.path}: key {key!r}: {e}") from None
        if clazz.shape[0] != segment.shape[2] - 1:
            raise CorruptDataError(f"{self.path}: key {key!r}: {clazz.shape[0]} classes for "
                                   f"{segment.shape[2] - 1} object channels")
        objects = {"clazz": clazz, "bbox": boxes_from_masks(segment[:, :, 1:])}
        return {k: objects[k] for k in self.extra}


def open_split(data_dir: str | os.PathLike, dataset: str, split: str, train: bool = False,
               resolution: int | None = None, extra: tuple[str, ...] = (), mirror: bool = False) -> LmdbSplit:
    """`<data_dir>/<dataset>/<split>.lmdb` as a Dataset; `train` picks the random train transform, `mirror` the val
    transform flipped left-right.

    `resolution` defaults to 256 for the authors' datasets and to the stored size for `synthetic`.
    `extra` ⊆ ("clazz", "bbox") adds the objects' class ids and boxes (datasets whose records store `clazz`).
    """
    spec = DATASETS.get(dataset)
    path = split_path(data_dir, dataset, split)
    if not path.is_file():
        raise DataFileMissingError(f"{path}: no such file (dataset {dataset!r}, split {split!r}); "
                                   f"{spec.where_to_get()}")
    if train and mirror:
        raise DataError("open_split: mirror applies to the val transform; the train transform flips at random")
    return LmdbSplit(path, spec, split, train=train, resolution=resolution, extra=extra, mirror=mirror)
