"""Paired comparisons between two methods on the same images: is the difference more than seed and image noise?

Per image: each method's value is averaged over the seeds both methods have (the image is the unit of
replication; seeds only add training noise), images valid for both are paired by record key, and the
differences a − b go to a paired t-test and a Wilcoxon signed-rank test (scipy.stats) and a seeded
percentile bootstrap of their mean. Per seed: the seeds' dataset means paired by seed number, a paired t-test and
the t-interval of the mean difference — no Wilcoxon and no bootstrap, which cannot say anything with three seeds
(the Wilcoxon p-value cannot go below 0.25, and a bootstrap of three values only reshuffles them).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

from harness.results import METRICS


@dataclass(frozen=True)
class PairedTest:
    n: int
    mean_a: float
    mean_b: float
    mean_diff: float  # mean of a − b
    t: float
    p_t: float
    w: float
    p_w: float
    ci_low: float
    ci_high: float


def paired_test(a, b, *, n_boot: int = 10_000, seed: int = 0, confidence: float = 0.95) -> PairedTest:
    """Paired t-test, Wilcoxon signed-rank and a bootstrap CI of mean(a − b) on paired samples (NaN where
    undefined: fewer than two pairs; constant differences for the t-test; no non-zero difference for Wilcoxon)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired samples must be two 1-D arrays of one length, got {a.shape} and {b.shape}")
    n = len(a)
    diff = a - b
    nan = math.nan
    if n < 2:
        return PairedTest(n, _mean(a), _mean(b), _mean(diff), nan, nan, nan, nan, nan, nan)
    if np.ptp(diff) > 1e-12 * max(1.0, float(np.abs(diff).max())):
        t = stats.ttest_rel(a, b)
        t_stat, p_t = float(t.statistic), float(t.pvalue)
    else:  # constant differences: no variance, the t statistic is undefined
        t_stat, p_t = nan, nan
    if np.any(diff != 0):
        w = stats.wilcoxon(a, b)
        w_stat, p_w = float(w.statistic), float(w.pvalue)
    else:
        w_stat, p_w = nan, nan
    low, high = bootstrap_ci(diff, n_boot=n_boot, seed=seed, confidence=confidence)
    return PairedTest(n, float(a.mean()), float(b.mean()), float(diff.mean()), t_stat, p_t, w_stat, p_w, low, high)


def seed_test(a, b, *, confidence: float = 0.95) -> PairedTest:
    """Paired t-test and the Student t-interval of mean(a − b) over seeds (NaN with fewer than two seeds; a zero-width
    interval for constant differences); Wilcoxon left NaN."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired samples must be two 1-D arrays of one length, got {a.shape} and {b.shape}")
    n, diff, nan = len(a), a - b, math.nan
    if n < 2:
        return PairedTest(n, _mean(a), _mean(b), _mean(diff), nan, nan, nan, nan, nan, nan)
    mean, sem = float(diff.mean()), float(stats.sem(diff))
    if sem <= 1e-12 * max(1.0, float(np.abs(diff).max())):
        return PairedTest(n, float(a.mean()), float(b.mean()), mean, nan, nan, nan, nan, mean, mean)
    t = stats.ttest_rel(a, b)
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=sem)
    return PairedTest(n, float(a.mean()), float(b.mean()), mean, float(t.statistic), float(t.pvalue), nan, nan,
                      float(low), float(high))


def bootstrap_ci(diff: np.ndarray, *, n_boot: int, seed: int, confidence: float) -> tuple[float, float]:
    """Percentile bootstrap of the mean, resampling with numpy's Generator(seed) in chunks (bounded memory)."""
    rng = np.random.default_rng(seed)
    n = len(diff)
    chunk = max(1, 2_000_000 // n)
    means = np.concatenate([diff[rng.integers(0, n, size=(min(chunk, n_boot - done), n))].mean(axis=1)
                            for done in range(0, n_boot, chunk)])
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(low), float(high)


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if len(x) else math.nan


def image_pairs(images: pd.DataFrame, a: str, b: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-image values of rows `a` and `b` (labels), each averaged over the seeds both have, on the images
    valid for both in every one of those seeds; aligned by record key."""
    rows = images[(images["metric"] == metric) & images["label"].isin([a, b])]
    seeds = set(rows.loc[rows["label"] == a, "seed"]) & set(rows.loc[rows["label"] == b, "seed"])
    rows = rows[rows["seed"].isin(seeds)]
    if rows.empty:
        return np.empty(0), np.empty(0)
    table = rows.pivot_table(index="key", columns=["label", "seed"], values="value", aggfunc="first")
    table = table.dropna()
    if table.empty:
        return np.empty(0), np.empty(0)
    return table[a].mean(axis=1).to_numpy(), table[b].mean(axis=1).to_numpy()


def seed_pairs(frame: pd.DataFrame, a: str, b: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-seed dataset means of rows `a` and `b` on the seeds both have, aligned by seed."""
    rows = frame[(frame["source"] == "ours") & (frame["metric"] == metric) & frame["label"].isin([a, b])]
    table = rows.pivot_table(index="seed", columns="label", values="value", aggfunc="first").dropna()
    if a not in table or b not in table:
        return np.empty(0), np.empty(0)
    return table[a].to_numpy(), table[b].to_numpy()


def compare_rows(frame: pd.DataFrame, images: pd.DataFrame, pairs: list[tuple[str, str]], *,
                 n_boot: int = 10_000, seed: int = 0) -> pd.DataFrame:
    """Every (a, b) label pair × metric × level ("image": paired_test, "seed": seed_test) as one row of test
    results (values 0–1)."""
    out = []
    for a, b in pairs:
        for metric in METRICS:
            image = paired_test(*image_pairs(images, a, b, metric), n_boot=n_boot, seed=seed)
            by_seed = seed_test(*seed_pairs(frame, a, b, metric))
            for level, result in (("image", image), ("seed", by_seed)):
                out.append({"a": a, "b": b, "metric": metric, "level": level, **asdict(result)})
    columns = ["a", "b", "metric", "level", *PairedTest.__dataclass_fields__]
    return pd.DataFrame(out, columns=columns)
