"""The method contract (harness.contract), checked for every registered method on every dataset it has a config for.

Parametrised from the registry at collection time: a newly registered method is covered without this file being
edited (tests/contract/test_add_a_method.py proves it with a throwaway method). Full-size configs run on the meta
device (shapes without compute); the small CPU configs run for real.
"""

import dataclasses

import pytest
import torch

from harness.contract import ModelOutput, SlotModel
from harness.nn.checkpoint import checkpoint_state_dict, load_weights
from harness.registry import METHODS, STAGE_KINDS, get_config, methods_of_kind, register_method
from harness.run.train import build_model
from harness.tables import TABLES

SMALL_DATASETS = ("synthetic", "textured")  # the CPU recipes: built and run for real


def pytest_generate_tests(metafunc):
    pairs = [(name, dataset) for name in METHODS.names() for dataset in METHODS.get(name).configs]
    if "method_dataset" in metafunc.fixturenames:
        metafunc.parametrize("method_dataset", pairs, ids=[f"{m}/{d}" for m, d in pairs])
    if "small_method_dataset" in metafunc.fixturenames:
        small = [(m, d) for m, d in pairs if d in SMALL_DATASETS]
        metafunc.parametrize("small_method_dataset", small, ids=[f"{m}/{d}" for m, d in small])


def test_a_config_names_the_method_and_dataset_it_is_registered_under(method_dataset):
    method, dataset = method_dataset
    config = get_config(method, dataset)
    assert (config.method, config.dataset) == (method, dataset)
    assert config.stage is None or METHODS.get(config.stage).kind in STAGE_KINDS


def test_full_size_forward_contract_on_meta(method_dataset):
    method, dataset = method_dataset
    if dataset in SMALL_DATASETS:
        pytest.skip("small configs run for real below")
    config, kind = get_config(method, dataset), METHODS.get(method).kind
    if kind == "reference":  # a rule computes on the pixels: run it for real, it is cheap
        model = METHODS.get(method).build(config, pretrained=False)
        out = model(torch.randn(2, 3, config.resolution, config.resolution))
    else:
        with torch.device("meta"):
            model = METHODS.get(method).build(config, pretrained=False)
            out = model.train()(torch.empty(2, 3, config.resolution, config.resolution))
    check_output(kind, config, model, out, batch=2)


def test_small_config_forward_backward_and_declared_abilities(small_method_dataset):
    method, dataset = small_method_dataset
    spec = METHODS.get(method)
    config = get_config(method, dataset, ["train.batch_size=2"])
    if getattr(config, "backbone_weights", None) is not None:  # random weights: the contract is about shapes and abilities
        config = dataclasses.replace(config, backbone_weights=None)
    torch.manual_seed(0)
    model = build_model(config, torch.device("cpu"), initial=config.stage is None)
    images = torch.randn(2, 3, config.resolution, config.resolution)
    out = model.train()(images)
    check_output(spec.kind, config, model, out, batch=2)
    if spec.kind != "reference":
        loss = sum(out.losses.values())
        assert torch.isfinite(loss)
        optimizer = model.optimizer(config.train)
        assert {id(p) for g in optimizer.param_groups for p in g["params"]} == {
            id(p) for p in model.parameters() if p.requires_grad}
        loss.backward()
        assert torch.isfinite(model.clip_gradients(config.train))
        model.before_step(0, config.train.steps)

    fresh = METHODS.get(method).build(config, pretrained=False)  # a checkpoint in the authors' layout round-trips
    load_weights(fresh, checkpoint_state_dict(model))
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))

    backbone = model.frozen_backbone()
    if backbone is not None:  # declared frozen: frozen after build, and its output may replace running it
        assert not any(p.requires_grad for p in backbone.parameters())
        model.eval()
        torch.manual_seed(1)
        direct = model(images)
        torch.manual_seed(1)
        cached = model(images, features=backbone(images))
        mask = config.eval.mask
        assert torch.equal(direct.masks[mask], cached.masks[mask])


def check_output(kind: str, config, model, out, batch: int) -> None:
    assert isinstance(model, SlotModel) and isinstance(out, ModelOutput)
    assert all(v.shape == () for v in out.losses.values())
    if kind == "stage":
        assert out.slots is None and out.losses
        return
    mask = out.masks[config.eval.mask]
    assert mask.shape[:2] == (batch, config.num_slots) and mask.dim() == 4
    if kind == "learned":
        assert out.slots.shape[:2] == (batch, config.num_slots) and out.losses
    if mask.device.type != "meta":
        assert torch.allclose(mask.float().sum(1), torch.ones_like(mask[:, 0].float()), atol=1e-5)


def test_configs_carry_the_names_they_are_registered_under():
    """The name is given once, at registration: a factory copied from another method (here returning DIAS's synthetic
    config) still yields a config of the method and dataset it is registered under, never DIAS's."""
    name = "copy-pasted-dias"
    spec = register_method(name, description="test")
    spec.builder(METHODS.get("dias").build)
    spec.config("synthetic", "coco")(lambda dataset: get_config("dias", "synthetic"))
    try:
        for dataset in ("synthetic", "coco"):
            config = get_config(name, dataset)
            assert (config.method, config.dataset) == (name, dataset)
        with pytest.raises(ValueError, match="registered twice"):
            register_method(name)
        with pytest.raises(ValueError, match="copy-pasted-dias/coco is registered twice"):
            spec.config("coco")(lambda dataset: None)
    finally:
        METHODS._items.pop(name)


def test_tables_and_reference_rows_come_from_the_registry():
    mini = TABLES.get("mini-random")
    learned = methods_of_kind("learned", "synthetic")
    assert learned[0] == "dias" and METHODS.get("dias").subject
    trained = [r.method for r in mini.rows if r.variant == "trained" and METHODS.get(r.method).kind == "learned"]
    stage_two = [m for m in learned if METHODS.get(get_config(m, "synthetic").stage or "dias").kind == "learned"
                 and get_config(m, "synthetic").stage]
    assert trained == [m for m in learned if m not in stage_two] and "spot-distill" in stage_two
    assert [r.method for r in mini.rows if METHODS.get(r.method).kind == "reference"] == methods_of_kind(
        "reference", "synthetic")
