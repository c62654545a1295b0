"""Adjusted Rand index from a contingency table, in the authors' arithmetic or exactly.

The authors (DIAS 06e8039 `learn/metric.py: ARI.adjusted_rand_index`) count pairs in int64 and divide with
torch's int/int true division, i.e. in float32. Their `aidx * bidx` is an int64 product that wraps modulo
2^64 once (Σ_gt n²)(Σ_pd n²) reaches 2^63 (docs/reference.md#evaluation-protocol): E turns negative and ARI is inflated.
Published numbers include that effect, so "dias-v3" arithmetic reproduces it; "float64" is the mathematically correct
value.
"""

from __future__ import annotations

import torch

ARITHMETICS = ("dias-v3", "float64")


def wrapping_mul(a, b):
    """`a * b` in two's-complement int64 (the product modulo 2^64, as a signed value), without overflowing.

    Signed overflow is undefined behaviour in C++, so we never ask a backend to overflow: the product is
    assembled from 16-bit limbs (schoolbook; limb products < 2^32, column sums < 2^35) and the top limb is
    read as signed. Works on int64 tensors (any device) and on Python ints, for any signs.
    """
    limbs_a = [(a >> shift) & 0xFFFF for shift in (0, 16, 32, 48)]
    limbs_b = [(b >> shift) & 0xFFFF for shift in (0, 16, 32, 48)]
    limbs, carry = [], 0
    for k in range(4):  # limbs of the product below 2^64; higher columns vanish modulo 2^64
        column = carry + sum(limbs_a[i] * limbs_b[k - i] for i in range(k + 1))
        limbs.append(column & 0xFFFF)
        carry = column >> 16
    top = limbs[3] - ((limbs[3] >> 15) << 16)  # bit 63 set ⇒ negative: top ∈ [−2^15, 2^15)
    return ((top * 65536 + limbs[2]) * 65536 + limbs[1]) * 65536 + limbs[0]


def adjusted_rand_index(contingency: torch.Tensor, arithmetic: str) -> torch.Tensor:
    """ARI per image from an int64 contingency table (b, c, d) = (pred, gt) pixel counts.

    Only pixels that carry a gt label are in the table, so unlabelled (VOID/boundary) pixels drop out.
    Pair counts are ordered-pair counts n(n−1), as the authors and SAVi/OCLF write them.

    "dias-v3": int64 pair counts; E = wrap(aidx·bidx) / max(num(num−1), 1); every division as torch's
    int64/int64 true division does it (both operands cast to float32, then divided); ARI = 1 where the float32
    denominator is 0. Returns float32.
    "float64": the same formula in float64 without the wrap; ARI = 1 exactly where sklearn's
    `adjusted_rand_score` special-cases it (no pair disagrees: ridx = aidx = bidx; for partitions this
    includes every zero denominator) and where the denominator is 0. Returns float64.
    """
    gt_sizes = contingency.sum(1)  # (b,d) labelled pixels per gt channel
    pred_sizes = contingency.sum(2)  # (b,c) labelled pixels per pred channel
    num = gt_sizes.sum(1)
    ridx = (contingency * (contingency - 1)).sum((1, 2))
    aidx = (gt_sizes * (gt_sizes - 1)).sum(1)
    bidx = (pred_sizes * (pred_sizes - 1)).sum(1)
    pairs = (num * (num - 1)).clamp(min=1)
    if arithmetic == "dias-v3":
        f = torch.float32
        expected = wrapping_mul(aidx, bidx).to(f) / pairs.to(f)
        maximum = (aidx + bidx).to(f) / 2
        denominator = maximum - expected
        return torch.where(denominator == 0, 1.0, (ridx.to(f) - expected) / denominator)
    if arithmetic == "float64":
        f = torch.float64
        expected = aidx.to(f) * bidx.to(f) / pairs.to(f)
        denominator = (aidx + bidx).to(f) / 2 - expected
        agree = (ridx == aidx) & (ridx == bidx)
        return torch.where(agree | (denominator == 0), 1.0, (ridx.to(f) - expected) / denominator)
    raise ValueError(f"unknown ARI arithmetic {arithmetic!r}; valid: {', '.join(ARITHMETICS)}")
