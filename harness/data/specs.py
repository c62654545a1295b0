"""What the harness knows of each dataset: splits, evaluation size, how its masks are built, where to get it.

A missing file is answered with this: the authors publish their converted LMDBs as GitHub release assets;
the raw sources can be converted with `python -m harness data convert`; the synthetic and textured sets are generated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from harness.data.masks import clevrtex_masks, coco_instance_masks, coco_thing_classes, index_classes, voc_masks
from harness.data.synthetic import SynthConfig
from harness.data.textured import TexturedConfig
from harness.names import Registry

RELEASES = "https://github.com/Genera1Z/VQ-VFM-OCL/releases/tag"


# Module-level functions, not lambdas: a Dataset holding its spec must pickle for spawned DataLoader workers.
def _index_masks(index_map: torch.Tensor, record: dict) -> torch.Tensor:
    return clevrtex_masks(index_map)


def _voc_masks(index_map: torch.Tensor, record: dict) -> torch.Tensor:
    return voc_masks(index_map)


def _coco_masks(index_map: torch.Tensor, record: dict) -> torch.Tensor:
    isthing = torch.from_numpy(np.asarray(record["isthing"], dtype=bool).reshape(-1))
    if index_map.numel() and int(index_map.max()) > isthing.shape[0]:
        raise ValueError(f"segment index {int(index_map.max())} exceeds the {isthing.shape[0]} segments of 'isthing'")
    return coco_instance_masks(index_map, isthing)


def _record_array(record: dict, field: str) -> torch.Tensor:
    return torch.from_numpy(np.asarray(record[field]).reshape(-1))


def _index_classes(index_map: torch.Tensor, record: dict) -> torch.Tensor:
    return index_classes(index_map, _record_array(record, "clazz"))


def _coco_classes(index_map: torch.Tensor, record: dict) -> torch.Tensor:
    isthing, clazz = _record_array(record, "isthing").bool(), _record_array(record, "clazz")
    if clazz.shape != isthing.shape:
        raise ValueError(f"'clazz' has {clazz.shape[0]} entries, 'isthing' {isthing.shape[0]}")
    return coco_thing_classes(index_map, isthing, clazz)


@dataclass(frozen=True)
class DatasetSpec:
    """name; evaluation resolution (None = the stored size); slots every method uses on it (the authors' counts
    for their datasets, docs/reference.md#hyper-parameters; for synthetic scenes the most objects plus background);
    `masks(index_map, record)` → (R,R,S) bool; `fields` every record must hold; where the converted files and the raw
    data come from; `classes(index_map, record)` → int64 (S−1,) class ids of mask channels 1.. from the record's `clazz`
    array, for `open_split(..., extra=("clazz", ...))` (default: index semantics, channel i ↔ `clazz[i−1]`; None: no
    classes)."""

    name: str
    resolution: int | None
    num_slots: int
    masks: Callable[[torch.Tensor, dict], torch.Tensor]
    fields: tuple[str, ...]
    release_url: str | None
    raw_source: str
    make_command: str
    splits: tuple[str, ...] = ("train", "val")
    classes: Callable[[torch.Tensor, dict], torch.Tensor] | None = _index_classes

    def where_to_get(self) -> str:
        parts = []
        if self.release_url:
            parts.append(f"download the authors' converted files from {self.release_url}")
        parts.append(f"or {'convert the raw data' if self.release_url else 'make it'} ({self.raw_source}) "
                     f"with `{self.make_command}`")
        return "; ".join(parts)


DATASETS: Registry[DatasetSpec] = Registry("dataset")

DATASETS.register("clevrtex", DatasetSpec(
    name="clevrtex",
    resolution=256,
    num_slots=11,
    masks=_index_masks,
    fields=("image", "segment"),
    release_url=f"{RELEASES}/dataset-clevrtex",
    raw_source="ClevrTex full parts 1-5 → train, ClevrTex-OOD → val: https://www.robots.ox.ac.uk/~vgg/data/clevrtex",
    make_command="python -m harness data convert clevrtex --src RAW --out DATA_DIR",
))
DATASETS.register("coco", DatasetSpec(
    name="coco",
    resolution=256,
    num_slots=7,
    masks=_coco_masks,
    fields=("image", "segment", "isthing"),
    release_url=f"{RELEASES}/dataset-coco",
    raw_source="COCO 2017 train2017/val2017 images + panoptic_annotations_trainval2017: https://cocodataset.org, "
               "panoptic_coco_categories.json: https://github.com/cocodataset/panopticapi",
    make_command="python -m harness data convert coco --src RAW --out DATA_DIR",
    classes=_coco_classes,
))
DATASETS.register("voc", DatasetSpec(
    name="voc",
    resolution=256,
    num_slots=6,
    masks=_voc_masks,
    fields=("image", "segment"),
    release_url=f"{RELEASES}/dataset-voc",
    raw_source="VOC2012 trainval → train, VOC2007 trainval → val: http://host.robots.ox.ac.uk/pascal/VOC",
    make_command="python -m harness data convert voc --src RAW --out DATA_DIR",
    classes=None,
))
DATASETS.register("synthetic", DatasetSpec(
    name="synthetic",
    resolution=None,
    num_slots=SynthConfig().max_objects + 1,
    masks=_index_masks,
    fields=("image", "segment"),
    release_url=None,
    raw_source="generated by the harness, deterministic from a seed",
    make_command="python -m harness data synth --out DATA_DIR",
))
DATASETS.register("textured", DatasetSpec(
    name="textured",
    resolution=None,
    num_slots=TexturedConfig().max_objects + 1,
    masks=_index_masks,
    fields=("image", "segment", "clazz"),
    release_url=None,
    raw_source="generated by the harness, deterministic from a seed",
    make_command="python -m harness data synth --dataset textured --out DATA_DIR",
))
