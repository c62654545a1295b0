"""`DIAS.masks_only()`, which the evaluator enters: the masks are the very tensors of the full forward (same noise,
same weights), with the extension off and on, at the full-size decoder too; nothing but masks is computed; the
training forward is untouched; evaluation metrics are identical image by image."""

import pytest
import torch

from harness.contract import SlotModel
from harness.data import open_split, split_path
from harness.data.synthetic import SynthConfig, write_split
from harness.metrics import DEFAULT_PROTOCOL
from harness.registry import get_config
from harness.run.evaluate import evaluate
from harness.run.train import build_model
from harness.tools.bench import same_ledger

CPU = torch.device("cpu")


def _model(dataset, overrides=()):
    config = get_config("dias", dataset, list(overrides))
    torch.manual_seed(0)
    return config, build_model(config, CPU, initial=False).eval()


def _forward(model, images, seed, masks_only):
    torch.manual_seed(seed)
    with torch.inference_mode():
        if masks_only:
            with model.masks_only():
                return model(images)
        return model(images)


@pytest.mark.parametrize("overrides", [(), ("extension.prune=true", "extension.reinit=true")])
def test_masks_equal_the_full_forward_synthetic(overrides):
    config, model = _model("synthetic", overrides)
    images = torch.randn(4, 3, config.resolution, config.resolution, generator=torch.Generator().manual_seed(1))
    full, fast = _forward(model, images, 7, False), _forward(model, images, 7, True)
    assert fast.masks.keys() == full.masks.keys()
    for name in full.masks:
        assert torch.equal(fast.masks[name], full.masks[name])
    assert torch.equal(fast.slots, full.slots)
    assert fast.losses == {} and "recon" not in fast.extras and "recon" in full.extras
    assert not model._masks_only  # restored on leaving


def test_masks_equal_the_full_forward_full_size_features():
    """The clevrtex config's decoder (4 layers, 256 tokens) on given backbone features (no ViT run)."""
    config, model = _model("clevrtex")
    features = torch.randn(2, 384, 16, 16, generator=torch.Generator().manual_seed(2))
    images = torch.zeros(2, 3, 256, 256)
    torch.manual_seed(3)
    with torch.inference_mode():
        full = model(images, features=features)
        torch.manual_seed(3)
        with model.masks_only():
            fast = model(images, features=features)
    assert torch.equal(fast.masks["decoder"], full.masks["decoder"])
    assert torch.equal(fast.masks["aggregator"], full.masks["aggregator"])


def test_training_forward_ignores_nothing():
    config, model = _model("synthetic")
    model.train()
    out = model(torch.randn(2, 3, config.resolution, config.resolution))
    assert set(out.losses) == {"recon", "distill"} and out.extras["recon"].shape == out.extras["feature"].shape


def test_evaluation_metrics_identical_with_and_without_masks_only(tmp_path, monkeypatch):
    config, model = _model("synthetic", ["eval.batch_size=3"])
    write_split(split_path(tmp_path, "synthetic", "val"), SynthConfig(resolution=config.resolution), "val", 8)
    val = open_split(tmp_path, "synthetic", "val")

    def run():
        return evaluate(model, val, mask=config.eval.mask, protocol=DEFAULT_PROTOCOL, noise_seed=("t",), device=CPU,
                        batch_size=config.eval.batch_size, amp="off", gallery=2)

    calls = []
    original = type(model).masks_only

    def spy(self):
        calls.append(1)
        return original(self)

    monkeypatch.setattr(type(model), "masks_only", spy)
    fast = run()
    monkeypatch.setattr(type(model), "masks_only", SlotModel.masks_only)
    full = run()
    assert calls == [1]
    assert same_ledger(fast.per_image, full.per_image) and len(fast.per_image["ari"]) == 8
    for name in full.gallery["masks"]:
        assert (fast.gallery["masks"][name] == full.gallery["masks"][name]).all()
