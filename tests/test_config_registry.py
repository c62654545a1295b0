"""Config overrides, hashing, and registry lookups (unknown names list the valid ones)."""

import dataclasses

import pytest

from harness.config import EvalConfig, MethodConfig, TrainConfig, WeightSchedule, apply_overrides, config_hash
from harness.registry import Registry, UnknownNameError


def make():
    return MethodConfig(method="m", dataset="d", num_slots=4,
                        train=TrainConfig(steps=100, batch_size=8, lr=1e-3, warmup_steps=5, val_interval=50,
                                          save_since=50, loss_weights={"distill": WeightSchedule(kind="cosine")}),
                        eval=EvalConfig(mask="decoder"))


def test_overrides_parse_by_field_type_and_do_not_mutate():
    c = make()
    d = apply_overrides(c, ["train.steps=200", "train.lr=2e-4", "num_slots=7", "eval.mask=aggregator",
                            "train.loss_weights.distill.end=0.5", "stage=vq"])
    assert (d.train.steps, d.train.lr, d.num_slots, d.eval.mask) == (200, 2e-4, 7, "aggregator")
    assert d.train.loss_weights["distill"].end == 0.5 and d.stage == "vq"
    assert c.train.steps == 100 and c.train.loss_weights["distill"].end == 1.0
    assert apply_overrides(c, {"train.steps": "1e3"}).train.steps == 1000


def test_overrides_refuse_unknown_fields_and_bad_values():
    with pytest.raises(KeyError, match="train.stepz"):
        apply_overrides(make(), ["train.stepz=3"])
    with pytest.raises(ValueError, match="train.steps"):
        apply_overrides(make(), ["train.steps=many"])
    with pytest.raises(ValueError, match="path=value"):
        apply_overrides(make(), ["train.steps"])


def test_config_hash_tracks_every_field():
    c = make()
    assert config_hash(c) == config_hash(make())
    assert config_hash(c) != config_hash(dataclasses.replace(c, num_slots=5))
    assert config_hash(c) != config_hash(apply_overrides(c, ["train.loss_weights.distill.delay=1"]))


def test_registry_lists_valid_names_on_unknown():
    r = Registry("widget")
    r.register("a", 1)
    r.register("b")(2)
    assert r.get("b") == 2 and "a" in r and r.names() == ["a", "b"]
    with pytest.raises(UnknownNameError, match=r"unknown widget 'c'; valid: a, b"):
        r.get("c")
    with pytest.raises(ValueError, match="twice"):
        r.register("a", 3)
