"""Worker side of the data-parallel tests: spawned processes import this module (not a test module)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

import harness.run.loader as run_loader
import harness.run.step as run_step
import harness.run.train as run_train
from harness.registry import get_config
from harness.run.cell import evaluate_cell
from harness.run.distributed import process_group

# A tiny DINOSAUR: 6 steps at global batch 8 over 17 images (batches of 8, 8, 1: the short last batch leaves
# rank 1 of 2 an empty shard), warm-up 1 step, validation on 16 images in batches of 6 (rank 0 takes batches 0
# and 2, rank 1 batch 1), fp32, no SA dropout, a train.csv row every step.
DINOSAUR = ["train.steps=6", "train.batch_size=8", "train.warmup_steps=1", "train.val_interval=3",
            "train.checkpoint_interval=3", "train.num_workers=0", "train.amp=off", "eval.batch_size=6",
            "sa_dropout=0.0", "num_slots=3"]
DIAS_EVAL = ["eval.batch_size=6", "num_slots=3"]
SEED = 5


def deterministic(build_model):
    """build_model with the slot initialiser's logstd at −inf: exp(−inf) = 0, so the training slot noise
    ε·exp(logstd) vanishes (its gradient too, so Adam leaves logstd at −inf) and the model is a function of its
    inputs. Nothing else of the method changes."""

    def build(*args, **kwargs):
        model = build_model(*args, **kwargs)
        with torch.no_grad():
            model.initializ.logstd.fill_(float("-inf"))
        return model

    return build


def train_dinosaur(synth: Path, run_dir: Path):
    return run_train.train(get_config("dinosaur", "synthetic", DINOSAUR), data_dir=synth, run_dir=run_dir, seed=SEED,
                           progress=False, log_every=1, keep_state=True)


def evaluate_both(synth: Path, weights: Path, out: Path, feature_cache: Path) -> None:
    """A trained DINOSAUR (weights; its DINOv2 features from `feature_cache`, written by the single process and
    read by the ranks) and an untrained DIAS, whose slot noise is sampled at evaluation too."""
    evaluate_cell(get_config("dinosaur", "synthetic", DINOSAUR), data_dir=synth, checkpoint=weights, seed=SEED,
                  output=out / "dinosaur.json", gallery=10, feature_cache=feature_cache)
    evaluate_cell(get_config("dias", "synthetic", DIAS_EVAL), data_dir=synth, checkpoint=None, seed=SEED,
                  output=out / "dias.json", gallery=0)


def sharded_wrongly(n, batch_size, index, rank, world):
    """Every rank takes rank 0's shard: the ranks together see half of each batch twice."""
    return SHARD(n, batch_size, index, 0, world)


SHARD = run_loader.shard


class Interrupted(Exception):
    pass


def interrupt_at(step: int):
    """learning_rate that stops the run when asked for `step`, on every rank alike (a kill after a checkpoint)."""

    def lr(s, train):
        if s == step:
            raise Interrupted
        return LEARNING_RATE(s, train)

    return lr


LEARNING_RATE = run_step.learning_rate


def worker(rank: int, world: int, port: int, synth: Path, out: Path, weights: Path) -> None:
    """Rank `rank` of `world`: train as the harness does; a run stopped after its step-3 checkpoint and resumed;
    the two negative controls; then evaluate."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    run_train.build_model = deterministic(run_train.build_model)
    with process_group("cpu", world):
        train_dinosaur(synth, out / "ddp")
        run_step.learning_rate = interrupt_at(4)
        try:
            train_dinosaur(synth, out / "resumed")
        except Interrupted:
            pass
        run_step.learning_rate = LEARNING_RATE
        train_dinosaur(synth, out / "resumed")
        run_loader.shard = sharded_wrongly
        train_dinosaur(synth, out / "wrong-shards")
        run_loader.shard = SHARD
        real_ddp, run_train.DistributedDataParallel = run_train.DistributedDataParallel, lambda model, **kw: model
        train_dinosaur(synth, out / "no-grad-sync")
        run_train.DistributedDataParallel = real_ddp
        evaluate_both(synth, weights, out / "eval", out / "feature-cache")
