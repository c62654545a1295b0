"""Independent oracles for the metric tests: label arrays, numpy/Python-int arithmetic, brute force.

Nothing here calls harness.metrics. The dias-v3 ARI oracle redoes the authors' arithmetic
(docs/reference.md#evaluation-protocol) with Python integers (wrap by modulo) and numpy float32 scalars, with a
correctly rounded int → float32.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

VOID = -1


def one_hot(labels: np.ndarray, channels: int) -> torch.Tensor:
    """(b, N) int labels (VOID = no channel) → bool (b, N, channels)."""
    labels = torch.as_tensor(labels, dtype=torch.int64)
    return labels[..., None] == torch.arange(channels)


def contingency(pred: np.ndarray, gt: np.ndarray, c: int, d: int) -> np.ndarray:
    """(c, d) Python-int counts of pixels with pred label i and gt label j (VOID gt pixels excluded)."""
    table = np.zeros((c, d), dtype=object)
    for p, g in zip(pred.tolist(), gt.tolist()):
        if g != VOID and p != VOID:
            table[p, g] += 1
    return table


def float32_of_int(n: int) -> np.float32:
    """Correctly rounded int → float32 (ties to even) using integers only: no double rounding via float64."""
    magnitude = abs(int(n))
    shift = max(magnitude.bit_length() - 24, 0)
    q, r = divmod(magnitude, 1 << shift)
    if shift and (r > (1 << (shift - 1)) or (r == (1 << (shift - 1)) and q & 1)):
        q += 1
    return np.float32((-1 if n < 0 else 1) * q * 2.0 ** shift)  # exact in float64, then in float32


def wrap_int64(n: int) -> int:
    return (n + 2**63) % 2**64 - 2**63


def pair_counts(table: np.ndarray) -> tuple[int, int, int, int]:
    """(ridx, aidx, bidx, num) as Python ints, ordered pairs n(n−1) like the authors."""
    a = [int(x) for x in table.sum(0)] if table.size else [0] * table.shape[1]
    b = [int(x) for x in table.sum(1)] if table.size else [0] * table.shape[0]
    ridx = sum(int(x) * (int(x) - 1) for x in table.flat)
    return ridx, sum(x * (x - 1) for x in a), sum(x * (x - 1) for x in b), sum(a)


def ari_dias_v3(table: np.ndarray) -> np.float32:
    """The authors' ARI: int64 products (aidx·bidx wraps), int/int true division in float32."""
    ridx, aidx, bidx, num = pair_counts(table)
    expected = float32_of_int(wrap_int64(aidx * bidx)) / float32_of_int(max(num * (num - 1), 1))
    maximum = float32_of_int(aidx + bidx) / np.float32(2)
    denominator = np.float32(maximum - expected)
    if denominator == 0:
        return np.float32(1)
    return np.float32((float32_of_int(ridx) - expected) / denominator)


def wraps(table: np.ndarray) -> bool:
    _, aidx, bidx, _ = pair_counts(table)
    return aidx * bidx >= 2**63


def iou_table(pred: np.ndarray, gt: np.ndarray, c: int, d: int) -> np.ndarray:
    """(c, d) float64 IoU with |pred| over all pixels (VOID included), 0 where the union is empty."""
    iou = np.zeros((c, d))
    for i in range(c):
        p = pred == i
        for j in range(d):
            g = gt == j
            union = np.logical_or(p, g).sum()
            iou[i, j] = np.logical_and(p, g).sum() / union if union else 0.0
    return iou


def mbo_brute(iou: np.ndarray, gt_nonempty: np.ndarray) -> float:
    best = iou.max(0) if iou.shape[0] else np.zeros(iou.shape[1])
    return best[gt_nonempty].sum() / gt_nonempty.sum()


def miou_brute(iou: np.ndarray, gt_nonempty: np.ndarray) -> float:
    """Best one-to-one matching by enumerating every permutation of the zero-padded square matrix."""
    c, d = iou.shape
    k = max(c, d)
    square = np.zeros((k, k))
    square[:c, :d] = iou
    best = max((sum(square[i, perm[i]] for i in range(k)) for perm in itertools.permutations(range(k))),
               default=0.0)
    return best / gt_nonempty.sum()
