"""Named protocols: the registry, each choice's effect on the numbers, and `metrics explain`."""

import argparse
import dataclasses

import numpy as np
import pytest
import torch
from metric_oracles import VOID, iou_table, mbo_brute, miou_brute, one_hot
from sklearn.metrics import adjusted_rand_score

from harness.cli import metrics as commands
from harness.metrics import DEFAULT_PROTOCOL, PROTOCOLS, Protocol, segmentation_metrics


def test_registry_holds_the_contracted_protocols():
    assert {"dias-v3", "exact", "dinosaur", "spot"} <= set(PROTOCOLS.names())
    assert DEFAULT_PROTOCOL == "dias-v3"
    for name in PROTOCOLS.names():
        protocol = PROTOCOLS.get(name)
        assert protocol.name == name and protocol.sources
        assert dataclasses.is_dataclass(protocol)
        with pytest.raises(dataclasses.FrozenInstanceError):
            protocol.arithmetic = "float64"


def test_a_choice_outside_the_implemented_ones_is_refused():
    base = PROTOCOLS.get("exact")
    with pytest.raises(ValueError, match="miou_denominator must be one of"):
        dataclasses.replace(base, name="x", miou_denominator="matched")
    with pytest.raises(ValueError, match="arithmetic must be one of"):
        dataclasses.replace(base, name="x", arithmetic="float16")


def test_mean_over():
    v3, dino = PROTOCOLS.get("dias-v3"), PROTOCOLS.get("dinosaur")
    assert [v3.mean_over(m) for m in ("ari", "ari_fg", "mbo", "miou")] == ["valid", "valid_fg", "valid", "valid"]
    assert [dino.mean_over(m) for m in ("ari", "ari_fg", "mbo", "miou")] == ["all", "all", "valid_fg", "valid_fg"]
    assert PROTOCOLS.get("spot").mean_over("miou") == "valid_fg"


def oclf_style_oracle(pred, gt, c, d):
    """dinosaur/spot by their definition, per image: overlap pixels (several gt labels) dropped everywhere,
    unlabelled pixels = background, scores over foreground gt only (float64, brute-force matching)."""
    overlap = gt.sum(-1) > 1
    labels = np.where(gt.any(-1), gt.argmax(-1), 0)  # unlabelled → background
    keep = ~overlap
    p, g = np.where(keep, pred, VOID), np.where(keep, labels, VOID)
    fg = g > 0
    ari_fg = adjusted_rand_score(g[fg], p[fg]) if fg.any() else 1.0
    iou = iou_table(p, g, c, d)[:, 1:]  # |pred| excludes the dropped overlap pixels (p = VOID there)
    nonempty = np.array([(g == j).any() for j in range(1, d)])
    if nonempty.any():
        return ari_fg, mbo_brute(iou, nonempty), miou_brute(iou, nonempty)
    return ari_fg, np.nan, np.nan


@pytest.mark.parametrize("protocol", ["dinosaur", "spot"])
def test_foreground_protocols_against_their_definition(protocol):
    rng = np.random.default_rng(8)
    n, c, d = 60, 4, 4
    for _ in range(25):
        pred = rng.integers(0, c, n)
        gt = np.zeros((n, d), bool)
        gt[np.arange(n), rng.integers(0, d, n)] = True
        gt[rng.random(n) < 0.15] = False  # unlabelled pixels
        extra = rng.random(n) < 0.1  # overlapping instances
        gt[extra, rng.integers(1, d, n)[extra]] = True
        out = segmentation_metrics(one_hot(pred[None], c), torch.from_numpy(gt[None]), protocol)
        ari_fg, mbo, miou = oclf_style_oracle(pred, gt, c, d)
        assert out["ari_fg"].item() == pytest.approx(ari_fg, abs=1e-10)
        assert out["mbo"].item() == pytest.approx(mbo, abs=1e-12, nan_ok=True)
        assert out["miou"].item() == pytest.approx(miou, abs=1e-12, nan_ok=True)


def test_background_and_overlap_choices_change_the_numbers_as_documented():
    # 8 pixels; gt channel 0 (bg) = 0–3, object 1 = 4–6, object 2 = 6–7 (pixel 6 in both objects).
    gt = torch.zeros(1, 8, 3, dtype=torch.bool)
    gt[0, 0:4, 0] = True
    gt[0, 4:7, 1] = True
    gt[0, 6:8, 2] = True
    pred = one_hot(np.array([[0, 0, 0, 0, 1, 1, 1, 2]]), 3)
    v3 = segmentation_metrics(pred, gt, "exact")
    dino = segmentation_metrics(pred, gt, "dinosaur")
    # exact (dias-v3 conventions): background scored, pixel 6 counts in both objects.
    # IoU(bg) = 1; object 1 best: slot 1 = 3/3; object 2 best: max(slot 1: 1/4, slot 2: 1/2) = 1/2
    assert v3["mbo"].item() == pytest.approx((1 + 1 + 1 / 2) / 3)
    # dinosaur: pixel 6 dropped from pred and gt; background not scored.
    # object 1 = {4,5} vs slot 1 = {4,5}: 1; object 2 = {7} vs slot 2 = {7}: 1
    assert dino["mbo"].item() == 1.0 and dino["miou"].item() == 1.0


def test_unlabelled_pixels_join_the_background_only_where_the_protocol_says():
    gt_labels = np.array([[0, 0, 1, 1, VOID, VOID]])
    pred = np.array([[0, 0, 1, 1, 0, 1]])
    gt = one_hot(gt_labels, 2)
    dino = segmentation_metrics(one_hot(pred, 2), gt, "dinosaur")
    exact = segmentation_metrics(one_hot(pred, 2), gt, "exact")
    assert exact["ari"].item() == 1.0  # VOID pixels are outside the contingency
    assert dino["ari"].item() == pytest.approx(adjusted_rand_score([0, 0, 1, 1, 0, 0], pred[0]))
    assert dino["ari"].item() < 1.0


def test_explain_lists_and_describes_every_protocol(capsys):
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(["metrics", "explain"])
    assert args.func(args) == 0
    listing = capsys.readouterr().out
    for name in PROTOCOLS.names():
        assert name in listing
    assert "(default)" in listing
    for name in PROTOCOLS.names():
        args = parser.parse_args(["metrics", "explain", name])
        assert args.func(args) == 0
        text = capsys.readouterr().out
        protocol = PROTOCOLS.get(name)
        for heading in ("arithmetic:", "mBO / mIoU:", "mIoU denominator:", "unlabelled pixels:",
                        "overlapping pixels:", "images in the means:", "dataset mean:", "sources:"):
            assert heading in text
        assert all(source in text for source in protocol.sources)
        assert all(note in text for note in protocol.caveats)
    assert "wrapping modulo 2^64" in PROTOCOLS.get("dias-v3").explain()
    assert "background channel (gt 0) removed" in PROTOCOLS.get("spot").explain()


def test_explain_of_an_unknown_protocol_names_the_valid_ones():
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(["metrics", "explain", "oclf"])
    with pytest.raises(KeyError, match="unknown protocol 'oclf'; valid: .*dinosaur"):
        args.func(args)


def test_a_protocol_record_can_be_passed_directly():
    custom = dataclasses.replace(PROTOCOLS.get("exact"), name="exact-fg", background_in_overlap=False)
    assert isinstance(custom, Protocol)
    gt = one_hot(np.array([[0, 0, 1, 1]]), 2)
    pred = one_hot(np.array([[0, 1, 1, 1]]), 2)
    # foreground only: object {2,3} vs slot 1 {1,2,3}: 2/3
    assert segmentation_metrics(pred, gt, custom)["mbo"].item() == pytest.approx(2 / 3)


def test_the_metrics_verb_is_registered_with_the_cli():
    from harness.cli import VERBS

    assert "metrics" in VERBS
