"""open_split end to end on files written the authors' way: decoded samples against crops and resizes
computed independently (numpy slicing + cv2 nearest-exact), channel order per dataset, v3 ≡ v4,
pre-v3 refusals, and errors naming the file and key."""

import cv2
import numpy as np
import pytest
import torch
from data_helpers import index_buf, jpeg, png, random_image, write_authors_lmdb

from harness.data import DATASETS, open_split
from harness.data.errors import CorruptDataError, DataFileMissingError, UnsupportedFormatError
from harness.data.transforms import IMAGENET_MEAN, IMAGENET_STD

H, W = 240, 320  # ClevrTex's native size; the val crop keeps columns 40..279


def _val_map(index_map, size=256):
    """Centre square then nearest-exact, computed without harness code."""
    h, w = index_map.shape
    s = min(h, w)
    t, l = (h - s) // 2, (w - s) // 2
    return cv2.resize(index_map[t:t + s, l:l + s], (size, size), interpolation=cv2.INTER_NEAREST_EXACT)


def _write(tmp_path, dataset, split, records, ext=".webp"):
    for r in records:
        r["segment"] = index_buf(r["segment"], ext)
    return write_authors_lmdb(tmp_path / dataset / f"{split}.lmdb", records)


def _clevrtex_map():
    m = np.zeros((H, W), np.uint8)
    m[50:100, 0:30] = 1  # left of the crop: its channel stays, empty
    m[100:180, 120:200] = 2
    m[10:60, 300:320] = 3  # right of the crop and the largest index: its channel disappears
    return m


def test_clevrtex_sample(tmp_path):
    rng = np.random.default_rng(0)
    image = random_image(rng, H, W)
    index_map = _clevrtex_map()
    _write(tmp_path, "clevrtex", "val", [{"image": png(image), "segment": index_map,
                                          "depth": index_buf(np.zeros((H, W), np.uint8))}])
    ds = open_split(tmp_path, "clevrtex", "val")
    sample = ds[0]
    assert set(sample) == {"image", "segment"}
    assert sample["image"].shape == (3, 256, 256) and sample["image"].dtype == torch.float32
    expected = _val_map(index_map)
    assert sample["segment"].shape == (256, 256, 3) and sample["segment"].dtype == torch.bool
    for i in range(3):
        np.testing.assert_array_equal(sample["segment"][:, :, i].numpy(), expected == i)
    assert not sample["segment"][:, :, 1].any()
    assert ds.keys == ["000000"] and ds.path == tmp_path / "clevrtex" / "val.lmdb" and len(ds) == 1
    assert ds.format == "v3" and ds.resolution == 256


def test_image_channels_are_rgb_and_normalised(tmp_path):
    image = np.zeros((256, 256, 3), np.uint8)
    image[..., 0] = 255  # pure red
    _write(tmp_path, "clevrtex", "val", [{"image": png(image), "segment": np.zeros((256, 256), np.uint8)}])
    out = open_split(tmp_path, "clevrtex", "val")[0]["image"]
    expected = [(v - m) / s for v, m, s in zip((255, 0, 0), IMAGENET_MEAN, IMAGENET_STD)]
    torch.testing.assert_close(out[:, 7, 9], torch.tensor(expected))


def test_coco_sample_stuff_first_things_in_order_void_nowhere(tmp_path):
    m = np.zeros((H, W), np.uint8)  # rows 0..9 stay VOID
    m[10:120] = 1  # stuff
    m[60:150, 100:180] = 2  # thing
    m[200:] = 3  # stuff
    m[150:200, 0:30] = 4  # thing left of the crop: dropped with its isthing entry
    m[160:190, 200:240] = 5  # thing
    record = {"image": jpeg(random_image(np.random.default_rng(1), H, W)), "segment": m,
              "clazz": np.array([184, 1, 190, 3, 44], np.uint8), "isthing": np.array([0, 1, 0, 1, 1], bool)}
    _write(tmp_path, "coco", "val", [record])
    segment = open_split(tmp_path, "coco", "val")[0]["segment"].numpy()
    v = _val_map(m)
    assert segment.shape == (256, 256, 3)
    np.testing.assert_array_equal(segment[:, :, 0], (v == 1) | (v == 3))
    np.testing.assert_array_equal(segment[:, :, 1], v == 2)
    np.testing.assert_array_equal(segment[:, :, 2], v == 5)
    np.testing.assert_array_equal(~segment.any(axis=2), v == 0)  # VOID (and the dropped thing's spot: none)
    assert (v == 0).any()


def test_voc_sample_boundary_nowhere_background_first(tmp_path):
    m = np.ones((H, W), np.uint8)  # background = index 1
    m[80:160, 120:200] = 2
    m[40:100, 290:320] = 3  # right of the crop: dropped
    for box in ((80, 160, 120, 200), (40, 100, 290, 320)):  # 3-pixel boundary outlines = index 0
        t, b, l, r = box
        m[max(t - 3, 0):t, l:r] = m[b:b + 3, l:r] = 0
        m[t:b, max(l - 3, 0):l] = m[t:b, r:r + 3] = 0
    _write(tmp_path, "voc", "val", [{"image": jpeg(random_image(np.random.default_rng(2), H, W)), "segment": m}])
    segment = open_split(tmp_path, "voc", "val")[0]["segment"].numpy()
    v = _val_map(m)
    assert segment.shape == (256, 256, 2)
    np.testing.assert_array_equal(segment[:, :, 0], v == 1)
    np.testing.assert_array_equal(segment[:, :, 1], v == 2)
    np.testing.assert_array_equal(~segment.any(axis=2), v == 0)


def test_v3_and_v4_files_give_identical_samples(tmp_path):
    rng = np.random.default_rng(3)
    images = [random_image(rng, H, W) for _ in range(2)]
    for ext, root in ((".webp", tmp_path / "v3"), (".png", tmp_path / "v4")):
        _write(root, "clevrtex", "val", [{"image": png(i), "segment": _clevrtex_map()} for i in images], ext)
    v3, v4 = open_split(tmp_path / "v3", "clevrtex", "val"), open_split(tmp_path / "v4", "clevrtex", "val")
    assert (v3.format, v4.format) == ("v3", "v4")
    for i in range(2):
        assert torch.equal(v3[i]["image"], v4[i]["image"]) and torch.equal(v3[i]["segment"], v4[i]["segment"])


def test_train_items_have_the_contract_shapes(tmp_path):
    _write(tmp_path, "voc", "train", [{"image": jpeg(random_image(np.random.default_rng(4), H, W)),
                                       "segment": np.where(np.arange(W)[None] % 50 < 3, 0, 1 + np.arange(W)[None]
                                                           // 100).repeat(H, 0).astype(np.uint8)}])
    torch.manual_seed(0)
    ds = open_split(tmp_path, "voc", "train", train=True)
    for _ in range(5):
        sample = ds[0]
        assert sample["image"].shape == (3, 256, 256) and sample["image"].dtype == torch.float32
        seg = sample["segment"]
        assert seg.shape[:2] == (256, 256) and seg.dtype == torch.bool and seg.any(dim=(0, 1)).all()


def test_synthetic_split_is_evaluated_at_its_stored_size(tmp_path):
    from harness.data.codec import decode_image, decode_index_map
    from harness.data.lmdb_io import LmdbReader
    from harness.data.synthetic import SynthConfig, write_split

    path = write_split(tmp_path / "synthetic" / "val.lmdb", SynthConfig(resolution=24, seed=3), "val", 4)
    ds = open_split(tmp_path, "synthetic", "val")
    assert ds.resolution == 24 and ds.format == "v3"
    reader = LmdbReader(path)
    for i, key in enumerate(reader.keys):
        record = reader.get(key)
        image, index_map = decode_image(record["image"]), decode_index_map(record["segment"])
        sample = ds[i]
        expected = (image.transpose(2, 0, 1) - np.array(IMAGENET_MEAN)[:, None, None]) / np.array(IMAGENET_STD)[
            :, None, None]
        np.testing.assert_allclose(sample["image"].numpy(), expected, atol=1e-5)
        assert sample["segment"].shape == (24, 24, index_map.max() + 1)
        np.testing.assert_array_equal(sample["segment"].numpy().argmax(axis=2), index_map)


# ---- pre-v3 refusals ----

def test_pre_v3_coco_without_isthing_is_refused(tmp_path):
    m = np.zeros((8, 8), np.uint8)
    m[2:5] = 1
    path = _write(tmp_path, "coco", "val", [{"image": jpeg(np.zeros((8, 8, 3), np.uint8)), "segment": m,
                                             "bbox": np.zeros((1, 4), np.float32), "clazz": np.array([1], np.uint8)}])
    with pytest.raises(UnsupportedFormatError) as e:
        open_split(tmp_path, "coco", "val")
    msg = str(e.value)
    assert str(path) in msg and "pre-v3" in msg and "isthing" in msg
    assert "python -m harness data convert coco --src RAW --out DATA_DIR" in msg


def test_vvo_era_coco_with_bbox_and_isthing_is_accepted(tmp_path):
    m = np.zeros((8, 8), np.uint8)
    m[2:5] = 1
    _write(tmp_path, "coco", "val", [{"image": jpeg(np.zeros((8, 8, 3), np.uint8)), "segment": m,
                                      "bbox": np.zeros((1, 4), np.float32), "clazz": np.array([1], np.uint8),
                                      "isthing": np.array([True])}])
    assert open_split(tmp_path, "coco", "val")[0]["segment"].shape == (256, 256, 2)


def _voc_records(background_is_zero, n=5):
    records = []
    for i in range(n):
        m = np.full((60, 80), 0 if background_is_zero else 1, np.uint8)
        m[20:40, 20 + i:50 + i] = 2
        if not background_is_zero:
            m[18:20, 18 + i:52 + i] = m[40:42, 18 + i:52 + i] = 0  # thin outlines
        records.append({"image": jpeg(np.zeros((60, 80, 3), np.uint8)), "segment": m})
    return records


def test_pre_v3_voc_with_background_as_index_0_is_refused(tmp_path):
    path = _write(tmp_path, "voc", "val", _voc_records(background_is_zero=True))
    with pytest.raises(UnsupportedFormatError) as e:
        open_split(tmp_path, "voc", "val")
    msg = str(e.value)
    assert str(path) in msg and "pre-v3" in msg and "index 0 covers" in msg
    assert "python -m harness data convert voc --src RAW --out DATA_DIR" in msg


def test_v3_voc_with_thin_outlines_is_accepted(tmp_path):
    _write(tmp_path, "voc", "val", _voc_records(background_is_zero=False))
    assert len(open_split(tmp_path, "voc", "val")) == 5


# ---- errors ----

def test_missing_split_names_the_path_and_where_to_get_it(tmp_path):
    with pytest.raises(DataFileMissingError) as e:
        open_split(tmp_path, "clevrtex", "val")
    msg = str(e.value)
    assert str(tmp_path / "clevrtex" / "val.lmdb") in msg
    assert "https://github.com/Genera1Z/VQ-VFM-OCL/releases/tag/dataset-clevrtex" in msg
    assert DATASETS.get("clevrtex").make_command in msg


def test_missing_synthetic_split_says_how_to_generate_it(tmp_path):
    with pytest.raises(DataFileMissingError, match="python -m harness data synth --out DATA_DIR"):
        open_split(tmp_path, "synthetic", "train")


def test_undecodable_image_and_segment_name_file_and_key(tmp_path):
    good = np.zeros((8, 8), np.uint8)
    path = write_authors_lmdb(tmp_path / "clevrtex" / "val.lmdb", [
        {"image": png(np.zeros((8, 8, 3), np.uint8)), "segment": index_buf(good)},
        {"image": b"\x89PNG broken", "segment": index_buf(good)},
        {"image": png(np.zeros((8, 8, 3), np.uint8)), "segment": np.frombuffer(b"RIFF....WEBPxxxx", np.uint8)},
        {"image": png(np.zeros((8, 8, 3), np.uint8)), "segment": index_buf(np.zeros((4, 8), np.uint8))},
        {"image": png(np.zeros((8, 8, 3), np.uint8))},
    ])
    ds = open_split(tmp_path, "clevrtex", "val")
    ds[0]
    for i, what in ((1, "'image' does not decode"), (2, "'segment' does not decode"), (3, "differ in size"),
                    (4, "lacks 'segment'")):
        with pytest.raises(CorruptDataError, match=rf"{path}: key b'00000{i}': .*{what}"):
            ds[i]


def test_coco_index_beyond_isthing_is_reported(tmp_path):
    m = np.full((8, 8), 3, np.uint8)
    path = _write(tmp_path, "coco", "val", [{"image": jpeg(np.zeros((8, 8, 3), np.uint8)), "segment": m,
                                             "clazz": np.array([1], np.uint8), "isthing": np.array([True])}])
    with pytest.raises(CorruptDataError, match=rf"{path}: key b'000000': segment index 3 exceeds"):
        open_split(tmp_path, "coco", "val")[0]
