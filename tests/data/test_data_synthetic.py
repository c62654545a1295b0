"""The synthetic generator: deterministic from its seed, ClevrTex index semantics, masks that are exactly
the visible objects (checked from the pixels alone), parameters recorded in the file."""

import colorsys
import math

import numpy as np
import pytest

from harness.data.card import data_card
from harness.data.codec import decode_image, decode_index_map
from harness.data.lmdb_io import LmdbReader
from harness.data.synthetic import GENERATOR_VERSION, SynthConfig, generate, write_split, write_synthetic


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    config = SynthConfig(resolution=16)
    a = write_synthetic(tmp_path / "a", config, train=30, val=10)
    b = write_synthetic(tmp_path / "b", config, train=30, val=10)
    c = write_synthetic(tmp_path / "c", SynthConfig(resolution=16, seed=1), train=30, val=10)
    for split in ("train", "val"):
        assert a[split].read_bytes() == b[split].read_bytes()
        card_a, card_c = data_card(a[split]), data_card(c[split])
        assert card_a["file_sha256"] == data_card(b[split])["file_sha256"]
        assert card_a["keys_sha256"] == card_c["keys_sha256"]  # same keys 000000.. ⇒ same key hash
        assert card_a["file_sha256"] != card_c["file_sha256"]


def test_train_and_val_come_from_different_seeds():
    config = SynthConfig(resolution=16)
    train, _ = generate(config, "train", 0, 5)
    val, _ = generate(config, "val", 0, 5)
    assert not np.array_equal(train, val)


def test_an_image_does_not_depend_on_its_chunk():
    config = SynthConfig(resolution=20)
    images, maps = generate(config, "val", 0, 9)
    part_images, part_maps = generate(config, "val", 4, 3)
    np.testing.assert_array_equal(part_images, images[4:7])
    np.testing.assert_array_equal(part_maps, maps[4:7])


def test_index_semantics_background_zero_objects_consecutive():
    config = SynthConfig(resolution=32)
    _, maps = generate(config, "train", 0, 300)
    counts = []
    for m in maps:
        values = np.unique(m)
        k = values.max()
        assert values.tolist() == list(range(k + 1)) or values.tolist() == list(range(1, k + 1))
        counts.append(k)
    assert min(counts) >= 1 and max(counts) == config.max_objects
    assert np.mean(np.array(counts) >= config.min_objects) > 0.97  # objects are rarely hidden completely


def test_objects_are_large_but_within_the_radius_range():
    config = SynthConfig(resolution=32)
    _, maps = generate(config, "train", 0, 300)
    areas = np.array([np.bincount(m.ravel())[1:] for m in maps], dtype=object)
    areas = np.concatenate(list(areas))
    areas = areas[areas > 0]
    r_max = config.max_radius * 32
    assert areas.max() <= math.pi * (r_max + 1) ** 2  # no shape is larger than its circle
    assert np.median(areas) >= 0.05 * 32 * 32  # typical objects cover several % of the image


def _saturation(image):
    rgb = image.reshape(-1, 3) / 255
    return np.array([colorsys.rgb_to_hsv(*p)[1] for p in rgb]).reshape(image.shape[:2])


def test_masks_are_exactly_the_visible_objects():
    """Without noise, objects are saturated (≥ 0.6) and the background is not (≤ 0.12), so the pixels alone
    say where the objects are; within one object there are at most two colours (plain and texture)."""
    config = SynthConfig(resolution=24, noise_std=0.0, texture_prob=0.5)
    images, maps = generate(config, "val", 0, 40)
    for image, index_map in zip(images, maps):
        saturated = _saturation(image) > 0.36
        np.testing.assert_array_equal(saturated, index_map > 0)
        plain = []
        for k in range(1, index_map.max() + 1):
            colours = np.unique(image[index_map == k], axis=0)
            assert len(colours) <= 2
            plain.append(colours.max(axis=0).astype(int))
        # Objects differ in colour from each other.
        for i in range(len(plain)):
            for j in range(i):
                assert np.abs(plain[i] - plain[j]).max() >= 20


def test_some_objects_are_textured():
    config = SynthConfig(resolution=32, noise_std=0.0, texture_prob=0.5)
    images, maps = generate(config, "val", 0, 30)
    two_tone = sum(len(np.unique(img[m == k], axis=0)) == 2
                   for img, m in zip(images, maps) for k in range(1, m.max() + 1))
    assert two_tone >= 10


def test_non_square_and_other_resolutions():
    images, maps = generate(SynthConfig(resolution=24, width=40), "train", 0, 3)
    assert images.shape == (3, 24, 40, 3) and images.dtype == np.uint8
    assert maps.shape == (3, 24, 40) and maps.dtype == np.uint8


def test_file_records_decode_to_the_generated_arrays_and_carry_the_parameters(tmp_path):
    config = SynthConfig(resolution=16, seed=5)
    path = write_split(tmp_path / "val.lmdb", config, "val", 7)
    reader = LmdbReader(path)
    images, maps = generate(config, "val", 0, 7)
    assert reader.keys == [f"{i:06d}".encode() for i in range(7)]
    for key, image, index_map in zip(reader.keys, images, maps):
        record = reader.get(key)
        np.testing.assert_array_equal(decode_image(record["image"]), image)
        np.testing.assert_array_equal(decode_index_map(record["segment"]), index_map)
    assert reader.meta["generator"] == {**config.__dict__, "version": GENERATOR_VERSION}
    card = data_card(path)
    assert card["format"] == "synthetic-v3" and card["generator"]["seed"] == 5 and card["records"] == 7


@pytest.mark.parametrize("kwargs", [{"min_objects": 0}, {"min_objects": 5, "max_objects": 4},
                                    {"min_radius": 0.3, "max_radius": 0.2}, {"resolution": 2}])
def test_bad_parameters_are_refused(kwargs):
    with pytest.raises(ValueError):
        SynthConfig(**kwargs)
