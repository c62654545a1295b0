"""Paired tests against scipy.stats directly, the seeded bootstrap, and image pairing by key and validity."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from harness.report.stats import bootstrap_ci, image_pairs, paired_test, seed_pairs, seed_test

A = [0.61, 0.55, 0.72, 0.48, 0.66, 0.59, 0.70, 0.52]
B = [0.58, 0.50, 0.69, 0.50, 0.60, 0.55, 0.64, 0.49]


def test_paired_test_matches_scipy():
    result = paired_test(A, B, n_boot=2000, seed=3)
    t = stats.ttest_rel(A, B)
    w = stats.wilcoxon(A, B)
    assert result.n == 8
    assert result.t == pytest.approx(t.statistic) and result.p_t == pytest.approx(t.pvalue)
    assert result.w == pytest.approx(w.statistic) and result.p_w == pytest.approx(w.pvalue)
    diff = np.subtract(A, B)
    assert result.mean_diff == pytest.approx(diff.mean()) and result.mean_a == pytest.approx(np.mean(A))
    # hand check of the t statistic: mean(d) / (sd(d)/√n)
    assert result.t == pytest.approx(diff.mean() / (diff.std(ddof=1) / math.sqrt(8)))
    assert result.ci_low < diff.mean() < result.ci_high


def test_bootstrap_is_seeded_and_matches_an_explicit_resampling():
    diff = np.subtract(A, B)
    ci = bootstrap_ci(diff, n_boot=500, seed=11, confidence=0.9)
    assert ci == bootstrap_ci(diff, n_boot=500, seed=11, confidence=0.9)
    rng = np.random.default_rng(11)
    means = [diff[rng.integers(0, len(diff), size=len(diff))].mean() for _ in range(500)]
    assert ci == pytest.approx(tuple(np.quantile(means, [0.05, 0.95])))
    assert bootstrap_ci(np.full(5, 0.25), n_boot=100, seed=0, confidence=0.95) == pytest.approx((0.25, 0.25))


def test_undefined_cases_are_nan_not_errors():
    one = paired_test([0.5], [0.4])
    assert one.n == 1 and one.mean_diff == pytest.approx(0.1) and math.isnan(one.t) and math.isnan(one.ci_low)
    same = paired_test([0.1, 0.2, 0.3], [0.1, 0.2, 0.3], n_boot=10)
    assert math.isnan(same.w) and math.isnan(same.p_w) and same.mean_diff == 0
    with pytest.raises(ValueError, match="paired samples"):
        paired_test([0.1, 0.2], [0.1])


def test_image_pairs_average_common_seeds_on_images_valid_in_both():
    rows = []
    # row a: seeds 1, 2, 3; row b: seeds 1, 2 → common seeds 1, 2. Image k2 is invalid for b in seed 2.
    for label, seed, values in (("a", 1, {"k0": 0.1, "k1": 0.2, "k2": 0.3}),
                                ("a", 2, {"k0": 0.3, "k1": 0.4, "k2": 0.5}),
                                ("a", 3, {"k0": 0.9, "k1": 0.9, "k2": 0.9}),
                                ("b", 1, {"k0": 0.0, "k1": 0.1, "k2": 0.2}), ("b", 2, {"k0": 0.2, "k1": 0.1})):
        rows += [{"label": label, "seed": seed, "key": k, "metric": "ari", "value": v} for k, v in values.items()]
    images = pd.DataFrame(rows)
    a, b = image_pairs(images, "a", "b", "ari")
    assert a.tolist() == pytest.approx([0.2, 0.3])  # k0: (0.1+0.3)/2, k1: (0.2+0.4)/2
    assert b.tolist() == pytest.approx([0.1, 0.1])
    assert image_pairs(images, "a", "b", "mbo")[0].size == 0


def test_seed_pairs_align_by_seed():
    frame = pd.DataFrame([{"source": "ours", "label": label, "seed": seed, "metric": "ari", "value": v}
                          for label, seed, v in (("a", 42, 0.5), ("a", 43, 0.6), ("b", 43, 0.4), ("b", 42, 0.3),
                                                 ("b", 44, 0.9))])
    a, b = seed_pairs(frame, "a", "b", "ari")
    assert a.tolist() == [0.5, 0.6] and b.tolist() == [0.3, 0.4]


def test_constant_differences_have_no_t_statistic():
    result = paired_test([0.6, 0.7, 0.8], [0.3, 0.4, 0.5], n_boot=10)
    assert math.isnan(result.t) and math.isnan(result.p_t)
    assert result.p_w == pytest.approx(stats.wilcoxon([0.3, 0.3, 0.3]).pvalue)
    assert (result.ci_low, result.ci_high) == pytest.approx((0.3, 0.3))


def test_seed_test_is_the_student_t_interval_without_wilcoxon():
    a, b = [0.52, 0.61, 0.47], [0.40, 0.45, 0.44]
    result = seed_test(a, b)
    diff = np.subtract(a, b)
    # by hand: mean ± t(0.975, n−1) · s / √n
    half = 4.302652729911275 * diff.std(ddof=1) / math.sqrt(3)
    assert (result.ci_low, result.ci_high) == pytest.approx((diff.mean() - half, diff.mean() + half))
    assert result.p_t == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert math.isnan(result.w) and math.isnan(result.p_w)


def test_seed_test_degenerate_cases():
    assert math.isnan(seed_test([0.5], [0.4]).ci_low)
    same = seed_test([0.6, 0.7, 0.8], [0.3, 0.4, 0.5])
    assert (same.ci_low, same.ci_high) == pytest.approx((0.3, 0.3)) and math.isnan(same.p_t)
