"""DIAS forward contract, losses, configs, seeding and pretrained loading."""

import dataclasses
import math
import re

import pytest
import torch

from harness.recipes import random_vit as synthetic

SYNTHETIC_SLOTS = synthetic.SLOTS
SYNTHETIC_GRID = synthetic.RESOLUTION // synthetic.backbone(4).patch
import torch.nn.functional as F

from dias import build
from dias.configs import NUM_SLOTS
from dias.model import distillation_loss
from harness.config import config_hash
from harness.data import DATASETS
from harness.errors import HarnessError
from harness.nn.output import ModelOutput
from harness.registry import METHODS, create_model, get_config


def test_distillation_applies_log_softmax_to_probabilities():
    """Hand-computed: input p = (0.8, 0.2) at one pixel, target (1, 0): −log_softmax(p)_0 = log(1 + e^−0.6), not
    −log 0.8 (what a cross-entropy of probabilities would give). Second pixel: p = (0.5, 0.5), t = (0.25, 0.75):
    log_softmax = −log 2 for both ⇒ log 2. Mean over pixels."""
    first = torch.tensor([[0.8, 0.5], [0.2, 0.5]]).reshape(1, 2, 1, 2)  # (b, n, h, w)
    last = torch.tensor([[1.0, 0.25], [0.0, 0.75]]).reshape(1, 2, 1, 2)
    expected = (math.log(1 + math.exp(-0.6)) + math.log(2)) / 2
    assert distillation_loss(first, last).item() == pytest.approx(expected, rel=1e-6)
    assert distillation_loss(first, last).item() != pytest.approx((-math.log(0.8) + math.log(2)) / 2, rel=1e-3)


def test_distillation_target_is_detached():
    first = torch.rand(2, 3, 4, 4, requires_grad=True)
    last = torch.rand(2, 3, 4, 4, requires_grad=True)
    distillation_loss(first, last).backward()
    assert first.grad is not None and last.grad is None


@pytest.fixture(scope="module")
def synthetic_model():
    torch.manual_seed(0)
    return create_model("dias", "synthetic")


def test_synthetic_forward_contract_and_losses(synthetic_model):
    model = synthetic_model.train()
    images = torch.randn(3, 3, 32, 32)
    out = model(images)
    n, g = SYNTHETIC_SLOTS, SYNTHETIC_GRID
    assert isinstance(out, ModelOutput)
    assert out.slots.shape == (3, n, 64)
    assert out.masks["decoder"].shape == out.masks["aggregator"].shape == (3, n, g, g)
    ex = out.extras
    assert set(ex) == {"feature", "attenta", "recon", "attentd"}
    assert ex["feature"].shape == ex["recon"].shape == (3, 64, g, g)
    assert len(ex["attenta"]) == 3 and out.masks["aggregator"] is ex["attenta"][-1]
    assert out.masks["decoder"] is ex["attentd"]
    assert torch.allclose(ex["attentd"].sum(1), torch.ones(3, g, g), atol=1e-5)
    assert torch.allclose(ex["attenta"][0].sum(1), torch.ones(3, g, g), atol=1e-5)
    assert out.losses["recon"].item() == pytest.approx(F.mse_loss(ex["recon"], ex["feature"]).item(), rel=1e-6)
    assert out.losses["distill"].item() == pytest.approx(
        F.cross_entropy(ex["attenta"][0], ex["attenta"][2]).item(), rel=1e-6)
    assert not ex["feature"].requires_grad  # frozen and detached, as the authors
    (out.losses["recon"] + out.losses["distill"]).backward()
    assert all(p.grad is None for p in model.encode_backbone.parameters())
    assert model.initializ.mean.grad is not None and model.decode.mask_token.grad is not None
    model.zero_grad()


def test_same_seed_gives_identical_eval_outputs(synthetic_model):
    model = synthetic_model.eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.manual_seed(7)
        a = model(images)
        torch.manual_seed(7)
        b = model(images)
        torch.manual_seed(8)
        c = model(images)
    assert torch.equal(a.slots, b.slots) and torch.equal(a.masks["decoder"], b.masks["decoder"])
    assert not torch.equal(a.slots, c.slots)  # eval_noise="sample": the slot init is random at evaluation


def test_eval_noise_mean_is_deterministic_without_seeding():
    model = create_model("dias", "synthetic", eval_noise="mean").eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        a, b = model(images), model(images)
    assert torch.equal(a.slots, b.slots) and torch.equal(a.masks["decoder"], b.masks["decoder"])
    assert torch.equal(model.initializ(2), model.initializ.mean.expand(2, SYNTHETIC_SLOTS, -1))


def test_biases_start_at_zero_as_the_authors_reset(synthetic_model):
    model = create_model("dias", "synthetic")
    for name in ["encode_project.1.bias", "encode_project.3.bias", "aggregat.rnn.bias_ih", "aggregat.rnn.bias_hh",
                 "aggregat.ffn.0.bias", "aggregat.ffn.2.bias"]:
        assert model.state_dict()[name].abs().max() == 0, name
    assert model.state_dict()["encode_backbone.1.patch_embed.proj.bias"].abs().max() == 0  # HF init, untouched


@pytest.mark.parametrize("dataset", ["clevrtex", "coco", "voc"])
@pytest.mark.parametrize("training", [True, False])
def test_full_size_forward_shapes(dataset, training):
    """On the meta device: shapes of the full-size configs, both paths, without the cost of computing values."""
    n = NUM_SLOTS[dataset]
    with torch.device("meta"):
        model = create_model("dias", dataset).train(training)
        out = model(torch.empty(2, 3, 256, 256))
    assert out.slots.shape == (2, n, 256)
    assert out.masks["decoder"].shape == out.masks["aggregator"].shape == (2, n, 16, 16)
    assert out.extras["feature"].shape == out.extras["recon"].shape == (2, 384, 16, 16)
    assert [a.shape for a in out.extras["attenta"]] == [(2, n, 16, 16)] * 3
    assert all(v.shape == () for v in out.losses.values())


def test_full_size_forward_values(full_dias):
    """One real ViT-S forward at 256²: finite losses, probability maps over the 7 slots."""
    out = full_dias[1]
    assert out.slots.shape == (1, 7, 256) and out.masks["decoder"].shape == (1, 7, 16, 16)
    assert all(torch.isfinite(v) for v in out.losses.values())
    for name in ("decoder", "aggregator"):
        assert torch.allclose(out.masks[name].sum(1), torch.ones(1, 16, 16), atol=1e-5)
    assert out.extras["feature"].abs().max() > 0


def test_registry_has_all_dataset_configs():
    spec = METHODS.get("dias")
    assert sorted(spec.configs) == ["clevrtex", "coco", "synthetic", "textured", "voc"]
    assert {d: get_config("dias", d).num_slots for d in NUM_SLOTS} == NUM_SLOTS
    assert get_config("dias", "textured").num_slots == DATASETS.get("textured").num_slots
    assert NUM_SLOTS == {"clevrtex": 11, "coco": 7, "voc": 6, "synthetic": SYNTHETIC_SLOTS}


@pytest.mark.parametrize("dataset,steps", [("clevrtex", 50_000), ("coco", 100_000), ("voc", 50_000)])
def test_full_configs_follow_the_hyperparameter_table(dataset, steps):
    c = get_config("dias", dataset)
    t = c.train
    assert (t.steps, t.batch_size, t.lr, t.warmup_steps, t.lr_final_ratio, t.grad_clip) == (
        steps, 32, 2e-4, steps // 20, 1e-3, 1.0)
    assert (t.val_interval, t.save_since, t.amp) == (steps // 40, steps // 2, "fp16")
    assert (c.eval.mask, c.eval.resolution, c.eval.batch_size) == ("decoder", 256, 32)
    assert (c.resolution, c.backbone_scale, c.backbone.image_size, c.backbone.registers, c.norm_out) == (
        256, 0.875, 224, 4, False)
    assert c.backbone_weights == "facebook/dinov2-with-registers-small" and c.eval_noise == "sample"
    assert not c.extension.active
    w = t.loss_weights["distill"]
    assert [w(s, steps) for s in (0, steps // 2, steps)] == pytest.approx([0.0, 0.5, 1.0])
    assert set(t.loss_weights) == {"distill"}  # recon has weight 1


def test_freeze_regex_selects_exactly_the_backbone(synthetic_model):
    pattern = get_config("dias", "synthetic").train.freeze
    assert pattern == get_config("dias", "coco").train.freeze
    names = [n for n, _ in synthetic_model.named_parameters()]
    frozen = {n for n in names if any(re.match(p, n) for p in pattern)}
    assert frozen == {n for n in names if n.startswith("encode_backbone.")} and frozen


def test_config_overrides_and_validation():
    c = get_config("dias", "synthetic", ["num_slots=3", "extension.prune=true", "backbone.layers=1"])
    assert (c.num_slots, c.extension.prune, c.backbone.layers) == (3, True, 1)
    assert config_hash(c) != config_hash(get_config("dias", "synthetic"))
    assert create_model("dias", config=c).initializ(2).shape == (2, 3, 64)
    with pytest.raises(HarnessError, match="backbone.image_size is 32"):
        build(get_config("dias", "synthetic", ["resolution=64"]))
    with pytest.raises(HarnessError, match="eval_noise"):
        build(get_config("dias", "synthetic", ["eval_noise=zero"]))
    with pytest.raises(HarnessError, match="criterion"):
        get_config("dias", "synthetic", ["extension.criterion=cosine"])


def test_pretrained_weights_load_only_when_asked(tmp_path):
    from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    config = get_config("dias", "synthetic")
    spec = config.backbone
    hf = Dinov2WithRegistersModel(Dinov2WithRegistersConfig(
        hidden_size=spec.hidden, num_hidden_layers=spec.layers, num_attention_heads=spec.heads,
        mlp_ratio=spec.mlp_ratio, patch_size=spec.patch, image_size=spec.image_size,
        num_register_tokens=spec.registers, layer_norm_eps=spec.layer_norm_eps))
    with torch.no_grad():
        hf.encoder.layer[1].mlp.fc2.weight.fill_(0.25)
    hf.save_pretrained(tmp_path)
    config = dataclasses.replace(config, backbone_weights=str(tmp_path))
    key = "encode_backbone.1.blocks.1.mlp.fc2.weight"
    assert not torch.all(build(config).state_dict()[key] == 0.25)
    assert torch.all(build(config, pretrained=True).state_dict()[key] == 0.25)
