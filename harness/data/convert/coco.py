"""COCO 2017 panoptic raw → LMDB (docs/reference.md#coco-panoptic): train2017 → train, val2017 → val, one record per
panoptic annotation in the annotation file's order.

Raw layout (the authors'): RAW/{train2017,val2017}/*.jpg, RAW/annotations/panoptic_{train,val}2017.json,
RAW/annotations/panoptic_{train,val}2017/*.png, and panoptic_coco_categories.json (panopticapi) in
RAW/annotations/ (v3) or RAW/ (v4). Records: `image` = the JPEG bytes; `segment` = index map with VOID
(segment id 0) → 0 and the remaining segment ids (panopticapi `rgb2id` of the PNG) ascending → 1..S;
`clazz` uint8 (S,) category_id and `isthing` bool (S,) of index i+1. Crowd segments are ordinary segments.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import numpy as np

from harness.data.codec import encode_index_map
from harness.data.convert.common import rank_map, read_bytes, read_rgb, require_dir, rgb2id, write_split
from harness.data.errors import RawDataError

FOLDERS = {"train": "train2017", "val": "val2017"}
CATEGORY_FILES = ("annotations/panoptic_coco_categories.json", "panoptic_coco_categories.json")
MAX_SEGMENTS = 254  # indices 1..S must fit uint8 (the authors assert S < 255)


def _load_json(path: Path):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as e:
        raise RawDataError(f"{path}: cannot be read ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise RawDataError(f"{path}: not valid JSON ({e})") from None


def load_isthing(src: Path) -> dict[int, bool]:
    """category_id → isthing, from panoptic_coco_categories.json (v3 or v4 location)."""
    for name in CATEGORY_FILES:
        if (src / name).is_file():
            categories = _load_json(src / name)
            break
    else:
        raise RawDataError(f"{src}: no panoptic_coco_categories.json in annotations/ or the top folder "
                           "(get it from https://github.com/cocodataset/panopticapi)")
    isthing = {}
    for category in categories:
        if category.get("isthing") not in (0, 1):
            raise RawDataError(f"{src}: category {category.get('id')} has isthing={category.get('isthing')!r}")
        isthing[category["id"]] = bool(category["isthing"])
    return isthing


def panoptic_record(annotation: dict, image_file: Path, png_file: Path, isthing: dict[int, bool],
                    version: str) -> dict:
    infos = {info["id"]: info for info in annotation["segments_info"]}
    if len(infos) != len(annotation["segments_info"]):
        raise RawDataError(f"{png_file}: duplicate segment ids in its segments_info")
    ids, ranks = rank_map(rgb2id(read_rgb(png_file)), png_file)
    void = ids.size > 0 and ids[0] == 0  # VOID is the smallest id, so its rank is 0 and segments rank 1..S
    segment_ids = ids[1:] if void else ids
    if set(segment_ids.tolist()) != set(infos):
        raise RawDataError(f"{png_file}: segment ids in the PNG {sorted(segment_ids.tolist())} differ from its "
                           f"segments_info {sorted(infos)}")
    if len(segment_ids) > MAX_SEGMENTS:
        raise RawDataError(f"{png_file}: {len(segment_ids)} segments do not fit a uint8 index map")
    index_map = ranks if void else ranks + 1
    categories = [infos[i]["category_id"] for i in segment_ids.tolist()]
    unknown = sorted(set(categories) - set(isthing))
    if unknown:
        raise RawDataError(f"{png_file}: category ids {unknown} are not in panoptic_coco_categories.json")
    return {
        "image": read_bytes(image_file),
        "segment": encode_index_map(index_map, version),
        "clazz": np.array(categories, dtype=np.uint8),
        "isthing": np.array([isthing[c] for c in categories], dtype=bool),
    }


def records(src: Path, split: str, isthing: dict[int, bool], version: str) -> Iterator[dict]:
    images = require_dir(src / FOLDERS[split], "COCO images")
    pngs = require_dir(src / "annotations" / f"panoptic_{FOLDERS[split]}", "COCO panoptic PNGs")
    annotation_file = src / "annotations" / f"panoptic_{FOLDERS[split]}.json"
    annotations = _load_json(annotation_file).get("annotations")
    if not isinstance(annotations, list):
        raise RawDataError(f"{annotation_file}: no 'annotations' list")
    for annotation in annotations:
        stem = annotation["file_name"].split(".")[0]
        yield panoptic_record(annotation, images / f"{stem}.jpg", pngs / f"{stem}.png", isthing, version)


def convert_split(src: Path, out: Path, split: str, version: str = "v3", check_count: bool = True) -> int:
    """The authors assert no COCO count, so `check_count` has nothing to check."""
    src = Path(src)
    return write_split(out, records(src, split, load_isthing(src), version), "coco", split, version)
