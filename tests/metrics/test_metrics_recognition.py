"""Recognition matching and metrics on hand-computed cases: the authors' two-objects quirk, strict
thresholds, |pred| with VOID, padded objects, ltrb box IoU with dropped unions, micro averaging; IoU and
matching against numpy / brute-force oracles."""

import argparse
import dataclasses
import itertools

import numpy as np
import pytest
import torch

from harness.cli import metrics as commands
from harness.metrics.recognition import (
    RECOGNITION_PROTOCOLS,
    RecognitionProtocol,
    RecognitionTally,
    gather_matched,
    ltrb_box_iou,
    match_objects,
    slot_object_iou,
    slot_segments,
    topk_hits,
)

V3, V4, ALL = (RECOGNITION_PROTOCOLS.get(n) for n in ("smoothsa-v3", "smoothsa-v4", "all-objects"))


def _segment(index: np.ndarray, channels: int) -> torch.Tensor:
    """(H,W) index map (−1 = VOID) → (1,H,W,channels) bool gt."""
    return torch.from_numpy(index[None, :, :, None] == np.arange(channels)).bool()


def _attention(index: np.ndarray, slots: int) -> torch.Tensor:
    """(H,W) slot index map → (1,slots,H,W) one-hot attention (bilinear to the same size is the identity)."""
    return torch.from_numpy(index[None, None] == np.arange(slots)[None, :, None, None]).float()


def _five_things():
    index = np.zeros((12, 12), int)  # channel 0: stuff
    for k in range(5):
        index[2 * k:2 * k + 2, 2:8] = k + 1
    return index


def test_the_two_objects_quirk_keeps_only_things_0_and_1():
    index = _five_things()
    pred = slot_segments(_attention(index, 6), 12)  # slot k covers channel k exactly
    segment = _segment(index, 6)
    for protocol, kept in ((V3, [0, 1]), (V4, [0, 1]), (ALL, [0, 1, 2, 3, 4])):
        matches = match_objects(pred, segment, protocol)
        assert matches.obj.tolist() == kept and matches.slot.tolist() == [k + 1 for k in kept]
        assert matches.image.tolist() == [0] * len(kept) and matches.iou.tolist() == [1.0] * len(kept)


def test_thresholds_are_strict_and_differ_between_v3_and_v4():
    index = np.zeros((10, 10), int)
    index[0, 0:2] = 1  # thing 0: 2 pixels
    slots = np.zeros((10, 10), int)
    slots[0, 0] = 1
    slots[1:3, :] = 1  # slot 1: 21 pixels, 1 of them on thing 0: IoU 1/22
    pred, segment = slot_segments(_attention(slots, 2), 10), _segment(index, 2)
    assert match_objects(pred, segment, V3).iou.tolist() == [pytest.approx(1 / 22)]
    assert len(match_objects(pred, segment, V4)) == len(match_objects(pred, segment, ALL)) == 0
    at = dataclasses.replace(ALL, iou_threshold=1 / 22)
    assert len(match_objects(pred, segment, at)) == 0  # equal is not above
    assert len(match_objects(pred, segment, dataclasses.replace(ALL, iou_threshold=1 / 23))) == 1


def test_void_pixels_count_in_the_slot_mask_and_padded_objects_are_never_kept():
    index = np.full((4, 4), -1)  # VOID everywhere ...
    index[0, :] = 0  # ... but a stuff row
    index[1, :] = 1  # and thing 0 (4 pixels)
    slots = np.zeros((4, 4), int)
    slots[1:3, :] = 1  # thing 0 + 4 VOID pixels
    segment = _segment(index, 3)  # channel 2 (thing 1) is padding: empty
    matches = match_objects(slot_segments(_attention(slots, 2), 4), segment, ALL)
    assert matches.obj.tolist() == [0] and matches.iou.tolist() == [0.5]


def test_hungarian_is_one_to_one_and_optimal():
    index = np.zeros((6, 6), int)
    index[:, 0:3], index[:, 3:6] = 1, 2  # two things side by side
    slots = np.zeros((6, 6), int)
    slots[:, 0:4] = 1  # covers thing 0 and a column of thing 1
    slots[:, 4:6] = 2  # the rest of thing 1
    matches = match_objects(slot_segments(_attention(slots, 3), 6), _segment(index, 3), ALL)
    assert list(zip(matches.slot.tolist(), matches.obj.tolist())) == [(1, 0), (2, 1)]
    assert matches.iou.tolist() == [pytest.approx(18 / 24), pytest.approx(12 / 18)]


def test_iou_and_matching_against_numpy_and_brute_force():
    rng = np.random.default_rng(0)
    slots = rng.integers(0, 4, (2, 8, 8))
    slots[1] = np.minimum(slots[1], 2)  # image 1 uses 3 of the 4 channels: one empty pred column
    gt = rng.integers(-1, 4, (2, 8, 8))
    gt[:, :, 0] = -1
    segment = torch.cat([_segment(g, 5) for g in gt])  # channel 4 empty in both: a padded object
    pred = slot_segments(torch.cat([_attention(s, 4) for s in slots]), 8)
    assert pred.shape == (2, 64, 4)
    iou = slot_object_iou(pred, segment.reshape(2, 64, 5)[:, :, 1:])
    for i in range(2):
        p, g = slots[i].reshape(-1), gt[i].reshape(-1)
        for c in range(4):
            for d in range(4):
                inter = np.sum((p == c) & (g == d + 1))
                union = np.sum(p == c) + np.sum(g == d + 1) - inter
                assert iou[i, c, d].item() == pytest.approx(inter / union if union else 0.0, rel=1e-6)
        best = max(sum(iou[i, r, c].item() for r, c in enumerate(perm)) for perm in itertools.permutations(range(4)))
        matches = match_objects(pred[i:i + 1], segment[i:i + 1], dataclasses.replace(ALL, iou_threshold=1e-9))
        assert matches.iou.sum().item() == pytest.approx(best, rel=1e-6)


def test_slot_segments_have_batch_max_plus_one_channels():
    attention = torch.zeros(2, 5, 4, 4)
    attention[:, 0] = 1.0
    attention[1, 2, 0, 0] = 2.0
    assert slot_segments(attention, 4).shape == (2, 16, 3)  # slots 3, 4 win nowhere
    assert slot_segments(attention, 8).shape == (2, 64, 3)


def test_ltrb_box_iou_by_hand():
    pred = torch.tensor([[0, 0, 0.5, 0.5], [0.5, 0.0, 0.0, 0.5], [0, 0, 0, 0], [0.6, 0.6, 0.8, 0.8]])
    target = torch.tensor([[0.25, 0.25, 0.75, 0.75], [0, 0, 0.1, 0.1], [0, 0, 0, 0], [0, 0, 0.5, 0.5]])
    iou, valid = ltrb_box_iou(pred, target)
    assert valid.tolist() == [True, False, False, True]  # inverted box: area −0.25 ⇒ union < 0; empty: 0
    assert iou[0].item() == pytest.approx(0.0625 / 0.4375) and iou[3].item() == 0.0


def test_topk_and_micro_average_over_pairs():
    logits = torch.tensor([[0.0, 3.0, 2.0, 1.0], [5.0, 4.0, 3.0, 0.0], [0.0, 0.5, 1.0, 2.0]])
    target = torch.tensor([1, 3, 1])
    assert topk_hits(logits, target, 1).tolist() == [1.0, 0.0, 0.0]
    assert topk_hits(logits, target, 3).tolist() == [1.0, 0.0, 1.0]
    tally = RecognitionTally()
    boxes = torch.tensor([[0, 0, 0.5, 0.5]]).repeat(3, 1)
    gt = torch.tensor([[0, 0, 0.5, 0.5], [0, 0, 0.25, 0.5], [0, 0, 0, 0]])
    tally.add(logits[:1], boxes[:1], target[:1], gt[:1])  # batch 1: 1 pair, top-1 hit, box IoU 1
    tally.add(logits[1:], boxes[1:], target[1:], gt[1:])  # batch 2: 2 top-1 misses, box IoU 0.5 and 0
    tally.add(logits[:1], torch.zeros(1, 4), target[:1], torch.zeros(1, 4))  # a hit; union 0: no box IoU
    result = tally.result()
    assert result["top1"] == pytest.approx(2 / 4)  # not the mean of the batch means (2/3)
    assert result["top3"] == pytest.approx(3 / 4) and result["matched"] == 4
    assert result["box_iou"] == pytest.approx(1.5 / 3)
    assert RecognitionTally().result()["matched"] == 0


def test_gather_matched_picks_the_kept_rows():
    index = _five_things()
    pred, segment = slot_segments(_attention(index, 6), 12), _segment(index, 6)
    matches = match_objects(pred, segment, V3)
    slots = torch.arange(6.0)[None, :, None].repeat(1, 1, 2)
    clazz, bbox = torch.tensor([[11, 12, 13, 14, 15]]), torch.arange(20.0).reshape(1, 5, 4)
    s, c, b = gather_matched(matches, slots, clazz, bbox)
    assert s[:, 0].tolist() == [1.0, 2.0] and c.tolist() == [11, 12] and torch.equal(b, bbox[0, :2])


def test_protocol_records_and_explain(capsys):
    assert [V3.iou_threshold, V4.iou_threshold, ALL.iou_threshold] == [1e-3, 0.1, 0.1]
    assert V3.first_two_only and V4.first_two_only and not ALL.first_two_only
    with pytest.raises(ValueError, match="iou_threshold must be > 0"):
        RecognitionProtocol(name="x", summary="", iou_threshold=0.0, first_two_only=False, sources=())
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(["metrics", "explain"])
    assert args.func(args) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in RECOGNITION_PROTOCOLS.names()) and "dias-v3" in listing
    args = parser.parse_args(["metrics", "explain", "smoothsa-v3"])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "IoU > 0.001" in text and "only gt thing columns 0 and 1" in text and all(s in text for s in V3.sources)
    args = parser.parse_args(["metrics", "explain", "all-objects"])
    args.func(args)
    assert "IoU > 0.1" in capsys.readouterr().out
