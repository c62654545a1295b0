"""From per-image values to the table: dataset means, seed mean ± std, and the authors' display rounding.

- Dataset mean (DIAS 06e8039 `learn/callback_log.py: AverageLog.mean`): per-image float32 values of all
  batches, masked by `valid`, `np.mean` — numpy's pairwise float32 summation, a float32 result. We call
  numpy the same way, so the mean is theirs to the bit; protocols with float64 means use an exact sum.
- Seeds (their acc-v3.xlsx): `AVERAGE(range)*100` and `STDEV(range)*100` — sample std (n−1) of the 0–1
  values, multiplied after — shown as `TEXT(x,"0.0")&"±"&TEXT(s,"0.0")`.
- Excel's TEXT rounds half away from zero on the value as Excel shows it (15 significant digits), so 0.15 →
  "0.2" and 0.25 → "0.3", where Python's round() gives 0.1 (binary 0.1499…) and 0.2 (banker's rounding).
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from typing import Mapping, Sequence

import numpy as np
import torch

from harness.errors import HarnessError
from harness.metrics.protocols import DEFAULT_PROTOCOL, METRICS, PROTOCOLS, Protocol


class MissingValueError(HarnessError):
    """An image that a mean counts has no value (e.g. a ledger written under another protocol's flags)."""


def _as_array(values) -> np.ndarray:
    """Tensor, array or list (None = no value, as result ledgers store invalid images) → float64 array."""
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().to(torch.float64).numpy()
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def dataset_mean(values, valid=None, dtype: str = "float32") -> float | None:
    """Plain mean of the per-image `values` where `valid` (all images if None); None if there are none.

    dtype "float32": the authors' `np.mean` of float32 values (their per-image values are float32, so the
    cast is exact for them); "float64": the exactly rounded sum (math.fsum) divided by the count.
    """
    values = _as_array(values)
    if valid is not None:
        values = values[_as_array(valid).astype(bool)]
    if values.size == 0:
        return None
    if np.isnan(values).any():
        missing = int(np.isnan(values).sum())
        raise MissingValueError(f"{missing} of the {values.size} images in the mean have no value")
    if dtype == "float32":
        return float(np.mean(values.astype(np.float32)))
    if dtype == "float64":
        return math.fsum(values) / values.size
    raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")


def dataset_means(per_image: Mapping[str, Sequence], protocol: str | Protocol = DEFAULT_PROTOCOL
                  ) -> dict[str, float | None]:
    """Means of `ari`, `ari_fg`, `mbo`, `miou` over the images the protocol counts for each (see
    `Protocol.mean_over`), from per-image arrays and the `valid` / `valid_fg` flags."""
    spec = protocol if isinstance(protocol, Protocol) else PROTOCOLS.get(protocol)
    means = {}
    for metric in METRICS:
        rule = spec.mean_over(metric)
        try:
            means[metric] = dataset_mean(per_image[metric], None if rule == "all" else per_image[rule],
                                         spec.mean_dtype)
        except MissingValueError as e:
            raise MissingValueError(f"{metric} under protocol {spec.name!r} (images: {rule}): {e}") from None
    return means


def seed_mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std (ddof=1) of per-seed 0–1 values, in percent: Excel's AVERAGE(...)*100 and
    STDEV(...)*100 in double arithmetic. The std of a single seed is NaN (Excel: #DIV/0!)."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("no seed values")
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else math.nan
    return mean * 100, std * 100


def excel_text(x: float, decimals: int = 1) -> str:
    """Excel `TEXT(x, "0.0")` (for decimals=1): half away from zero on x's 15-significant-digit value.

    A negative value that rounds to zero keeps its sign ("-0.0"), as we understand Excel's number format to
    do; that case is not verified against Excel (metric means are not negative in practice).
    """
    if not math.isfinite(x):
        raise ValueError(f"cannot format {x!r} as Excel TEXT")
    shown = Decimal(format(x, ".15g"))
    return str(shown.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP))


def format_mean_std(mean: float, std: float, decimals: int = 1) -> str:
    """The xlsx's `mean±std` text column, e.g. "80.9±0.3"."""
    return f"{excel_text(mean, decimals)}±{excel_text(std, decimals)}"
