"""The `textured` generator: deterministic from its seed, ClevrTex index semantics plus a class per object,
objects of strongly varied size, and colours that do not tell objects from the background."""

import json
import math

import numpy as np
import pytest

import harness.cli
from harness.data import DATASETS, open_split
from harness.data.card import data_card
from harness.data.codec import decode_image, decode_index_map
from harness.data.lmdb_io import LmdbReader
from harness.data.synthetic import SynthConfig
from harness.data.synthetic import generate as generate_flat
from harness.data.textured import (
    NUM_CLASSES,
    SHAPES,
    SPLIT_IDS,
    TEXTURES,
    TexturedConfig,
    _scene,
    generate,
    generator_params,
    write_split,
    write_textured,
)

# Without pixel noise and brightness ramp every pixel is exactly a palette colour or a gradient blend.
CLEAN = TexturedConfig(noise_std=0.0, brightness=0.0)


def _scenes(config, split, count):
    return [_scene(config, np.random.default_rng([config.seed, SPLIT_IDS[split], i])) for i in range(count)]


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    config = TexturedConfig(resolution=56)
    a = write_textured(tmp_path / "a", config, train=20, val=6)
    b = write_textured(tmp_path / "b", config, train=20, val=6)
    c = write_textured(tmp_path / "c", TexturedConfig(resolution=56, seed=1), train=20, val=6)
    for split in ("train", "val"):
        assert a[split].read_bytes() == b[split].read_bytes()
        assert data_card(a[split])["file_sha256"] != data_card(c[split])["file_sha256"]


def test_an_image_does_not_depend_on_its_chunk_and_splits_differ():
    config = TexturedConfig(resolution=56)
    images, maps, classes = generate(config, "val", 0, 9)
    part_images, part_maps, part_classes = generate(config, "val", 4, 3)
    np.testing.assert_array_equal(part_images, images[4:7])
    np.testing.assert_array_equal(part_maps, maps[4:7])
    assert [c.tolist() for c in part_classes] == [c.tolist() for c in classes[4:7]]
    assert not np.array_equal(generate(config, "train", 0, 9)[0], images)


def test_card_records_and_registration(tmp_path):
    config = TexturedConfig(resolution=28, seed=5)
    path = write_split(tmp_path / "textured" / "val.lmdb", config, "val", 7)
    images, maps, classes = generate(config, "val", 0, 7)
    reader = LmdbReader(path)
    for key, image, index_map, clazz in zip(reader.keys, images, maps, classes):
        record = reader.get(key)
        np.testing.assert_array_equal(decode_image(record["image"]), image)
        np.testing.assert_array_equal(decode_index_map(record["segment"]), index_map)
        assert record["clazz"].dtype == np.uint8 and record["clazz"].tolist() == clazz.tolist()
    card = data_card(path)
    assert card["format"] == "textured-v3" and card["dataset"] == "textured" and card["records"] == 7
    assert card["fields"] == ["clazz", "image", "segment"]
    assert card["generator"] == generator_params(config)
    assert card["generator"]["min_radius"] == config.min_radius and card["generator"]["textures"] == list(TEXTURES)

    spec = DATASETS.get("textured")
    assert spec.num_slots == TexturedConfig().max_objects + 1 == 11 and "clazz" in spec.fields
    split = open_split(tmp_path, "textured", "val")
    assert split.resolution == 28  # evaluated at the generated size
    item = split[0]
    assert item["image"].shape == (3, 28, 28)
    assert item["segment"].shape == (28, 28, int(maps[0].max()) + 1)


def test_object_counts_and_sizes():
    config = TexturedConfig()
    scenes = _scenes(config, "train", 300)
    counts = np.array([s["k"] for s in scenes])
    assert counts.min() == config.min_objects and counts.max() == config.max_objects
    radii = np.concatenate([s["radius"] for s in scenes]) / config.resolution
    assert radii.min() >= config.min_radius and radii.max() <= config.max_radius
    # Log-uniform: as many objects in the lower as in the upper half of the log range.
    middle = math.sqrt(config.min_radius * config.max_radius)
    assert 0.4 < np.mean(radii < middle) < 0.6

    _, maps, _ = generate(config, "train", 0, 300)
    visible = np.array([m.max() for m in maps])
    assert visible.max() <= config.max_objects and np.mean(visible >= config.min_objects) > 0.97
    areas = np.concatenate([np.bincount(m.ravel())[1:] for m in maps])
    assert areas.min() > 0  # indices are consecutive: no index without pixels
    side = config.resolution
    assert areas.max() <= math.pi * (config.max_radius * side + 1) ** 2
    assert np.percentile(areas, 90) > 10 * np.percentile(areas, 10)  # strongly varied sizes


def _unoccluded(scene, j, side):
    """Object j lies inside the image and no later object's circumscribed circle reaches it."""
    (cx, cy), r = scene["centres"][j], scene["radius"][j] * 1.3
    if min(cx, cy) < r + 1 or max(cx, cy) > side - r - 1:
        return False
    return all(np.hypot(*(scene["centres"][i] - scene["centres"][j])) > r + 1.3 * scene["radius"][i] + 1
               for i in range(j + 1, scene["k"]))


# Shape areas / r²: circle π, square (2 · 0.85)², triangle of inradius 0.65: 3√3 · 0.65².
SHAPE_AREA = {"circle": math.pi, "square": 1.7 ** 2, "triangle": 3 * math.sqrt(3) * 0.65 ** 2}


def test_classes_match_the_segments():
    """clazz has one entry per index ≥ 1; in scenes where every object is visible (index i = object i−1 in
    painting order) its shape is the pixels' (for whole objects, from the area over r²) and its texture too
    (gradients blend, the other textures show only palette colours)."""
    config, side = TexturedConfig(noise_std=0.0, brightness=0.0, resolution=224), 224
    images, maps, classes = generate(config, "val", 0, 40)
    checked_shapes = checked_textures = 0
    for image, index_map, clazz, scene in zip(images, maps, classes, _scenes(config, "val", 40)):
        assert clazz.dtype == np.uint8 and len(clazz) == index_map.max()
        assert clazz.min() >= 1 and clazz.max() <= NUM_CLASSES
        shape, texture = (clazz.astype(int) - 1) // len(TEXTURES), (clazz.astype(int) - 1) % len(TEXTURES)
        assert not np.any(texture == scene["background_texture"])  # objects never wear the background's texture
        if len(clazz) != scene["k"]:
            continue  # an object is hidden: indices no longer follow the scene's objects
        assert shape.tolist() == scene["shape"].tolist() and texture.tolist() == scene["texture"].tolist()
        palette = {tuple(c) for c in np.round(scene["colours"].reshape(-1, 3) * 255).astype(int)}
        for j in range(scene["k"]):
            mask = index_map == j + 1
            colours = {tuple(c) for c in image[mask].astype(int)}
            if TEXTURES[texture[j]] != "gradient":
                assert colours <= palette
                checked_textures += 1
            elif mask.sum() > 400:
                assert len(colours) > 4
                checked_textures += 1
            if _unoccluded(scene, j, side):
                expected = SHAPE_AREA[SHAPES[shape[j]]] * scene["radius"][j] ** 2
                assert mask.sum() == pytest.approx(expected, rel=0.05)
                checked_shapes += 1
    assert checked_shapes >= 20 and checked_textures >= 150


def _histogram(pixels):
    """Colour histogram with 8 bins a channel, normalised."""
    q = pixels.astype(int) // 32
    h = np.bincount((q[:, 0] * 8 + q[:, 1]) * 8 + q[:, 2], minlength=512).astype(float)
    return h / h.sum()


def _overlap(images, maps):
    return np.mean([np.minimum(_histogram(x[m == 0]), _histogram(x[m > 0])).sum() for x, m in zip(images, maps)])


def test_objects_and_background_share_their_colours():
    """Histogram intersection of object and background pixel colours: large for `textured`, none for the flat
    `synthetic` scenes, whose objects colour alone separates."""
    images, maps, _ = generate(TexturedConfig(), "val", 0, 60)
    flat_images, flat_maps = generate_flat(SynthConfig(resolution=112), "val", 0, 60)
    assert _overlap(images, maps) > 0.25
    assert _overlap(flat_images, flat_maps) < 0.02
    # Every object is drawn in two colours of its scene's palette, most share one with the background.
    scenes = _scenes(CLEAN, "val", 60)
    shared = [len({tuple(c) for c in s["colours"][j]} & {tuple(c) for c in s["colours"][-1]}) > 0
              for s in scenes for j in range(s["k"])]
    assert np.mean(shared) > 0.7


@pytest.mark.parametrize("kwargs", [{"min_objects": 0}, {"min_objects": 5, "max_objects": 4},
                                    {"min_radius": 0.3, "max_radius": 0.2}, {"resolution": 4}, {"palette": 1},
                                    {"min_period": 0.0}, {"background_period": (0.2, 0.1)}])
def test_bad_parameters_are_refused(kwargs):
    with pytest.raises(ValueError):
        TexturedConfig(**kwargs)


def test_synth_command_makes_textured(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(harness.cli, "VERBS", ("data",))
    code = harness.cli.main(["data", "synth", "--dataset", "textured", "--out", str(tmp_path), "--train", "3",
                             "--val", "2", "--seed", "4"])
    cards = json.loads(capsys.readouterr().out)
    assert code == 0 and cards["val"]["format"] == "textured-v3"
    assert cards["val"]["generator"] == generator_params(TexturedConfig(seed=4))  # default size 112
    assert cards["train"]["records"] == 3 and (tmp_path / "textured" / "train.lmdb").is_file()
    code = harness.cli.main(["data", "synth", "--dataset", "textured", "--out", str(tmp_path), "--resolution", "4"])
    assert code != 0 and "error: textured data:" in capsys.readouterr().err
