"""Training on cached frozen-backbone features (harness.run.train_data): the flip augmentation's mirror images have
their own features, the cache is computed once, and a cached run trains exactly as the uncached one."""

import os
import random

import torch
from tiny_run import TINY

from harness.data import open_split
from harness.nn.checkpoint import read_weights, save_weights
from harness.registry import get_config
from harness.run.evaluate import forward_precision
from harness.run.feature_cache import ensure_features, frozen_backbone
from harness.run.seeding import PerSampleSeeded
from harness.run.train import build_model, train
from harness.run.train_data import FlipAugmented, training_split

CPU = torch.device("cpu")


def test_a_mirrored_split_is_the_val_transform_flipped_left_right(synth_dir):
    plain, mirrored = open_split(synth_dir, "synthetic", "val"), open_split(synth_dir, "synthetic", "val", mirror=True)
    for i in (0, 5):
        assert torch.equal(mirrored[i]["image"], plain[i]["image"].flip(-1))
        assert torch.equal(mirrored[i]["segment"], plain[i]["segment"].flip(1))  # (R, R, S): width is dim 1


def test_flip_picks_the_mirror_per_sample_seed_about_half_the_time(synth_dir):
    plain, mirrored = open_split(synth_dir, "synthetic", "train"), open_split(synth_dir, "synthetic", "train",
                                                                             mirror=True)
    data = PerSampleSeeded(FlipAugmented(plain, mirrored), seed=4)
    picks = [torch.equal(data[i]["image"], mirrored[i]["image"]) for i in range(len(plain))]
    again = [torch.equal(data[i]["image"], mirrored[i]["image"]) for i in range(len(plain))]
    assert picks == again and 0.25 < sum(picks) / len(picks) < 0.75
    state = random.getstate()
    data[0]
    assert random.getstate() == state  # the caller's stream is untouched


def test_cached_features_of_mirror_images_are_their_own_and_computed_once(synth_dir, tmp_path):
    config = get_config("dias", "synthetic", TINY)
    model = build_model(config, CPU).eval()
    backbone = frozen_backbone(model)
    mirrored = open_split(synth_dir, "synthetic", "val", mirror=True)
    cached = ensure_features(tmp_path, backbone, mirrored, device=CPU, amp="off", batch_size=8)
    plain = open_split(synth_dir, "synthetic", "val")
    with torch.no_grad(), forward_precision(CPU, "off"):  # the first batch of 8, as the cache computed it
        own = backbone(torch.stack([mirrored[i]["image"] for i in range(8)]))[3]
        flipped = backbone(torch.stack([plain[i]["image"] for i in range(8)]))[3].flip(-1)
    assert torch.equal(cached[3]["feature"], own) and not torch.allclose(own, flipped, atol=1e-3)
    files = sorted(tmp_path.glob("*.lmdb"))
    stamp = files[0].stat().st_mtime_ns
    ensure_features(tmp_path, backbone, mirrored, device=CPU, amp="off", batch_size=8)
    assert sorted(tmp_path.glob("*.lmdb")) == files and files[0].stat().st_mtime_ns == stamp


def test_training_on_cached_features_equals_training_on_the_images(synth_dir, tmp_path):
    """Bit for bit on CPU: the cached features are the backbone's outputs, and computing them draws nothing from the
    random stream that training's slot noise and decoder orders come from."""
    config = get_config("dias", "synthetic", [*TINY, "train.steps=4", "train.val_interval=4", "train.augment=flip"])
    torch.manual_seed(0)
    save_weights(build_model(config, CPU), tmp_path / "init.pth")  # what training starts from (seeded as train)
    train(config, data_dir=synth_dir, run_dir=tmp_path / "images", seed=0, progress=False)
    train(config, data_dir=synth_dir, run_dir=tmp_path / "cached", seed=0, progress=False,
          feature_cache=tmp_path / "features")
    assert len(os.listdir(tmp_path / "features")) >= 3  # train, its mirror, val
    a, b = read_weights(tmp_path / "images" / "weights.pth"), read_weights(tmp_path / "cached" / "weights.pth")
    init = read_weights(tmp_path / "init.pth")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], init[k]) for k in a)  # and training did change the weights
    loss = [line.split(",")[2] for line in (tmp_path / "cached" / "train.csv").read_text().splitlines()[1:]]
    assert loss == [line.split(",")[2] for line in (tmp_path / "images" / "train.csv").read_text().splitlines()[1:]]


def test_the_authors_augmentation_never_reads_cached_features(synth_dir, tmp_path):
    config = get_config("dias", "synthetic", TINY)
    model = build_model(config, CPU)
    split, _ = training_split(config, synth_dir, backbone=frozen_backbone(model), feature_cache=tmp_path, device=CPU)
    assert "feature" not in split[0] and list(tmp_path.iterdir()) == []
