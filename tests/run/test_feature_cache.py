"""Frozen-backbone feature cache: exact round trip, a new file for every change of what the features depend on,
stale or foreign files never read, and cached evaluation of a DIAS checkpoint equal to uncached, image by image."""

import dataclasses
import json
import shutil

import pytest
import torch
from tiny_run import TINY

from harness.cli import main
from harness.data import SynthConfig, open_split, write_synthetic
from harness.data.lmdb_io import LmdbReader, LmdbWriter
from harness.engine import plan
from harness.engine.discovery import Runner
from harness.nn import onednn
from harness.nn.checkpoint import save_weights
from harness.nn.onednn import onednn_available
from harness.registry import get_config
from harness.run.cell import evaluate_cell
from harness.run.feature_cache import (
    FeatureCacheError,
    cache_identity,
    cache_path,
    frozen_backbone,
    module_sha256,
    use_feature_cache,
)
from harness.run.train import build_model
from harness.tables import Row, SynthData, Table

CPU = torch.device("cpu")


@pytest.fixture
def dias(tiny_config):
    torch.manual_seed(0)
    return build_model(tiny_config, CPU, initial=False).eval()


@pytest.fixture
def checkpoint(tmp_path, tiny_config):
    torch.manual_seed(0)
    path = tmp_path / "dias.pth"
    save_weights(build_model(tiny_config, CPU), path)
    return path


def identity_of(model, dataset, **kw):
    args = dict(device=CPU, amp="off", batch_size=8) | kw
    return cache_identity(frozen_backbone(model), dataset, **args)


def write_by_hand(cache_dir, model, dataset, batches, storage="float32"):
    """Fill a cache by running the backbone over the split in chunks of the given sizes; returns the outputs."""
    outputs = []
    with use_feature_cache(cache_dir, model, dataset, device=CPU, amp="off", batch_size=8,
                           storage=storage) as (_, use):
        start = 0
        with torch.inference_mode():
            for size in batches:
                images = torch.stack([dataset[i]["image"] for i in range(start, start + size)])
                outputs.append(model.encode_backbone(images))
                start += size
    assert use.status == "written"
    return torch.cat(outputs), use.path


def test_round_trip_returns_the_backbone_outputs_bit_for_bit(tmp_path, synth_dir, dias):
    val = open_split(synth_dir, "synthetic", "val")
    computed, path = write_by_hand(tmp_path, dias, val, [5, 8, 3])
    with use_feature_cache(tmp_path, dias, val, device=CPU, amp="off", batch_size=8) as (cached, use):
        assert use.status == "hit" and use.path == path
        read = torch.stack([cached[i]["feature"] for i in range(len(val))])
        assert torch.equal(cached[3]["image"], val[3]["image"]) and torch.equal(cached[3]["segment"], val[3]["segment"])
    assert read.dtype == computed.dtype == torch.float32 and torch.equal(read, computed)
    assert LmdbReader(path).keys == [k.encode() for k in val.keys]  # stored under the split's record keys


def test_float16_storage_rounds_to_half_and_restores_the_dtype(tmp_path, synth_dir, dias):
    val = open_split(synth_dir, "synthetic", "val")
    computed, path16 = write_by_hand(tmp_path, dias, val, [16], storage="float16")
    with use_feature_cache(tmp_path, dias, val, device=CPU, amp="off", batch_size=8, storage="float16") as (cached, _):
        read = torch.stack([cached[i]["feature"] for i in range(len(val))])
    assert read.dtype == torch.float32 and torch.equal(read, computed.half().float())
    assert not torch.equal(read, computed)  # float16 really rounds: the float32 default is the exact one
    assert path16 != cache_path(tmp_path, identity_of(dias, val))


def test_backbone_output_does_not_depend_on_the_batch_on_cpu(synth_dir, dias):
    """An image's features alone or in any batch agree to float rounding — not always bit for bit: CPU matmul
    kernels block differently with the batch size (seen with the 256-token grid), which is why a cache is written
    by a whole evaluation in its own batches and `limit`ed reads are compared on metrics, not assumed exact."""
    val = open_split(synth_dir, "synthetic", "val")
    images = torch.stack([val[i]["image"] for i in range(len(val))])
    with torch.inference_mode():
        whole = dias.encode_backbone(images)
        alone = torch.cat([dias.encode_backbone(images[i:i + 1]) for i in range(len(val))])
        split = torch.cat([dias.encode_backbone(images[:5]), dias.encode_backbone(images[5:])])
    assert torch.allclose(whole, alone, atol=1e-5) and torch.allclose(whole, split, atol=1e-5)


def test_every_input_of_the_features_changes_the_file(tmp_path, synth_dir, dias, monkeypatch):
    if onednn_available():
        monkeypatch.setenv(onednn.ENV, "onednn")
    val = open_split(synth_dir, "synthetic", "val")
    base = identity_of(dias, val)
    other_data = tmp_path / "other"
    write_synthetic(other_data, SynthConfig(resolution=32, seed=4), train=1, val=16)
    perturbed = build_model(get_config("dias", "synthetic", TINY), CPU, initial=False).eval()
    perturbed.load_state_dict(dias.state_dict())
    with torch.no_grad():
        perturbed.encode_backbone[1].hf.encoder.layer[0].mlp.fc1.weight[0, 0] += 1e-6
    changed = {
        "weights": identity_of(perturbed, val),
        "data card": identity_of(dias, open_split(other_data, "synthetic", "val")),
        "transform": identity_of(dias, open_split(synth_dir, "synthetic", "val", resolution=28)),
        "autocast": identity_of(dias, val, amp="bf16"),
        "batch size": identity_of(dias, val, batch_size=4),
        "storage": identity_of(dias, val, storage="float16"),
    }
    if onednn_available():  # oneDNN and PyTorch's BLAS round the linear layers differently
        with monkeypatch.context() as env:
            env.setenv(onednn.ENV, "blas")
            changed["linear kernels"] = identity_of(dias, val)
    paths = {name: cache_path(tmp_path, identity) for name, identity in changed.items()}
    assert len(set(paths.values()) | {cache_path(tmp_path, base)}) == len(changed) + 1, paths
    # what stays the same keeps the file: the same split elsewhere, fp16 autocast where it is a no-op (CPU)
    moved = tmp_path / "moved"
    shutil.copytree(synth_dir, moved)
    assert cache_path(tmp_path, identity_of(dias, open_split(moved, "synthetic", "val"))) == cache_path(tmp_path, base)
    assert identity_of(dias, val, amp="fp16") == base
    assert module_sha256(perturbed.encode_backbone) != module_sha256(dias.encode_backbone)


def test_a_changed_backbone_never_reads_the_stale_cache(tmp_path, synth_dir, dias):
    val = open_split(synth_dir, "synthetic", "val")
    _, stale = write_by_hand(tmp_path, dias, val, [16])
    with torch.no_grad():
        dias.encode_backbone[1].hf.embeddings.patch_embeddings.projection.weight.mul_(1.5)
    fresh, path = write_by_hand(tmp_path, dias, val, [16])  # a miss: written anew beside the stale file
    assert path != stale and stale.is_file()
    with use_feature_cache(tmp_path, dias, val, device=CPU, amp="off", batch_size=8) as (cached, use):
        assert use.path == path
        assert torch.equal(torch.stack([cached[i]["feature"] for i in range(len(val))]), fresh)


def test_a_file_whose_meta_disagrees_with_its_name_is_refused(tmp_path, synth_dir, dias):
    val = open_split(synth_dir, "synthetic", "val")
    _, path = write_by_hand(tmp_path, dias, val, [16])
    other = identity_of(dias, val, batch_size=4)
    shutil.copy(path, cache_path(tmp_path, other))
    with pytest.raises(FeatureCacheError, match="made for another"):
        with use_feature_cache(tmp_path, dias, val, device=CPU, amp="off", batch_size=4):
            pass


def test_augmented_splits_unfrozen_backbones_and_bad_storage_are_refused(tmp_path, synth_dir, dias, tiny_config):
    with pytest.raises(FeatureCacheError, match="train=False"):
        identity_of(dias, open_split(synth_dir, "synthetic", "train", train=True))
    val = open_split(synth_dir, "synthetic", "val")
    with pytest.raises(FeatureCacheError, match="storage"):
        identity_of(dias, val, storage="int8")
    unfrozen = dataclasses.replace(tiny_config, train=dataclasses.replace(tiny_config.train, freeze=[]))
    with pytest.raises(FeatureCacheError, match="not frozen"):
        frozen_backbone(build_model(unfrozen, CPU, initial=False))


def test_nothing_is_written_without_a_whole_pass(tmp_path, synth_dir, dias):
    val = open_split(synth_dir, "synthetic", "val")
    with use_feature_cache(tmp_path, dias, val, device=CPU, amp="off", batch_size=8, limit=8) as (_, use):
        dias.encode_backbone(torch.stack([val[i]["image"] for i in range(8)]))
    assert use.status.startswith("not written") and not use.path.exists()
    with pytest.raises(FeatureCacheError, match="8 of 16"):  # a pass that stopped early
        with use_feature_cache(tmp_path, dias, val, device=CPU, amp="off", batch_size=8):
            dias.encode_backbone(torch.stack([val[i]["image"] for i in range(8)]))
    with pytest.raises(RuntimeError, match="interrupted"):
        with use_feature_cache(tmp_path, dias, val, device=CPU, amp="off", batch_size=8):
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []  # no file, no temporary
    assert not dias.encode_backbone._forward_hooks  # the recording hook is gone


def test_a_pass_out_of_split_order_stops_instead_of_misfiling_features(tmp_path, synth_dir, dias):
    """A shuffled or sharded (data-parallel) pass would file features under the wrong keys: it is refused."""
    val = open_split(synth_dir, "synthetic", "val")
    with pytest.raises(FeatureCacheError, match="not item 8 of the split"):
        with use_feature_cache(tmp_path, dias, val, device=CPU, amp="off", batch_size=8):
            for order in (range(8), range(12, 16), range(8, 12)):  # the second batch comes out of order
                dias.encode_backbone(torch.stack([val[i]["image"] for i in order]))
    assert list(tmp_path.iterdir()) == []


def test_data_parallel_evaluations_read_but_do_not_write(tmp_path, synth_dir, dias, monkeypatch):
    val = open_split(synth_dir, "synthetic", "val")
    _, path = write_by_hand(tmp_path / "warm", dias, val, [16])
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    with use_feature_cache(tmp_path / "warm", dias, val, device=CPU, amp="off", batch_size=8) as (_, use):
        assert use.status == "hit" and use.path == path
    with use_feature_cache(tmp_path / "cold", dias, val, device=CPU, amp="off", batch_size=8) as (evaluated, use):
        assert evaluated is val and use.status.startswith("not written: each process")
    assert not (tmp_path / "cold").exists()


def test_methods_without_a_frozen_backbone_are_evaluated_as_they_are(tmp_path, synth_dir):
    sa = build_model(get_config("sa", "synthetic"), CPU, initial=False)
    val = open_split(synth_dir, "synthetic", "val")
    with use_feature_cache(tmp_path, sa, val, device=CPU, amp="off", batch_size=8) as (evaluated, use):
        assert evaluated is val and use.status.startswith("not applicable")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("method", ["dias", "dinosaur", "slate", "slotdiffusion"])
@pytest.mark.parametrize("training", [False, True])
def test_given_features_replace_the_backbone_exactly(method, training):
    """The forward contract: model(images, features=backbone(images)) == model(images), randomness included."""
    torch.manual_seed(0)
    model = build_model(get_config(method, "synthetic"), CPU, initial=False).train(training)
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        features = model.encode_backbone(images)
        torch.manual_seed(1)
        plain = model(images)
        torch.manual_seed(1)
        given = model(images, features=features)
        torch.manual_seed(1)
        other = model(images, features=features + 0.5)
    for name in plain.masks:
        assert torch.equal(plain.masks[name], given.masks[name]), name
    assert plain.losses.keys() == given.losses.keys()
    assert all(torch.equal(plain.losses[k], given.losses[k]) for k in plain.losses)
    assert not torch.equal(plain.slots, other.slots)  # the features are really used


def test_cached_eval_of_a_dias_checkpoint_equals_uncached_image_by_image(tmp_path, synth_dir, tiny_config,
                                                                         checkpoint, monkeypatch):
    kw = dict(data_dir=synth_dir, checkpoint=checkpoint, seed=3)
    plain = evaluate_cell(tiny_config, output=tmp_path / "plain.json", **kw)
    cold = evaluate_cell(tiny_config, output=tmp_path / "cold.json", feature_cache=tmp_path / "cache", **kw)

    from harness.nn.dinov2 import DinoV2Backbone

    def no_backbone(self, images):
        raise AssertionError("a cached evaluation ran the backbone")

    monkeypatch.setattr(DinoV2Backbone, "forward", no_backbone)
    warm = evaluate_cell(tiny_config, output=tmp_path / "warm.json", feature_cache=tmp_path / "cache", **kw)
    limited = evaluate_cell(tiny_config, output=tmp_path / "lim.json", feature_cache=tmp_path / "cache", limit=11, **kw)
    monkeypatch.undo()
    limited_plain = evaluate_cell(tiny_config, output=tmp_path / "lim-plain.json", limit=11, **kw)

    assert cold["cost"]["feature_cache"]["status"] == "written" and warm["cost"]["feature_cache"]["status"] == "hit"
    assert "feature_cache" not in plain["cost"]
    assert len(plain["per_image"]["keys"]) == 16
    for record in (cold, warm):
        assert record["per_image"] == plain["per_image"] and record["means"] == plain["means"]
        assert record["identity"] == plain["identity"]
    assert limited["per_image"] == limited_plain["per_image"]  # a shorter last batch: exact on CPU
    # the comparison can fail: another noise seed gives other per-image numbers
    reseeded = evaluate_cell(tiny_config, output=tmp_path / "s4.json", feature_cache=tmp_path / "cache",
                             **{**kw, "seed": 4})
    assert reseeded["per_image"]["ari"] != plain["per_image"]["ari"]


def test_eval_verb_takes_a_feature_cache(tmp_path, synth_dir, checkpoint, capsys):
    args = ["eval", "--method", "dias", "--dataset", "synthetic", "--data-dir", str(synth_dir), "--checkpoint",
            str(checkpoint), "--feature-cache", str(tmp_path / "cache"), "--gallery", "0"]
    args += [a for o in TINY for a in ("--set", o)]
    statuses = []
    for name in ("a", "b"):
        assert main(args + ["--output", str(tmp_path / f"{name}.json")]) == 0
        statuses.append(json.loads(capsys.readouterr().out)["feature_cache"]["status"])
    assert statuses == ["written", "hit"]
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in "ab")
    assert a["per_image"] == b["per_image"]


def test_runner_shares_one_cache_across_seeds_of_one_backbone(tmp_path, synth_dir, tiny_config, checkpoint):
    """Released checkpoints of one method hold the same frozen backbone: the second seed reads the first's cache."""
    table = Table(name="cache-test", description="", rows=(Row("dias", "synthetic", "dias-syn"),), seeds=(1, 2),
                  data="synthetic", synth=SynthData(SynthConfig(resolution=32, seed=3), train=48, val=16))
    releases = tmp_path / "releases" / "dias-syn"
    releases.mkdir(parents=True)
    for seed in table.seeds:
        shutil.copy(checkpoint, releases / f"{seed}-0001.pth")
    runner = Runner(table, data_dir=synth_dir, results=tmp_path / "runs", device="cpu",
                    checkpoints=tmp_path / "releases", overrides=TINY, progress=False, feature_cache=tmp_path / "cache")
    records = [runner.run(cell) for cell in plan(table, tmp_path / "runs")[1]]
    assert [r["cost"]["feature_cache"]["status"] for r in records] == ["written", "hit"]
    assert len(list((tmp_path / "cache").iterdir())) == 1
    assert records[0]["per_image"]["ari"] != records[1]["per_image"]["ari"]  # two seeds, two noise draws


def test_lmdb_writer_stores_records_under_given_keys(tmp_path):
    path = tmp_path / "k.lmdb"
    with LmdbWriter(path) as writer:
        writer.append({"x": 1}, key=b"b")
        writer.append({"x": 2}, key=b"a")
        with pytest.raises(ValueError, match="reserved"):
            writer.append({"x": 3}, key=b"__keys__")
    reader = LmdbReader(path)
    assert reader.keys == [b"b", b"a"] and reader.get(b"a") == {"x": 2}
