"""A killed training run resumes by itself and ends bit-identical (on CPU) to an uninterrupted one."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tiny_run import TINY

from harness.errors import HarnessError
from harness.nn.checkpoint import read_weights
from harness.registry import get_config
from harness.run.cell import evaluate_cell
from harness.run.state import TRAIN_STATE
from harness.run.step import NonFiniteLoss
from harness.run.train import train

REPO = Path(__file__).resolve().parents[2]


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = read_weights(a), read_weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("kernels", ["onednn", "blas"])
def test_kill_minus_nine_then_resume_is_bit_identical(tmp_path, synth_dir, kernels, monkeypatch):
    """The killed run is a CLI process, the resumed and the uninterrupted runs are this process: the same thread count
    (conftest) and the same linear kernels, the machine's default (oneDNN here) and PyTorch's BLAS."""
    monkeypatch.setenv("HARNESS_CPU_LINEAR", kernels)
    steps = ["--set", "train.steps=24"]
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "harness", "train", "--method", "dias", "--dataset", "synthetic", "--data-dir",
           str(synth_dir), "--seed", "7", "--out", str(killed)] + [a for o in TINY for a in ("--set", o)] + steps
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    state = killed / TRAIN_STATE
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if state.exists() and torch.load(state, weights_only=True)["step"] >= 6:
            break
        time.sleep(0.01)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(state, weights_only=True)["step"]
    assert 6 <= killed_at < 24 and not (killed / "weights.pth").exists()
    at_kill = torch.load(state, weights_only=True)["model"]["trained"]

    long = get_config("dias", "synthetic", [*TINY, "train.steps=24"])  # the killed CLI run's config
    resumed = train(long, data_dir=synth_dir, run_dir=killed, seed=7, progress=False)
    assert resumed.resumed_from == killed_at and resumed.steps == 24
    straight = train(long, data_dir=synth_dir, run_dir=tmp_path / "straight", seed=7, progress=False)
    assert same_weights(resumed.weights, straight.weights)
    assert resumed.weights.read_bytes() == straight.weights.read_bytes()  # equal weights, equal files
    final = read_weights(straight.weights)
    assert any(not torch.equal(final[k], v) for k, v in at_kill.items())  # the comparison can fail
    assert not state.exists()  # the run is complete: its training state is gone

    a = evaluate_cell(long, data_dir=synth_dir, checkpoint=resumed.weights, seed=7, output=tmp_path / "a.json")
    b = evaluate_cell(long, data_dir=synth_dir, checkpoint=straight.weights, seed=7, output=tmp_path / "b.json")
    assert a["per_image"] == b["per_image"] and a["means"] == b["means"]
    # logs hold every step once, although the killed run logged past its last checkpoint
    rows = (killed / "train.csv").read_text().splitlines()[1:]
    steps_logged = [int(r.split(",")[0]) for r in rows]
    assert steps_logged == sorted(set(steps_logged))


def test_resume_refuses_another_recipe(tmp_path, synth_dir, tiny_config):
    from harness.config import apply_overrides
    from harness.run.state import TrainStateError

    train(tiny_config, data_dir=synth_dir, run_dir=tmp_path, seed=1, progress=False, keep_state=True)
    with pytest.raises(TrainStateError, match="config_hash"):
        train(apply_overrides(tiny_config, ["train.lr=1e-3"]), data_dir=synth_dir, run_dir=tmp_path, seed=1,
              progress=False)
    with pytest.raises(TrainStateError, match="seed"):
        train(tiny_config, data_dir=synth_dir, run_dir=tmp_path, seed=2, progress=False)


def test_non_finite_loss_names_step_and_term_and_keeps_last_checkpoint(tmp_path, synth_dir, tiny_config,
                                                                      monkeypatch):
    import harness.run.train as run_train

    real_build = run_train.build_model
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        model = real_build(*args, **kwargs)
        forward = model.forward

        def bad_forward(images):
            out = forward(images)
            if model.training:
                calls["n"] += 1
                if calls["n"] == 5:  # the 5th training step (step index 4)
                    out.losses["distill"] = out.losses["distill"] * float("nan")
            return out

        model.forward = bad_forward
        return model

    monkeypatch.setattr(run_train, "build_model", poisoned)
    with pytest.raises(NonFiniteLoss, match=r"step 4: loss term 'distill' is nan; the last good checkpoint \(step 3\)"):
        train(tiny_config, data_dir=synth_dir, run_dir=tmp_path, seed=0, progress=False)
    assert torch.load(tmp_path / TRAIN_STATE, weights_only=True)["step"] == 3
    assert not (tmp_path / "weights.pth").exists()


def test_a_resume_on_other_kernels_says_it_cannot_be_bit_identical(tmp_path, synth_dir, tiny_config, monkeypatch,
                                                                    capsys):
    monkeypatch.setenv("HARNESS_CPU_LINEAR", "onednn")
    train(tiny_config, data_dir=synth_dir, run_dir=tmp_path, seed=1, progress=False, keep_state=True)
    assert "other kernels" not in capsys.readouterr().err
    monkeypatch.setenv("HARNESS_CPU_LINEAR", "blas")
    (tmp_path / "run.json").unlink()  # no longer a finished run: the next call resumes from the last state
    train(tiny_config, data_dir=synth_dir, run_dir=tmp_path, seed=1, progress=False)
    err = capsys.readouterr().err
    assert "was written with other kernels (linear 'onednn' → 'blas'" in err and "not be bit-identical" in err


def test_the_curve_and_the_selected_checkpoints_survive_a_resume(tmp_path, synth_dir, tiny_config):
    """docs/reference.md#evaluation-protocol: the authors keep checkpoints from total/2 on and pick one. 12 steps, a
    validation every 6, counting from step 6: each point holds the metrics and the training loss means since the
    previous one; the best of steps 6 and 12 is kept per rule, and a finished run is not trained again."""
    from harness.run.train import selected_checkpoint

    assert (tiny_config.train.val_interval, tiny_config.train.save_since) == (6, 6)
    summary = train(tiny_config, data_dir=synth_dir, run_dir=tmp_path, seed=3, progress=False, log_every=1,
                    keep_state=True)
    assert [p["step"] for p in summary.curve] == [6, 12]
    assert {"ari", "ari_fg", "mbo", "miou", "train_loss", "train_recon", "train_distill"} <= set(summary.curve[0])
    log = [line.split(",") for line in (tmp_path / "train.csv").read_text().splitlines()[1:]]
    losses = {int(row[0]): float(row[2]) for row in log}  # train.csv logs every step here
    assert summary.curve[1]["train_loss"] == pytest.approx(sum(losses[s] for s in range(7, 13)) / 6, rel=1e-5)
    best = max(summary.curve, key=lambda p: p["ari_fg"])
    path, point = selected_checkpoint(tmp_path, "best-val", summary.curve, tiny_config.train)
    assert point is best and path == (tmp_path / ("weights.pth" if best["step"] == 12 else "checkpoints/best-val.pth"))
    assert path.is_file() and selected_checkpoint(tmp_path, "last", summary.curve, tiny_config.train)[0].name == \
        "weights.pth"
    assert torch.load(tmp_path / TRAIN_STATE, weights_only=True)["curve"] == summary.curve
    again = train(tiny_config, data_dir=synth_dir, run_dir=tmp_path, seed=3, progress=False)  # finished: read back
    assert again.resumed_from == 12 and again.curve == summary.curve
    with pytest.raises(HarnessError, match="train.heldout is 0"):
        selected_checkpoint(tmp_path, "best-heldout", summary.curve, tiny_config.train)
