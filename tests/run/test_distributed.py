"""Data-parallel training and evaluation (CPU, gloo): K processes at global batch B do what one process does.

The equivalence test trains a tiny DINOSAUR once in this process at global batch 8 and once in 2 spawned processes
(torch.multiprocessing, gloo) at 4 images each, then compares parameters, per-step loss and gradient norm, and
validation metrics; a 2-process run stopped after a checkpoint and resumed ends bit-identical to the straight one. Every
method draws training randomness (slot noise, DIAS's decoder permutations, SA dropout) from per-rank streams, so 1×B and
2×B/2 agree only for a model that is a function of its inputs: the test uses DINOSAUR (no decoder randomness) with SA
dropout 0 and its slot initialiser's logstd filled with −inf (exp → 0: the slot noise vanishes;
ddp_helpers.deterministic) — the method itself is unchanged. Two negative controls in the same processes (every rank
reading rank 0's shard; no gradient all-reduce) must land far outside the tolerance.
"""

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import ddp_helpers
import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from harness.cli import main
from harness.data import SynthConfig, write_synthetic
from harness.nn.checkpoint import read_weights
from harness.run import train as run_train
from harness.run.distributed import DistributedError, World, init_process_group, requested_size
from harness.run.loader import ResumableBatches, loss_scale, shard

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def ddp_synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp-synth")
    write_synthetic(root, SynthConfig(resolution=32, seed=11), train=17, val=16)
    return root


# ---- sharding: the ranks' shards of every global batch are that batch, in order ------------------------------------

@pytest.mark.parametrize("n,batch,world", [(17, 8, 2), (17, 8, 4), (30, 12, 3), (5, 4, 4), (9, 4, 1)])
def test_shards_partition_every_global_batch(n, batch, world):
    single = ResumableBatches(n, batch, seed=3)
    ranks = [ResumableBatches(n, batch, seed=3, rank=r, world=world) for r in range(world)]
    for epoch in (0, 1):
        for s in [single] + ranks:
            s.set_position(epoch, 0)
        for index, (whole, *parts) in enumerate(zip(single, *ranks)):
            size, _, _ = shard(n, batch, index, 0, world)
            scales = [loss_scale(n, batch, index, r, world) for r in range(world)]
            real = [part for part, scale in zip(parts, scales) if scale > 0]
            assert sum(real, []) == whole and len(whole) == size  # union in order = the single-process batch
            assert sum(scales) == pytest.approx(world)  # DDP's average of the scaled means = the global mean
            assert all(part == whole[:1] for part, scale in zip(parts, scales) if scale == 0)  # padding
            if size == batch:  # full batches: equal shards, scale exactly 1
                assert all(len(p) == batch // world for p in parts) and scales == [1.0] * world


def test_empty_shard_of_a_short_last_batch_is_padded_and_weighed_zero():
    # 17 items, batch 8: the last batch holds 1 item; rank 0 of 2 gets nothing, rank 1 the item
    assert shard(17, 8, 2, 0, 2) == (1, 0, 0) and shard(17, 8, 2, 1, 2) == (1, 0, 1)
    assert loss_scale(17, 8, 2, 0, 2) == 0.0 and loss_scale(17, 8, 2, 1, 2) == 2.0
    # a batch of 6 over 4 ranks: 1, 2, 1, 2 items, scales 4·b_r/6
    assert [shard(6, 6, 0, r, 4)[2] - shard(6, 6, 0, r, 4)[1] for r in range(4)] == [1, 2, 1, 2]
    assert [loss_scale(6, 6, 0, r, 4) for r in range(4)] == pytest.approx([4 / 6, 8 / 6, 4 / 6, 8 / 6])


def test_a_batch_not_divisible_by_the_processes_is_refused():
    with pytest.raises(DistributedError, match="global batch size 10 is not divisible by the 4 processes"):
        ResumableBatches(100, 10, seed=0, rank=0, world=4)


# ---- the guard: a run asked for K > 1 processes never trains alone ------------------------------------------------

def clear_launcher_env(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)


def test_single_process_without_a_launcher(monkeypatch):
    clear_launcher_env(monkeypatch)
    assert requested_size() == 1 and requested_size(1) == 1
    assert init_process_group("cpu") == torch.device("cpu") and not torch.distributed.is_initialized()


def test_ddp_flag_without_a_launcher_is_refused(monkeypatch, tmp_path, capsys):
    clear_launcher_env(monkeypatch)
    with pytest.raises(DistributedError, match=r"--ddp 2 asks for 2 processes.*WORLD_SIZE is unset.*torchrun"):
        requested_size(2)
    code = main(["train", "--method", "dinosaur", "--dataset", "synthetic", "--data-dir", str(tmp_path), "--out",
                 str(tmp_path / "run"), "--ddp", "2"])
    assert code == 2 and "--ddp 2 asks for 2 processes" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_world_size_that_cannot_initialise_is_refused(monkeypatch):
    clear_launcher_env(monkeypatch)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")  # MASTER_ADDR / MASTER_PORT missing: the rendezvous cannot start
    with pytest.raises(DistributedError, match="could not be initialised.*refusing to fall back to a single process"):
        init_process_group("cpu")
    assert not torch.distributed.is_initialized()
    with pytest.raises(DistributedError, match="--ddp 4 asks for 4 processes, but the launcher started WORLD_SIZE=2"):
        requested_size(4)
    with pytest.raises(DistributedError, match="--device cuda:1 names one GPU"):
        init_process_group("cuda:1")


def test_world_of_one_is_the_plain_path():
    world = World()
    values = {"a": torch.tensor(1.5)}
    assert world.main and world.gather(3) == [3] and world.average(values) is values


# ---- equivalence: 1 process × 8 images = 2 processes × 4 images ------------------------------------------------------

def test_two_processes_at_half_batch_train_and_evaluate_like_one(tmp_path, ddp_synth, monkeypatch):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each worker: equal kernels on both sides
    try:
        monkeypatch.setattr(run_train, "build_model", ddp_helpers.deterministic(run_train.build_model))
        single = ddp_helpers.train_dinosaur(ddp_synth, tmp_path / "single")
        ddp_helpers.evaluate_both(ddp_synth, single.weights, tmp_path / "single-eval", tmp_path / "feature-cache")
        mp.spawn(ddp_helpers.worker, args=(2, free_port(), ddp_synth, tmp_path, single.weights), nprocs=2)
    finally:
        torch.set_num_threads(threads)

    one, two = read_weights(single.weights), read_weights(tmp_path / "ddp" / "weights.pth")
    state = torch.load(tmp_path / "ddp" / "train_state.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["rng"]) == 2 and state["step"] == 6
    trainable = [k for k in one if "encode_backbone" not in k and "logstd" not in k]
    assert all(torch.isinf(one[k]).all() and torch.equal(one[k], two[k]) for k in one if "logstd" in k)

    def max_diff(other):
        return max((one[k] - other[k]).abs().max().item() for k in trainable)

    diff = max_diff(two)
    resumed = read_weights(tmp_path / "resumed" / "weights.pth")  # stopped after step 3's checkpoint, resumed
    assert json.loads((tmp_path / "resumed" / "run.json").read_text())["resumed_from"] == 3
    assert all(torch.equal(resumed[k], two[k]) for k in two), "a resumed 2-process run is not bit-identical"
    # float reassociation only: a weight gradient sums 8 images' rows in one product or 4 + 4 across the all-reduce
    # (< 2e-5 with PyTorch's BLAS, 5.5e-5 with oneDNN's linears; the controls differ by 0.025)
    assert diff < 1e-4, f"parameters of 1×8 and 2×4 differ by {diff}"
    for control in ("wrong-shards", "no-grad-sync"):
        wrong = max_diff(read_weights(tmp_path / control / "weights.pth"))
        assert wrong > 50 * max(diff, 1e-6), f"the {control} control differs by only {wrong}: the test is blind"

    # every step's global loss and gradient norm (rank 0 logs the all-reduced values)
    rows1, rows2 = read_csv(tmp_path / "single" / "train.csv"), read_csv(tmp_path / "ddp" / "train.csv")
    assert [r["step"] for r in rows1] == [r["step"] for r in rows2] == [str(s) for s in range(1, 7)]
    for a, b in zip(rows1, rows2):
        for key in ("loss", "recon", "grad_norm"):
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-4), (a["step"], key)
    assert read_csv(tmp_path / "single" / "val.csv") == read_csv(tmp_path / "ddp" / "val.csv")

    # sharded evaluation of the same weights (DINOSAUR from cached features): identical per-image ledgers in dataset
    # order, and galleries
    for name in ("dinosaur", "dias"):
        a = json.loads((tmp_path / "single-eval" / f"{name}.json").read_text())
        b = json.loads((tmp_path / "eval" / f"{name}.json").read_text())
        assert a["per_image"] == b["per_image"] and a["means"] == b["means"], name
        assert b["identity"]["processes"] == 2 and len(b["per_image"]["keys"]) == 16
    assert [json.loads((tmp_path / d / "dinosaur.json").read_text())["cost"]["feature_cache"]["status"]
            for d in ("single-eval", "eval")] == ["written", "hit"]
    ga = dict(np.load(tmp_path / "single-eval" / "dinosaur.gallery.npz"))
    gb = dict(np.load(tmp_path / "eval" / "dinosaur.gallery.npz"))
    assert ga.keys() == gb.keys() and all((ga[k] == gb[k]).all() for k in ga)


# ---- the real entry point under torchrun ----------------------------------------------------------------------------

def test_torchrun_runs_the_train_verb(tmp_path, ddp_synth):
    """`torchrun -m harness train` as the README has it (vanilla SA: the quickest method to start)."""
    out = tmp_path / "run"
    overrides = [a for o in ("train.steps=2", "train.batch_size=4", "train.amp=off", "eval.batch_size=8")
                 for a in ("--set", o)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port", str(free_port()),
           "-m", "harness", "train", "--method", "sa", "--dataset", "synthetic", "--data-dir", str(ddp_synth),
           "--seed", "1", "--out", str(out), "--ddp", "2", "--keep-state"] + overrides
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(printed) == 1 and '"processes": 2' in printed[0]  # rank 0 alone prints
    summary = json.loads((out / "run.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 2
    assert torch.load(out / "train_state.pt", weights_only=True)["world_size"] == 2


# ---- what DDP's equivalence rests on, for every registered method --------------------------------------------------

def trainable_models():
    """(name, config, model) of every registered method and stage at its synthetic size."""
    from harness.registry import METHODS, get_config

    for name in METHODS.names():
        if METHODS.get(name).kind != "reference":
            config = get_config(name, "synthetic", ["train.batch_size=2"])
            yield name, config, run_train.build_model(config, torch.device("cpu"), initial=config.stage is None)


def test_no_method_uses_batch_statistics():
    """BatchNorm would normalise by the statistics of B/K images per rank: K processes would not train as one."""
    found = {name: [type(m).__name__ for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
             for name, _, model in trainable_models()}
    assert len(found) >= 7 and not any(found.values()), found


def test_every_trainable_parameter_gets_a_gradient():
    """DDP runs with find_unused_parameters=False: a trainable parameter without a gradient would stall it."""
    unused = {}
    for name, config, model in trainable_models():
        model.train()
        sum(model(torch.randn(2, 3, config.resolution, config.resolution)).losses.values()).backward()
        unused[name] = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert len(unused) >= 7 and not any(unused.values()), unused
