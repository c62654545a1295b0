"""open_split(..., extra=("clazz", "bbox")): the recognition probe's per-object class ids and boxes, against
boxes computed with numpy from the masks (inclusive ltrb ÷ size) and classes picked by hand; the padding
collate with the extra keys."""

import cv2
import numpy as np
import pytest
import torch
from data_helpers import index_buf, jpeg, png, random_image, write_authors_lmdb

from harness.data import collate, open_split
from harness.data.errors import CorruptDataError, DataError
from harness.data.masks import boxes_from_masks

H, W = 240, 320


def _val_map(index_map, size=256):
    h, w = index_map.shape
    s = min(h, w)
    t, l = (h - s) // 2, (w - s) // 2
    return cv2.resize(index_map[t:t + s, l:l + s], (size, size), interpolation=cv2.INTER_NEAREST_EXACT)


def _box(mask):
    """Inclusive ltrb of a 2-D mask ÷ its size, by numpy."""
    rows, cols = np.nonzero(mask)
    h, w = mask.shape
    return [cols.min() / w, rows.min() / h, cols.max() / w, rows.max() / h]


def _write(tmp_path, dataset, records):
    for r in records:
        r["segment"] = index_buf(r["segment"])
    return write_authors_lmdb(tmp_path / dataset / "val.lmdb", records)


def _coco_record():
    m = np.zeros((H, W), np.uint8)  # rows 0..9 stay VOID
    m[10:120] = 1  # stuff
    m[60:150, 100:180] = 2  # thing, category 1
    m[200:] = 3  # stuff
    m[150:200, 0:30] = 4  # thing left of the crop: dropped with its class
    m[160:190, 200:240] = 5  # thing, category 44
    return {"image": jpeg(random_image(np.random.default_rng(1), H, W)), "segment": m,
            "clazz": np.array([184, 1, 190, 3, 44], np.uint8), "isthing": np.array([0, 1, 0, 1, 1], bool)}


def test_coco_classes_are_the_present_things_in_index_order_and_boxes_come_from_the_crop(tmp_path):
    record = _coco_record()
    v = _val_map(record["segment"])
    _write(tmp_path, "coco", [record])
    plain = open_split(tmp_path, "coco", "val")[0]
    item = open_split(tmp_path, "coco", "val", extra=("clazz", "bbox"))[0]
    assert set(plain) == {"image", "segment"} and set(item) == {"image", "segment", "clazz", "bbox"}
    assert torch.equal(item["segment"], plain["segment"]) and torch.equal(item["image"], plain["image"])
    assert item["clazz"].tolist() == [1, 44] and item["clazz"].dtype == torch.int64
    assert item["bbox"].dtype == torch.float32 and item["bbox"].shape == (2, 4)
    np.testing.assert_array_equal(item["bbox"].numpy(), np.float32([_box(v == 2), _box(v == 5)]))
    assert open_split(tmp_path, "coco", "val", extra=("bbox",))[0].keys() == {"image", "segment", "bbox"}


def test_train_boxes_follow_the_random_crop_and_flip(tmp_path):
    _write(tmp_path, "coco", [_coco_record()])
    ds = open_split(tmp_path, "coco", "val", train=True, extra=("clazz", "bbox"))
    for seed in range(4):
        torch.manual_seed(seed)
        item = ds[0]
        segment = item["segment"].numpy()
        expected = [_box(segment[:, :, i]) for i in range(1, segment.shape[2])]
        np.testing.assert_array_equal(item["bbox"].numpy(), np.float32(expected).reshape(-1, 4))
        assert item["clazz"].shape[0] == segment.shape[2] - 1


def test_index_datasets_map_channel_i_to_clazz_i_minus_1_and_keep_emptied_channels(tmp_path):
    m = np.zeros((H, W), np.uint8)
    m[50:100, 0:30] = 1  # left of the crop: channel stays, empty
    m[100:180, 120:200] = 2
    m[0:5, 140:142] = 3  # a 5×2 sliver
    _write(tmp_path, "clevrtex", [{"image": png(random_image(np.random.default_rng(2), H, W)), "segment": m,
                                   "clazz": np.array([7, 8, 9, 10], np.uint8)}])
    item = open_split(tmp_path, "clevrtex", "val", extra=("clazz", "bbox"))[0]
    v = _val_map(m)
    assert item["clazz"].tolist() == [7, 8, 9]  # index 4 is not in the image: no channel, no class
    np.testing.assert_array_equal(item["bbox"].numpy(), np.float32([[0, 0, 0, 0], _box(v == 2), _box(v == 3)]))


def test_boxes_from_masks_match_numpy_on_random_masks():
    rng = np.random.default_rng(0)
    masks = rng.random((17, 23, 5)) < 0.02
    masks[:, :, 3] = False
    masks[:, :, 4] = False
    masks[4, 9, 4] = True  # a single pixel: l == r, t == b
    boxes = boxes_from_masks(torch.from_numpy(masks)).numpy()
    for k in range(5):
        expected = [0, 0, 0, 0] if not masks[:, :, k].any() else _box(masks[:, :, k])
        np.testing.assert_array_equal(boxes[k], np.float32(expected))
    assert boxes[4].tolist() == pytest.approx([9 / 23, 4 / 17, 9 / 23, 4 / 17])
    assert boxes_from_masks(torch.zeros(8, 8, 0, dtype=torch.bool)).shape == (0, 4)


def test_bad_requests_name_what_is_wrong(tmp_path):
    record = _coco_record()
    del record["clazz"]
    _write(tmp_path, "coco", [record])
    with pytest.raises(CorruptDataError, match=r"coco/val\.lmdb: key b'000000': record lacks 'clazz'"):
        open_split(tmp_path, "coco", "val", extra=("clazz",))[0]
    with pytest.raises(DataError, match="'colour' are unknown; valid: clazz, bbox"):
        open_split(tmp_path, "coco", "val", extra=("colour",))
    write_authors_lmdb(tmp_path / "voc" / "val.lmdb", [{"image": png(np.zeros((8, 8, 3), np.uint8)),
                                                        "segment": index_buf(np.ones((8, 8), np.uint8))}])
    with pytest.raises(DataError, match="dataset 'voc' has no object classes"):
        open_split(tmp_path, "voc", "val", extra=("bbox",))
    m = np.zeros((8, 8), np.uint8)
    m[2:4, 2:4] = 3
    _write(tmp_path, "clevrtex", [{"image": png(np.zeros((8, 8, 3), np.uint8)), "segment": m,
                                   "clazz": np.array([1, 2], np.uint8)}])
    with pytest.raises(CorruptDataError, match="segment index 3 exceeds the 2 entries of 'clazz'"):
        open_split(tmp_path, "clevrtex", "val", extra=("clazz",))[0]


def _sample(k, r=4):
    segment = torch.zeros(r, r, k + 1, dtype=torch.bool)
    for i in range(k + 1):
        segment[i % r, :, i] = True
    return {"image": torch.rand(3, r, r), "segment": segment,
            "clazz": torch.arange(1, k + 1), "bbox": torch.rand(k, 4)}


def test_collate_pads_segment_bbox_and_clazz_to_the_batch_max():
    a, b = _sample(1), _sample(3)
    batch = collate([a, b])
    assert batch["segment"].shape == (2, 4, 4, 4) and batch["bbox"].shape == (2, 3, 4)
    assert batch["clazz"].tolist() == [[1, 0, 0], [1, 2, 3]]
    assert torch.equal(batch["bbox"][0, :1], a["bbox"]) and not batch["bbox"][0, 1:].any()
    assert torch.equal(batch["segment"][0, :, :, :2], a["segment"]) and not batch["segment"][0, :, :, 2:].any()
    assert torch.equal(batch["bbox"][1], b["bbox"]) and torch.equal(batch["segment"][1], b["segment"])
    no_objects = {**_sample(0), "clazz": torch.zeros(0, dtype=torch.int64), "bbox": torch.zeros(0, 4)}
    assert collate([no_objects, a])["clazz"].tolist() == [[0], [1]]
    plain = collate([{k: s[k] for k in ("image", "segment")} for s in (a, b)])
    assert set(plain) == {"image", "segment"} and torch.equal(plain["segment"], batch["segment"])
