"""mBO and mIoU: hand-computed cases (VOID pixels in |pred|), brute-force matching, float32 IoU to the bit,
pixel counts, edge cases (empty channels, c or d = 0, b = 0), batching."""

import numpy as np
import pytest
import torch
from metric_oracles import VOID, iou_table, mbo_brute, miou_brute, one_hot

import harness.metrics.counts as counts
from harness.metrics import MetricInputError, segmentation_metrics
from harness.metrics.iou import iou_matrix

PROTOCOLS = ("dias-v3", "exact")


def test_hand_computed_with_void_pixels_in_pred_size():
    # 10 pixels: gt background 0–3, object 4–6, VOID 7–9; slot A = 0–4, slot B = 5–9.
    gt = np.array([[0, 0, 0, 0, 1, 1, 1, VOID, VOID, VOID]])
    pred = np.array([[0, 0, 0, 0, 0, 1, 1, 1, 1, 1]])
    # IoU(A,bg) = 4/5, IoU(A,obj) = 1/7, IoU(B,bg) = 0, IoU(B,obj) = 2/(5+3−2) = 1/3 (|B| = 5 counts VOID).
    for protocol in PROTOCOLS:
        out = segmentation_metrics(one_hot(pred, 2), one_hot(gt, 2), protocol)
        assert out["mbo"].item() == pytest.approx((4 / 5 + 1 / 3) / 2, rel=1e-6)
        assert out["miou"].item() == pytest.approx((4 / 5 + 1 / 3) / 2, rel=1e-6)
    # had |B| counted only labelled pixels, IoU(B,obj) would be 2/3: the test tells the two apart
    assert (4 / 5 + 2 / 3) / 2 != pytest.approx((4 / 5 + 1 / 3) / 2, rel=1e-3)


def test_hand_computed_mbo_reuses_a_pred_and_miou_does_not():
    # gt: three segments of 2 pixels; pred: one slot over 4 pixels, one over 2.
    gt = np.array([[0, 0, 1, 1, 2, 2]])
    pred = np.array([[0, 0, 0, 0, 1, 1]])
    # IoU(slot0, gt0) = IoU(slot0, gt1) = 2/4, IoU(slot1, gt2) = 1.
    out = segmentation_metrics(one_hot(pred, 2), one_hot(gt, 3), "exact")
    assert out["mbo"].item() == pytest.approx((0.5 + 0.5 + 1) / 3)  # slot 0 serves gt 0 and gt 1
    assert out["miou"].item() == pytest.approx((0.5 + 0 + 1) / 3)  # one of gt 0/1 stays unmatched: 0


def test_empty_gt_channels_are_not_counted_and_empty_pred_channels_change_nothing():
    gt = np.array([[0, 0, 1, 1, 3, 3]])  # channel 2 empty; channel 4 (padding) empty
    pred = np.array([[0, 0, 1, 1, 1, 2]])
    base = segmentation_metrics(one_hot(pred, 3), one_hot(gt, 4), "exact")
    padded = segmentation_metrics(one_hot(pred, 6), one_hot(gt, 5), "exact")
    for key in base:
        torch.testing.assert_close(padded[key], base[key], rtol=0, atol=0)
    expected_mbo = (1 + 2 / 3 + 1 / 2) / 3  # three non-empty gt channels
    assert base["mbo"].item() == pytest.approx(expected_mbo)


def random_case(rng, n, c, d):
    pred = rng.integers(0, c, n)
    gt = rng.integers(0, d, n)
    if rng.random() < 0.5:
        gt, pred = np.sort(gt), np.sort(pred)
    gt = np.where(rng.random(n) < rng.choice([0, 0.2]), VOID, gt)
    return pred, gt


def test_miou_equals_brute_force_matching_and_mbo_the_definition():
    rng = np.random.default_rng(3)
    for _ in range(60):
        c, d, n = int(rng.integers(1, 6)), int(rng.integers(1, 6)), int(rng.integers(1, 40))
        pred, gt = random_case(rng, n, c, d)
        iou = iou_table(pred, gt, c, d)
        nonempty = np.array([(gt == j).any() for j in range(d)])
        if not nonempty.any():
            continue
        for protocol, tol in (("exact", 1e-12), ("dias-v3", 1e-6)):
            out = segmentation_metrics(one_hot(pred[None], c), one_hot(gt[None], d), protocol)
            assert out["miou"].item() == pytest.approx(miou_brute(iou, nonempty), abs=tol)
            assert out["mbo"].item() == pytest.approx(mbo_brute(iou, nonempty), abs=tol)


def test_float32_iou_is_the_correctly_rounded_ratio_of_exact_counts():
    """The authors: intersect.float() / (float(|pd| + |gt|) − intersect), i.e. float32(I) / float32(U)."""
    rng = np.random.default_rng(4)
    pred = rng.integers(0, 5, (3, 4000))
    gt = np.where(rng.random((3, 4000)) < 0.1, VOID, rng.integers(0, 7, (3, 4000)))
    cont, pred_sizes, gt_sizes = counts.pixel_counts(one_hot(pred, 5), one_hot(gt, 7))
    got = iou_matrix(cont, pred_sizes, gt_sizes, torch.float32).numpy()
    for i in range(3):
        for p in range(5):
            for g in range(7):
                inter = np.sum((pred[i] == p) & (gt[i] == g))
                union = np.sum(pred[i] == p) + np.sum(gt[i] == g) - inter
                expected = np.float32(inter) / np.float32(union) if union else np.float32(0)
                assert got[i, p, g] == expected


def test_pixel_counts_match_a_float64_einsum_in_chunks(monkeypatch):
    rng = np.random.default_rng(5)
    pred = torch.from_numpy(rng.random((7, 300, 4)) < 0.4)  # overlapping pred channels too
    gt = torch.from_numpy(rng.random((7, 300, 6)) < 0.3)
    reference = torch.einsum("bnc,bnd->bcd", pred.double(), gt.double()).long()
    monkeypatch.setattr(counts, "_CHUNK_ELEMENTS", 300 * 7 * 2)  # chunks of 2 images
    got = counts.pixel_counts(pred, gt)
    assert torch.equal(got.contingency, reference)
    assert torch.equal(got.pred_sizes, pred.sum(1))
    assert torch.equal(got.gt_sizes, gt.sum(1))
    # the CPU fast path (numpy conversion) and the device path (torch conversion) build the same operands
    for dtype in (torch.float32, torch.float64):
        assert torch.equal(counts._with_ones_numpy(gt, dtype), counts._with_ones_torch(gt, dtype))


def test_batch_equals_images_one_by_one():
    rng = np.random.default_rng(6)
    pred = rng.integers(0, 4, (9, 500))
    gt = np.where(rng.random((9, 500)) < 0.1, VOID, rng.integers(0, 5, (9, 500)))
    for protocol in ("exact", "dinosaur"):
        batch = segmentation_metrics(one_hot(pred, 4), one_hot(gt, 5), protocol)
        for i in range(9):
            single = segmentation_metrics(one_hot(pred[i:i + 1], 4), one_hot(gt[i:i + 1], 5), protocol)
            for key in batch:
                torch.testing.assert_close(batch[key][i:i + 1], single[key], rtol=0, atol=1e-15)


@pytest.mark.parametrize("protocol", ["dias-v3", "exact", "dinosaur", "spot"])
def test_edge_shapes(protocol):
    dtype = torch.float32 if protocol == "dias-v3" else torch.float64
    # b = 0
    out = segmentation_metrics(torch.zeros(0, 16, 3, dtype=torch.bool), torch.zeros(0, 16, 4, dtype=torch.bool),
                               protocol)
    assert all(v.shape == (0,) for v in out.values())
    assert out["ari"].dtype == dtype and out["valid"].dtype == torch.bool
    # empty gt ⇒ invalid; mBO/mIoU undefined (NaN), ARI 1 by the formula. Where unlabelled pixels are
    # background (dinosaur, spot) the image is all background: valid, but without foreground.
    pred = one_hot(np.zeros((2, 8), np.int64), 2)
    empty = torch.zeros(2, 8, 3, dtype=torch.bool)
    out = segmentation_metrics(pred, empty, protocol)
    assert out["valid"].tolist() == [protocol in ("dinosaur", "spot")] * 2
    assert not out["valid_fg"].any()
    assert (out["ari"] == 1).all() and (out["ari_fg"] == 1).all()
    assert out["mbo"].isnan().all() and out["miou"].isnan().all()  # no gt segment that these metrics score
    # no gt channels at all (d = 0) and no pred channels (c = 0)
    out = segmentation_metrics(pred, torch.zeros(2, 8, 0, dtype=torch.bool), protocol)
    assert not out["valid"].any()
    gt = one_hot(np.array([[0, 0, 1, 1, 1, 2, 2, 2]] * 2), 3)
    out = segmentation_metrics(torch.zeros(2, 8, 0, dtype=torch.bool), gt, protocol)
    assert out["valid"].all() and (out["mbo"] == 0).all() and (out["miou"] == 0).all()
    # N = 0 pixels
    out = segmentation_metrics(torch.zeros(1, 0, 2, dtype=torch.bool), torch.zeros(1, 0, 2, dtype=torch.bool),
                               protocol)
    assert not out["valid"].any()


def test_perfect_prediction_scores_one():
    gt = np.array([[0, 0, 1, 1, 2, 2, 2, VOID]])
    pred = np.array([[2, 2, 0, 0, 1, 1, 1, 1]])
    for protocol in PROTOCOLS:
        out = segmentation_metrics(one_hot(pred, 3), one_hot(gt, 3), protocol)
        assert out["ari"].item() == 1.0 and out["ari_fg"].item() == 1.0
        # the slot covering the VOID pixel has |pred| = 4 > |gt| = 3
        assert out["mbo"].item() == pytest.approx((1 + 1 + 3 / 4) / 3, rel=1e-6)


def test_bad_inputs_are_named():
    good = torch.zeros(1, 4, 2, dtype=torch.bool)
    with pytest.raises(MetricInputError, match="pred: expected a bool tensor"):
        segmentation_metrics(good.float(), good)
    with pytest.raises(MetricInputError, match="gt: expected a bool tensor"):
        segmentation_metrics(good, good[0])
    with pytest.raises(MetricInputError, match="differ in batch or pixel count"):
        segmentation_metrics(good, torch.zeros(1, 5, 2, dtype=torch.bool))
    with pytest.raises(KeyError, match="unknown protocol 'nope'; valid: .*dias-v3"):
        segmentation_metrics(good, good, "nope")


def test_counts_stay_exact_under_autocast():
    pred = (np.arange(5000) >= 3001)[None].astype(np.int64)
    gt = (np.arange(5000) >= 1234)[None].astype(np.int64)
    iou = iou_table(pred[0], gt[0], 2, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # bf16 counts would be off by ~1/256
        out = segmentation_metrics(one_hot(pred, 2), one_hot(gt, 2))
    assert out["mbo"].dtype == torch.float32
    assert out["mbo"].item() == pytest.approx(mbo_brute(iou, np.array([True, True])), abs=1e-7)
