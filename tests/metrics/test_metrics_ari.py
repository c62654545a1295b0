"""ARI and ARI-fg: the authors' int64 wrap (docs/reference.md#acceptance-checks), bit-for-bit float32 arithmetic, and
the exact protocol against sklearn."""

import numpy as np
import pytest
import torch
from metric_oracles import VOID, ari_dias_v3, contingency, float32_of_int, one_hot, wrap_int64, wraps
from sklearn.metrics import adjusted_rand_score

from harness.metrics import segmentation_metrics
from harness.metrics.ari import wrapping_mul

N = 65536
# docs/reference.md#acceptance-checks: 1-D labels over 65 536 pixels; the authors' code gives these (re-run on their
# code 2026-11-23).
SPEC_CASES = [  # (gt cut, pred cut, pred=2 on the last k pixels, authors' ARI, sklearn ARI, mBO = mIoU)
    (60000, 58000, 0, 0.974220, 0.799582, 0.850637),
    (40000, 38000, 0, 0.881506, 0.881506, 0.938684),
    (62000, 60000, 1000, 0.973316, 0.738069, 0.712917),
]


def spec_case(gt_cut, pred_cut, tail):
    gt = (np.arange(N) >= gt_cut).astype(np.int64)
    pred = (np.arange(N) >= pred_cut).astype(np.int64)
    if tail:
        pred[-tail:] = 2
    return pred, gt


@pytest.mark.parametrize("gt_cut, pred_cut, tail, authors, sk, overlap", SPEC_CASES)
def test_spec_overflow_cases(gt_cut, pred_cut, tail, authors, sk, overlap):
    pred, gt = spec_case(gt_cut, pred_cut, tail)
    pd_oh, gt_oh = one_hot(pred[None], pred.max() + 1), one_hot(gt[None], 2)
    v3 = segmentation_metrics(pd_oh, gt_oh, "dias-v3")
    exact = segmentation_metrics(pd_oh, gt_oh, "exact")
    assert v3["ari"].dtype == torch.float32 and exact["ari"].dtype == torch.float64
    assert v3["ari"].item() == pytest.approx(authors, abs=5e-7)
    assert exact["ari"].item() == pytest.approx(sk, abs=5e-7)
    assert exact["ari"].item() == pytest.approx(adjusted_rand_score(gt, pred), abs=1e-12)
    for m in ("mbo", "miou"):
        assert v3[m].item() == pytest.approx(overlap, abs=5e-7)
        assert exact[m].item() == pytest.approx(overlap, abs=5e-7)
    # bit for bit with an independent re-run of the authors' arithmetic (Python ints + numpy float32)
    table = contingency(pred, gt, pred.max() + 1, 2)
    assert v3["ari"].numpy()[0] == ari_dias_v3(table)
    assert wraps(table) == (authors != sk)


def test_wrapping_mul_is_twos_complement_for_any_int64():
    rng = np.random.default_rng(0)
    edges = [0, 1, -1, 2**31, 2**32 - 1, 2**32, 2**62, 2**63 - 1, -(2**63), -(2**63) + 1, 0xFFFF, 0x10000]
    xs = edges + [int(v) for v in rng.integers(-(2**63), 2**63 - 1, 500, dtype=np.int64)]
    ys = edges[::-1] + [int(v) for v in rng.integers(-(2**63), 2**63 - 1, 500, dtype=np.int64)]
    expected = [wrap_int64(x * y) for x, y in zip(xs, ys)]
    a, b = torch.tensor(xs, dtype=torch.int64), torch.tensor(ys, dtype=torch.int64)
    assert wrapping_mul(a, b).tolist() == expected
    assert [wrapping_mul(x, y) for x, y in zip(xs, ys)] == expected  # Python ints take the same path
    # The backend happens to wrap too (what the authors' CUDA run relied on); we do not rely on it.
    assert (a * b).tolist() == expected


def test_int64_to_float32_is_correctly_rounded():
    """The wrapped product exceeds 2^53, where int64 → float64 → float32 would round twice; the authors'
    CUDA cast (__ll2float_rn) rounds once. Our CPU cast must too, or E differs in the last bit."""
    traps = [2**60 + 2**36 + 1, -(2**60 + 2**36 + 1), 2**62 + 2**38 + 1, -(2**63) + 2**39 + 1, 2**55 + 2**31 + 1]
    rng = np.random.default_rng(1)
    values = traps + [int(v) for v in rng.integers(-(2**63), 2**63 - 1, 2000, dtype=np.int64)]
    got = torch.tensor(values, dtype=torch.int64).to(torch.float32).numpy()
    assert [float(g) for g in got] == [float(float32_of_int(v)) for v in values]
    # and the traps do separate correct rounding from double rounding
    assert float(np.float32(float(traps[0]))) != float(float32_of_int(traps[0]))


def test_int_division_follows_torch_true_division():
    """The authors divide int64 tensors by int64 tensors; that is float32(a) / float32(b) in torch."""
    rng = np.random.default_rng(2)
    a = torch.from_numpy(rng.integers(-(2**62), 2**62, 5000, dtype=np.int64))
    b = torch.from_numpy(rng.integers(1, 2**40, 5000, dtype=np.int64))
    assert torch.equal(a / b, a.to(torch.float32) / b.to(torch.float32))
    assert torch.equal((a + b) / 2, (a + b).to(torch.float32) / 2)


def random_labels(rng, n, c, d, void=0.0, single=False):
    """One image: pred labels in [0, c), gt labels in [0, d) or VOID; some labels unused (empty channels)."""
    pred = rng.integers(0, max(1, rng.integers(1, c + 1)), n) if not single else np.zeros(n, np.int64)
    used = rng.choice(d, size=rng.integers(1, d + 1), replace=False)
    gt = used[rng.integers(0, len(used), n)] if not single else np.zeros(n, np.int64)
    if rng.random() < 0.5:  # blocky segments, like real masks, alongside salt-and-pepper ones
        gt = np.sort(gt)
        pred = np.sort(pred) if rng.random() < 0.5 else pred
    gt = np.where(rng.random(n) < void, VOID, gt)
    return pred, gt


def random_batches(seed, count, n, c_max=8, d_max=8, batch=8):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        c, d = int(rng.integers(1, c_max + 1)), int(rng.integers(1, d_max + 1))
        images = [random_labels(rng, n, c, d, void=rng.choice([0, 0.1, 0.5]), single=rng.random() < 0.1)
                  for _ in range(batch)]
        pred = np.stack([p for p, _ in images])
        gt = np.stack([g for _, g in images])
        yield pred, gt, c, d


def test_exact_equals_sklearn_on_labelled_pixels():
    checked = 0
    for n in (1, 2, 7, 300):
        for pred, gt, c, d in random_batches(seed=n, count=12, n=n):
            out = segmentation_metrics(one_hot(pred, c), one_hot(gt, d), "exact")
            for i in range(len(pred)):
                labelled = gt[i] != VOID
                expected = adjusted_rand_score(gt[i][labelled], pred[i][labelled])
                assert out["ari"][i].item() == pytest.approx(expected, abs=1e-10, rel=1e-10)
                fg = gt[i] > 0
                expected_fg = adjusted_rand_score(gt[i][fg], pred[i][fg])
                assert out["ari_fg"][i].item() == pytest.approx(expected_fg, abs=1e-10, rel=1e-10)
                assert out["valid"][i].item() == bool(labelled.any())
                assert out["valid_fg"][i].item() == bool(fg.any())
                checked += 1
    assert checked >= 384


def test_dias_v3_matches_the_authors_arithmetic_bit_for_bit_including_wraps():
    """Large-background images: many wrap. Every ARI and ARI-fg equals the Python-int/numpy-float32 re-run."""
    rng = np.random.default_rng(7)
    n_wrapped, rows = 0, []
    for _ in range(48):
        bg, slot = rng.uniform(0.6, 0.995), rng.uniform(0.6, 0.995)
        gt = np.where(rng.random(N) < bg, 0, rng.integers(1, 6, N))
        gt = np.where(rng.random(N) < 0.02, VOID, gt)
        pred = np.where(rng.random(N) < slot, 0, rng.integers(1, 7, N))
        rows.append((pred, np.sort(gt) if rng.random() < 0.5 else gt))
    pred, gt = np.stack([p for p, _ in rows]), np.stack([g for _, g in rows])
    out = segmentation_metrics(one_hot(pred, 7), one_hot(gt, 6), "dias-v3")
    for i in range(len(rows)):
        table = contingency(pred[i], gt[i], 7, 6)
        n_wrapped += wraps(table)
        assert out["ari"].numpy()[i] == ari_dias_v3(table)
        assert out["ari_fg"].numpy()[i] == ari_dias_v3(table[:, 1:])
    assert n_wrapped >= 10  # the test exercises the wrap


def test_dias_v3_equals_exact_when_nothing_wraps():
    for pred, gt, c, d in random_batches(seed=11, count=40, n=400):
        pd_oh, gt_oh = one_hot(pred, c), one_hot(gt, d)
        v3, exact = segmentation_metrics(pd_oh, gt_oh, "dias-v3"), segmentation_metrics(pd_oh, gt_oh, "exact")
        for key in ("ari", "ari_fg"):
            torch.testing.assert_close(v3[key].double(), exact[key], atol=2e-5, rtol=0)
        for i in range(len(pred)):
            table = contingency(pred[i], gt[i], c, d)
            assert not wraps(table)
            assert v3["ari"].numpy()[i] == ari_dias_v3(table)


def test_ari_fg_removes_gt_channel_0_only():
    # gt: background on the left half, two objects on the right; pred splits the background in two.
    gt = np.array([[0, 0, 0, 0, 1, 1, 2, 2]])
    pred = np.array([[0, 0, 1, 1, 2, 2, 3, 3]])
    out = segmentation_metrics(one_hot(pred, 4), one_hot(gt, 3), "exact")
    assert out["ari_fg"].item() == 1.0  # the objects are recovered; the background split is not judged
    assert out["ari"].item() == pytest.approx(adjusted_rand_score(gt[0], pred[0]))
    assert out["ari"].item() < 1.0
    # predictions are untouched: a pred segment spanning background and an object still splits nothing fg
    pred2 = np.array([[0, 0, 0, 0, 0, 0, 1, 1]])
    out2 = segmentation_metrics(one_hot(pred2, 2), one_hot(gt, 3), "dias-v3")
    assert out2["ari_fg"].item() == 1.0


def test_single_segment_and_degenerate_images():
    # all labelled pixels in one segment on both sides ⇒ ARI 1 (denominator 0)
    ones = np.zeros((1, 50), np.int64)
    for protocol in ("dias-v3", "exact"):
        out = segmentation_metrics(one_hot(ones, 3), one_hot(ones, 2), protocol)
        assert out["ari"].item() == 1.0 and out["valid"].item() and not out["valid_fg"].item()
    # every pixel its own segment on both sides ⇒ ARI 1 (sklearn's special case)
    unique = np.arange(6)[None]
    for protocol in ("dias-v3", "exact"):
        assert segmentation_metrics(one_hot(unique, 6), one_hot(unique, 6), protocol)["ari"].item() == 1.0
    # one gt segment, several pred segments ⇒ ARI 0 (sklearn)
    pred = np.array([[0, 0, 1, 1, 2]])
    assert adjusted_rand_score(ones[0, :5], pred[0]) == 0.0
    assert segmentation_metrics(one_hot(pred, 3), one_hot(ones[:, :5], 1), "exact")["ari"].item() == 0.0
