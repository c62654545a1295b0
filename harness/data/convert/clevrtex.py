"""ClevrTex raw → LMDB (docs/reference.md#clevrtex): `clevrtex_full` (parts 1–5) → train, `clevrtex_outd` (OOD) → val.

Raw layout: RAW/clevrtex_full/<0..49>/*.png and RAW/clevrtex_outd/<0..9>/*.png. All PNGs of a split,
sorted by path, come in groups of 6 per scene: [0] the image `CLEVRTEX_<part>_<nnnnnn>.png`, [2]
`*_depth_0001.png`, [3] `*_flat.png` (the colour-coded object map). Records: `image` = the image file's
bytes, `segment` = rank of each pixel's packed flat colour among the scene's colours (0 = the smallest,
black background; 0..K−1 consecutive), `depth` = channel 0 of the depth PNG read by cv2 as 8-bit colour.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from harness.data.codec import encode_index_map
from harness.data.convert.common import rank_map, read_bgr, read_bytes, read_rgb, require_dir, rgb2id, write_split
from harness.data.errors import RawDataError

FOLDERS = {"train": "clevrtex_full", "val": "clevrtex_outd"}
# The authors assert the scene count (50 000 full, 10 000 OOD); tiny test trees skip the check.
EXPECTED_SCENES = {"train": 50_000, "val": 10_000}
FILES_PER_SCENE = 6


def scenes(folder: Path) -> list[list[Path]]:
    """The split's PNGs sorted by path, grouped 6 per scene, with the authors' checks on the group."""
    files = sorted(require_dir(folder, "ClevrTex split folder").glob("**/*.png"))
    if len(files) % FILES_PER_SCENE:
        raise RawDataError(f"{folder}: {len(files)} PNG files is not a multiple of {FILES_PER_SCENE} "
                           "(image, albedo, depth, flat, normal, shade per scene)")
    groups = [files[i:i + FILES_PER_SCENE] for i in range(0, len(files), FILES_PER_SCENE)]
    for group in groups:
        parts = group[0].name.split(".")[0].split("_")
        if len(parts) < 3 or not parts[2].isnumeric():
            raise RawDataError(f"{group[0]}: expected a scene image named like CLEVRTEX_full_000000.png")
        if not group[2].name.endswith("_depth_0001.png") or not group[3].name.endswith("_flat.png"):
            raise RawDataError(f"{group[0].parent}: scene {group[0].name} lacks its *_depth_0001.png and "
                               "*_flat.png at the expected sorted positions")
    return groups


def records(groups: list[list[Path]], version: str) -> Iterator[dict]:
    for group in groups:
        image, depth, flat = group[0], group[2], group[3]
        _, index_map = rank_map(rgb2id(read_rgb(flat)), flat)
        yield {
            "image": read_bytes(image),
            "segment": encode_index_map(index_map, version),
            "depth": encode_index_map(read_bgr(depth)[:, :, 0].copy(), version),
        }


def convert_split(src: Path, out: Path, split: str, version: str = "v3", check_count: bool = True) -> int:
    groups = scenes(Path(src) / FOLDERS[split])
    if check_count and len(groups) != EXPECTED_SCENES[split]:
        raise RawDataError(f"{Path(src) / FOLDERS[split]}: {len(groups)} scenes, expected "
                           f"{EXPECTED_SCENES[split]} for the {split} split (--no-count-check to skip)")
    return write_split(out, records(groups, version), "clevrtex", split, version)
