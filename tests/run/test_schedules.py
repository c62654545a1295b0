"""LR and loss-weight schedules against the authors' list-based schedules, written out independently here."""

import math

import pytest

from harness.config import TrainConfig, WeightSchedule
from harness.run.schedules import learning_rate, loss_weights


def authors_linear_cosine(nlin, ntotal, vstart, vbase, vfinal):
    """docs/reference.md#hyper-parameters / CbLinearCosine: nlin+1 linear values, then ncos cosine values (indices 1..ncos)."""
    ncos = ntotal - nlin
    lin = [(vbase - vstart) / nlin * n + vstart for n in range(nlin + 1)]
    cos = [0.5 * (vbase - vfinal) * (1 + math.cos(math.pi * n / ncos)) + vfinal for n in range(1, ncos + 1)]
    return lin + cos


def config(steps, lr=2e-4, **kw):
    return TrainConfig(steps=steps, batch_size=2, lr=lr, warmup_steps=steps // 20, val_interval=steps,
                       save_since=steps // 2, **kw)


@pytest.mark.parametrize("steps", [100, 1000, 50_000])
def test_learning_rate_is_the_authors_linear_cosine(steps):
    tc = config(steps)
    expected = authors_linear_cosine(steps // 20, steps, 0.0, tc.lr, tc.lr / 1e3)
    got = [learning_rate(s, tc) for s in range(steps + 1)]
    assert len(expected) == steps + 1
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-18)
    assert got[0] == 0.0  # the first step runs at lr 0, as theirs does
    assert got[steps // 20] == pytest.approx(tc.lr)
    assert got[-1] == pytest.approx(tc.lr / 1e3)


def test_distillation_weight_cosine_zero_to_one():
    tc = config(1000, loss_weights={"distill": WeightSchedule(kind="cosine", start=0.0, end=1.0)})
    w = [loss_weights(s, tc, ["recon", "distill"]) for s in (0, 500, 1000)]
    assert [x["recon"] for x in w] == [1.0, 1.0, 1.0]
    assert [x["distill"] for x in w] == pytest.approx([0.0, 0.5, 1.0])
    # CbCosine: 0.5·(vbase − vfinal)·(1 + cos(π n / N)) + vfinal with vbase=0, vfinal=1
    assert loss_weights(250, tc, ["distill"])["distill"] == pytest.approx(0.5 * (0 - 1) * (1 + math.cos(math.pi / 4)) + 1)


def test_weight_schedule_delay_and_span():
    s = WeightSchedule(kind="cosine", start=0.0, end=0.2, steps=100, delay=50)
    assert s(0, 1000) == 0.0 and s(50, 1000) == 0.0
    assert s(100, 1000) == pytest.approx(0.1)
    assert s(150, 1000) == pytest.approx(0.2) and s(999, 1000) == pytest.approx(0.2)
    assert WeightSchedule(kind="constant", end=0.3)(7, 10) == 0.3
    with pytest.raises(ValueError, match="unknown weight schedule"):
        WeightSchedule(kind="step")(1, 10)
