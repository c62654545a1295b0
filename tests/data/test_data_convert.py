"""Converters on tiny raw trees in the original folder layouts, checked record by record against index
maps written down by hand (colour packing R + 256·G + 256²·B decides the order)."""

import json

import cv2
import numpy as np
import pytest
from data_helpers import read_authors_way, voc_palette_png

from harness.data.codec import decode_index_map, index_map_version
from harness.data.convert import convert
from harness.data.errors import RawDataError


def _write_rgb_png(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb.astype(np.uint8), cv2.COLOR_RGB2BGR))


def _paint(shape, regions):
    """RGB image from [(colour, (top, bottom, left, right)), ...] painted in order over black."""
    rgb = np.zeros((*shape, 3), np.uint8)
    for colour, (t, b, l, r) in regions:
        rgb[t:b, l:r] = colour
    return rgb


# ---- ClevrTex ----

RED, GREEN1 = (255, 0, 0), (0, 1, 0)  # packed 255 < 256: red ranks first although "larger" in BGR packing


def _clevrtex_scene(folder, name, flat_regions, depth_bgr):
    stem = folder / name
    _write_rgb_png(stem.with_name(f"{name}.png"), np.full((6, 8, 3), 90, np.uint8))
    for suffix in ("albedo_0001", "normal_0001", "shade_0001"):
        _write_rgb_png(stem.with_name(f"{name}_{suffix}.png"), np.zeros((6, 8, 3), np.uint8))
    _write_rgb_png(stem.with_name(f"{name}_flat.png"), _paint((6, 8), flat_regions))
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(stem.with_name(f"{name}_depth_0001.png")), depth_bgr)


@pytest.fixture
def clevrtex_raw(tmp_path):
    src = tmp_path / "raw"
    depth = np.zeros((6, 8, 3), np.uint8)
    depth[..., 0] = np.arange(8)[None] * 10  # channel 0 of cv2's BGR read is what the authors keep
    depth[..., 1] = 99
    _clevrtex_scene(src / "clevrtex_full" / "0", "CLEVRTEX_full_000000",
                    [(GREEN1, (0, 3, 0, 4)), (RED, (3, 6, 4, 8))], depth)
    _clevrtex_scene(src / "clevrtex_full" / "0", "CLEVRTEX_full_000001", [(GREEN1, (1, 2, 1, 2))], depth)
    _clevrtex_scene(src / "clevrtex_full" / "1", "CLEVRTEX_full_001000", [(RED, (0, 6, 0, 1))], depth)
    _clevrtex_scene(src / "clevrtex_outd" / "0", "CLEVRTEX_outd_000000", [(RED, (0, 1, 0, 1))], depth)
    return src


def test_clevrtex_records(clevrtex_raw, tmp_path):
    written = convert("clevrtex", clevrtex_raw, tmp_path / "data", check_count=False)
    assert written == {s: tmp_path / "data" / "clevrtex" / f"{s}.lmdb" for s in ("train", "val")}
    keys, records = read_authors_way(written["train"])
    assert keys == [b"000000", b"000001", b"000002"]
    first = records[0]
    assert set(first) == {"image", "segment", "depth"}
    assert first["image"] == (clevrtex_raw / "clevrtex_full/0/CLEVRTEX_full_000000.png").read_bytes()
    expected = np.zeros((6, 8), np.uint8)
    expected[0:3, 0:4] = 2  # (0,1,0) packs to 256
    expected[3:6, 4:8] = 1  # (255,0,0) packs to 255
    assert index_map_version(first["segment"]) == "v3"
    np.testing.assert_array_equal(decode_index_map(first["segment"]), expected)
    np.testing.assert_array_equal(decode_index_map(first["depth"]), np.repeat(np.arange(8)[None] * 10, 6, 0))
    # Sorted by path: folder 0's scenes, then folder 1's.
    assert records[2]["image"] == (clevrtex_raw / "clevrtex_full/1/CLEVRTEX_full_001000.png").read_bytes()
    np.testing.assert_array_equal(decode_index_map(records[2]["segment"]),
                                  np.pad(np.ones((6, 1), np.uint8), ((0, 0), (0, 7))))
    _, val = read_authors_way(written["val"])
    assert len(val) == 1


def test_clevrtex_count_check_is_the_default(clevrtex_raw, tmp_path):
    with pytest.raises(RawDataError, match="3 scenes, expected 50000 .*--no-count-check"):
        convert("clevrtex", clevrtex_raw, tmp_path / "data")
    assert not (tmp_path / "data" / "clevrtex" / "train.lmdb").exists()


def test_clevrtex_v4_writes_png(clevrtex_raw, tmp_path):
    written = convert("clevrtex", clevrtex_raw, tmp_path / "data", splits=("val",), version="v4", check_count=False)
    _, records = read_authors_way(written["val"])
    assert index_map_version(records[0]["segment"]) == "v4" and index_map_version(records[0]["depth"]) == "v4"


def test_clevrtex_incomplete_scene_is_reported(clevrtex_raw, tmp_path):
    (clevrtex_raw / "clevrtex_outd/0/CLEVRTEX_outd_000000_shade_0001.png").unlink()
    with pytest.raises(RawDataError, match="not a multiple of 6"):
        convert("clevrtex", clevrtex_raw, tmp_path / "data", splits=("val",), check_count=False)


# ---- COCO ----

def _id_rgb(segment_id):
    return (segment_id % 256, segment_id // 256 % 256, segment_id // 65536)


@pytest.fixture
def coco_raw(tmp_path):
    src = tmp_path / "coco"
    categories = [{"id": 1, "name": "person", "isthing": 1}, {"id": 44, "name": "bottle", "isthing": 1},
                  {"id": 184, "name": "tree-merged", "isthing": 0}, {"id": 200, "name": "rug-merged", "isthing": 0}]
    (src / "annotations").mkdir(parents=True)
    (src / "annotations" / "panoptic_coco_categories.json").write_text(json.dumps(categories))
    ids = {"a": 3_000_000, "b": 5, "c": 70_000}
    pngs = {
        # VOID (0) in row 0; ids a, b, c elsewhere
        "000000000139": _paint((4, 6), [(_id_rgb(ids["a"]), (1, 4, 0, 2)), (_id_rgb(ids["b"]), (1, 4, 2, 4)),
                                        (_id_rgb(ids["c"]), (1, 4, 4, 6))]),
        # no VOID pixel at all
        "000000000025": _paint((4, 6), [(_id_rgb(ids["c"]), (0, 4, 0, 6)), (_id_rgb(ids["b"]), (0, 2, 0, 3))]),
    }
    infos = {
        "000000000139": [{"id": ids["a"], "category_id": 184, "iscrowd": 0},
                         {"id": ids["b"], "category_id": 1, "iscrowd": 0},
                         {"id": ids["c"], "category_id": 44, "iscrowd": 1}],
        "000000000025": [{"id": ids["c"], "category_id": 200, "iscrowd": 0},
                         {"id": ids["b"], "category_id": 44, "iscrowd": 0}],
    }
    for split, folder in (("train", "train2017"), ("val", "val2017")):
        annotations = []
        for stem in ("000000000139", "000000000025"):  # the JSON's order, not sorted
            (src / folder).mkdir(exist_ok=True)
            (src / folder / f"{stem}.jpg").write_bytes(f"jpeg bytes of {stem}".encode())
            _write_rgb_png(src / "annotations" / f"panoptic_{folder}" / f"{stem}.png", pngs[stem])
            annotations.append({"file_name": f"{stem}.png", "image_id": int(stem), "segments_info": infos[stem]})
        (src / "annotations" / f"panoptic_{folder}.json").write_text(json.dumps({"annotations": annotations}))
    return src


def test_coco_records(coco_raw, tmp_path):
    written = convert("coco", coco_raw, tmp_path / "data")
    keys, records = read_authors_way(written["val"])
    assert keys == [b"000000", b"000001"]
    first, second = records
    assert set(first) == {"image", "segment", "clazz", "isthing"}
    assert first["image"] == b"jpeg bytes of 000000000139"
    # ids ascending: b=5 → 1, c=70 000 → 2, a=3 000 000 → 3; VOID → 0
    np.testing.assert_array_equal(decode_index_map(first["segment"]),
                                  [[0] * 6, [3, 3, 1, 1, 2, 2], [3, 3, 1, 1, 2, 2], [3, 3, 1, 1, 2, 2]])
    assert first["clazz"].dtype == np.uint8 and first["clazz"].tolist() == [1, 44, 184]
    assert first["isthing"].dtype == bool and first["isthing"].tolist() == [True, True, False]
    assert second["image"] == b"jpeg bytes of 000000000025"
    np.testing.assert_array_equal(decode_index_map(second["segment"]),
                                  [[1, 1, 1, 2, 2, 2], [1, 1, 1, 2, 2, 2], [2] * 6, [2] * 6])
    assert second["clazz"].tolist() == [44, 200] and second["isthing"].tolist() == [True, False]


def test_coco_categories_at_the_v4_location(coco_raw, tmp_path):
    (coco_raw / "annotations" / "panoptic_coco_categories.json").rename(coco_raw / "panoptic_coco_categories.json")
    written = convert("coco", coco_raw, tmp_path / "data", splits=("val",))
    assert len(read_authors_way(written["val"])[0]) == 2


def test_coco_png_and_segments_info_must_agree(coco_raw, tmp_path):
    path = coco_raw / "annotations" / "panoptic_val2017.json"
    data = json.loads(path.read_text())
    data["annotations"][0]["segments_info"].pop()
    path.write_text(json.dumps(data))
    with pytest.raises(RawDataError, match="000000000139.png: segment ids in the PNG"):
        convert("coco", coco_raw, tmp_path / "data", splits=("val",))
    assert not (tmp_path / "data" / "coco" / "val.lmdb").exists()


def test_coco_without_categories_file(coco_raw, tmp_path):
    (coco_raw / "annotations" / "panoptic_coco_categories.json").unlink()
    with pytest.raises(RawDataError, match="no panoptic_coco_categories.json"):
        convert("coco", coco_raw, tmp_path / "data")


# ---- VOC ----

@pytest.fixture
def voc_raw(tmp_path):
    src = tmp_path / "VOCdevkit"
    indices = np.array([[0, 0, 255, 2, 2],
                        [255, 255, 255, 2, 2],
                        [1, 1, 255, 255, 255]])
    for year in ("VOC2012", "VOC2007"):
        for stem, arr in (("2007_000129", indices), ("2007_000032", indices[::-1])):
            voc_palette_png(src / year / "SegmentationObject" / f"{stem}.png", arr)
            (src / year / "JPEGImages").mkdir(parents=True, exist_ok=True)
            (src / year / "JPEGImages" / f"{stem}.jpg").write_bytes(f"{year} {stem}".encode())
    return src


def test_voc_records(voc_raw, tmp_path):
    written = convert("voc", voc_raw, tmp_path / "data")
    keys, records = read_authors_way(written["train"])
    assert keys == [b"000000", b"000001"]
    assert [r["image"] for r in records] == [b"VOC2012 2007_000032", b"VOC2012 2007_000129"]  # sorted by name
    assert set(records[0]) == {"image", "segment"}
    # boundary → 0; black 0 → 1; (128,0,0) packs to 128 → 2; (0,128,0) packs to 32 768 → 3
    expected = np.array([[1, 1, 0, 3, 3],
                         [0, 0, 0, 3, 3],
                         [2, 2, 0, 0, 0]])
    np.testing.assert_array_equal(decode_index_map(records[1]["segment"]), expected)
    np.testing.assert_array_equal(decode_index_map(records[0]["segment"]), expected[::-1])
    assert read_authors_way(written["val"])[1][0]["image"] == b"VOC2007 2007_000032"


def test_voc_requires_boundary_pixels(voc_raw, tmp_path):
    voc_palette_png(voc_raw / "VOC2007" / "SegmentationObject" / "2007_000129.png", np.ones((3, 5)))
    with pytest.raises(RawDataError, match=r"2007_000129.png: no boundary pixels of colour \(224, 224, 192\)"):
        convert("voc", voc_raw, tmp_path / "data", splits=("val",))


def test_voc_missing_image(voc_raw, tmp_path):
    (voc_raw / "VOC2012" / "JPEGImages" / "2007_000129.jpg").unlink()
    with pytest.raises(RawDataError, match="2007_000129.jpg: cannot be read"):
        convert("voc", voc_raw, tmp_path / "data", splits=("train",))


def test_voc_missing_folder(tmp_path):
    with pytest.raises(RawDataError, match="VOC2012/JPEGImages: no such folder"):
        convert("voc", tmp_path, tmp_path / "data")
