"""The one optimiser step (harness.run.step) against oracles written out here, not against another run of itself:
the learning rate and loss weights a real training run logs at every step equal the authors' schedule formulas at
0-based steps; one step equals zero-grad, the weighted losses, the method's clip and Adam at the oracle rate; and
`bench` takes the very step training takes, hook for hook."""

import copy
import csv
import math

import pytest
import torch
from tiny_run import TINY

from harness.registry import get_config
from harness.run.step import Stepper
from harness.run.train import build_model, train
from harness.tools.bench import train_step as bench_step


def authors_lr(step: int, total: int, base: float, final_ratio: float = 1e-3) -> float:
    """CbLinearCosine (docs/reference.md#hyper-parameters): 0 → base linearly over total/20 steps, then half a cosine
    to base·final_ratio at `total`; the 0-based step before it is taken, so step 0 runs at 0."""
    warm = total // 20
    if step < warm:
        return base * step / warm
    progress = (step - warm) / (total - warm)
    return base * final_ratio + 0.5 * base * (1 - final_ratio) * (1 + math.cos(math.pi * progress))


def authors_ramp(step: int, total: int, start: float, end: float) -> float:
    """CbCosine: start → end along half a cosine over the run."""
    return end + 0.5 * (start - end) * (1 + math.cos(math.pi * min(step, total) / total))


def test_a_logged_run_follows_the_authors_schedule_at_every_0_based_step(tmp_path, synth_dir):
    overrides = [o for o in TINY if not o.startswith("train.warmup_steps")] + ["train.steps=40"]
    config = get_config("dias", "synthetic", overrides)
    train(config, data_dir=synth_dir, run_dir=tmp_path, seed=0, progress=False, log_every=1)
    with open(tmp_path / "train.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(1, 41))  # logged after the step: row k is step k − 1
    ramp = config.train.loss_weights["distill"]
    for row in rows:
        step = int(row["step"]) - 1
        assert float(row["lr"]) == pytest.approx(authors_lr(step, 40, config.train.lr), rel=1e-5, abs=1e-12), step
        assert float(row["w_distill"]) == pytest.approx(authors_ramp(step, 40, ramp.start, ramp.end), abs=1e-6)
    assert float(rows[0]["lr"]) == 0.0 and float(rows[2]["lr"]) == pytest.approx(config.train.lr)


@pytest.mark.parametrize("method,norm", [("dias", 2.0), ("spot", math.inf)])
def test_one_step_equals_the_step_written_out(method, norm, synth_dir, monkeypatch):
    """Step 7 of 40: the harness's step and a plain zero-grad, weighted losses, `clip_grad_norm_` on the method's
    norm (DIAS L2 to 1, SPOT infinity to 0.3) and Adam at the oracle rate give the same parameters."""
    monkeypatch.setenv("HARNESS_CPU_LINEAR", "blas")  # the written-out forward runs torch's own linear layers
    config = get_config(method, "synthetic", [*TINY, "train.steps=40", "dtype=float64"])
    assert config.train.grad_clip_norm_type == norm
    torch.manual_seed(0)
    ours = build_model(config, torch.device("cpu")).train()
    oracle = copy.deepcopy(ours)
    images = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    step, total = 7, config.train.steps

    torch.manual_seed(1)
    result = Stepper(ours, config.train, torch.device("cpu"), "off")(step, lambda: ours(images).losses)

    params = [p for p in oracle.parameters() if p.requires_grad]
    adam = torch.optim.Adam(params, lr=authors_lr(step, total, config.train.lr))
    torch.manual_seed(1)
    losses = oracle(images).losses
    weights = {name: 1.0 for name in losses}
    if "distill" in losses:
        ramp = config.train.loss_weights["distill"]
        weights["distill"] = authors_ramp(step, total, ramp.start, ramp.end)
    loss = sum(weights[name] * value for name, value in losses.items())
    adam.zero_grad()
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(params, config.train.grad_clip, norm_type=norm)
    adam.step()

    assert result["lr"] == pytest.approx(authors_lr(step, total, config.train.lr), rel=1e-12)
    assert float(result["grad_norm"]) == pytest.approx(float(grad_norm), rel=1e-12)
    assert float(result["loss"].detach()) == pytest.approx(float(loss.detach()), rel=1e-12)
    for (name, a), b in zip(ours.named_parameters(), oracle.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15, msg=name)
    moved = [not torch.equal(a, b) for a, b in zip(ours.parameters(), build_model(config, torch.device("cpu"),
                                                                                    initial=False).parameters())]
    assert any(moved)


def hooks_of(model, calls: list):
    """Record every call of the model's optimiser, clip and per-step hook (the contract's abilities)."""
    for name in ("optimizer", "clip_gradients", "before_step"):
        real = getattr(model, name)

        def spy(*args, _name=name, _real=real):
            calls.append((_name, *[a for a in args if isinstance(a, int)]))
            return _real(*args)

        setattr(model, name, spy)
    return model


@pytest.mark.parametrize("method", ["dias", "spot"])
def test_bench_takes_the_training_step_hook_for_hook(method, tmp_path, synth_dir, monkeypatch):
    import harness.run.train as run_train

    config = get_config(method, "synthetic", [*TINY, "train.steps=3", "train.warmup_steps=1", "train.val_interval=3"])
    trained: list = []
    build = run_train.build_model
    monkeypatch.setattr(run_train, "build_model", lambda *a, **k: hooks_of(build(*a, **k), trained))
    train(config, data_dir=synth_dir, run_dir=tmp_path, seed=0, progress=False)

    benched: list = []
    model = hooks_of(build(config, torch.device("cpu"), initial=False), benched)
    step = bench_step(model, config, torch.randn(8, 3, 32, 32), torch.device("cpu"), cached=False)
    for _ in range(3):
        step()
    assert benched == trained == [("optimizer",), *[call for s in range(3) for call in (("before_step", s, 3),
                                                                                        ("clip_gradients",))]]
