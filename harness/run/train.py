"""Training one cell (method × dataset × seed), docs/reference.md#training-loop-and-seeding. Reads top to bottom: model,
its optimiser step (harness.run.step: schedule, hook, forward, weighted losses, finite check, scaled backward,
unscale, clip, step), data, resume, then the loop — one step per batch, with validation (and the weights kept from
`save_since` on) and a full-state checkpoint every N steps.

A run directory holds: train_state.pt (everything needed to resume; rewritten atomically, removed once the run is
complete unless `keep_state`), weights.pth (written at the end), checkpoints/<rule>.pth (the weights each selection
rule picks, from `train.save_since` on), train.csv / val.csv / tensorboard/ (logs) and run.json (wall time, images/s,
peak memory, hardware, versions). Weights files, and the model in train_state.pt, leave out a frozen pretrained
backbone and name it instead (harness.run.weights); `python -m harness export --authors-layout` writes the authors'
full file. Calling `train` on a directory with a train_state.pt resumes it; on the same machine the result is
bit-identical to an uninterrupted run (the state names the kernels that wrote it, and a resume on other kernels says
that it cannot be).

Data-parallel (inside a process group, harness.run.distributed; e.g. under torchrun): DistributedDataParallel
around the model, `train.batch_size` stays the global batch B and each of the K ranks takes its B/K shard of it
(harness.run.loader), so the ranks together see the single-process batches. Each rank's loss is the mean over its
shard times loss_scale (1 for full batches), DDP averages the gradients: the update is the one of the mean over B
— exact because every method's loss terms are plain means over equally-sized per-image terms (MSE, cross-entropy,
LPIPS means; no batch statistics such as BatchNorm). The model's own randomness is per rank (seeding.seed_rank),
augmentation per sample as in one process. Validation is sharded and gathered (evaluate.py). Rank 0 alone writes;
train_state.pt holds every rank's RNG state, so a run resumes with the same number of processes. All trainable
parameters take part in every forward of every method, hence find_unused_parameters=False.
"""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from harness.compute import KERNEL_FIELDS, device_description, hardware
from harness.config import config_hash, to_dict, torch_dtype
from harness.data import collate, open_split
from harness.errors import HarnessError
from harness.io import atomic_write_text
from harness.metrics import DEFAULT_PROTOCOL
from harness.metrics.aggregate import dataset_means
from harness.nn.checkpoint import is_compact
from harness.registry import METHODS
from harness.run.distributed import current, rank_device
from harness.run.evaluate import evaluate, mean_losses
from harness.run.feature_cache import frozen_backbone
from harness.run.identity import peak_memory_mb, versions
from harness.run.launch import progress_bar
from harness.run.loader import loss_scale, shard, train_loader
from harness.run.runlog import RunLog
from harness.run.seeding import rng_state, seed_everything, seed_rank, set_rng_state
from harness.run.state import TRAIN_STATE, TrainStateError, load_train_state, save_train_state
from harness.run.step import NonFiniteLoss, Stepper
from harness.run.train_data import cached_view, training_split
from harness.run.weights import (
    compact_state,
    frozen_parts,
    load_state,
    load_weights_file,
    read_full_weights,
    save_weights,
)

WEIGHTS = "weights.pth"
SUMMARY = "run.json"
CHECKPOINTS = "checkpoints"  # <rule>.pth: the weights each selection rule picks (SELECTION_RULES)
HELDOUT = "heldout_"  # a curve point's metrics on the held-out training images (`train.heldout`) carry this prefix
# Which checkpoint a cell evaluates: the last one, or the best saved validation (from `train.save_since` on, on
# `train.select_on`) of the reported split — the authors' rule, docs/reference.md#evaluation-protocol — or of the
# held-out training images. Rule → the prefix of the curve's metric it selects on.
SELECTION_RULES = {"best-val": "", "best-heldout": HELDOUT}
SELECTIONS = ("last", *SELECTION_RULES)


@dataclass
class TrainSummary:
    steps: int
    seconds: float
    images_per_second: float
    peak_memory_mb: float
    resumed_from: int
    weights: Path
    curve: list[dict]  # every validation of the run: {"step", metric or loss name: value}


def freeze(model: torch.nn.Module, patterns: list[str]) -> None:
    for name, param in model.named_parameters():
        if any(re.match(p, name) for p in patterns):
            param.requires_grad_(False)


def build_model(config, device: torch.device, stage_weights: str | Path | None = None,
                initial: bool = True) -> torch.nn.Module:
    """The registered model for `config`, frozen as configured.

    initial=True: the state training starts from — pretrained backbone weights loaded (when the config names
    them) and the prerequisite stage loaded (when the method has one; its weights file full or compact). initial=False:
    the bare architecture, for loading complete weights (ours or the authors', which contain backbone and stage) next.
    """
    spec = METHODS.get(config.method)
    model = spec.build(config, pretrained=initial).to(torch_dtype(config))
    if config.stage is not None and initial:
        if stage_weights is None:
            raise HarnessError(f"{config.method} needs the weights of its stage {config.stage!r}")
        model.load_stage(read_full_weights(stage_weights))
    freeze(model, config.train.freeze)
    return model.to(device)


def train(config, *, data_dir: str | Path, run_dir: str | Path, seed: int, device: str | torch.device = "cpu",
          worker_seeding: str = "per-sample", stage_weights: str | Path | None = None, progress: bool = True,
          log_every: int = 10, feature_cache: str | Path | None = None, keep_state: bool = False) -> TrainSummary:
    """Train `config` on `data_dir` into `run_dir` (resuming its train_state.pt). `feature_cache`: a directory where
    the frozen backbone's features of the train and val splits are computed once and read by every step
    (harness.run.train_data; only where `train.augment` keeps them exact). `keep_state`: keep train_state.pt once the
    run is complete (it is removed by default: only a resume reads it)."""
    run_dir, device, tc, world = Path(run_dir), rank_device(device), config.train, current()
    chash = config_hash(config)
    done = finished_run(run_dir, chash, seed, tc.steps)
    if done is not None:  # nothing left to train (a cell sharing this run, or an evaluation-only rerun)
        return done
    refuse_another_finished_run(run_dir, chash, seed, tc.steps)

    # --- setup: model (its optimiser and clip: harness.contract), AMP scaler, data (on cached features if asked) ---
    seed_everything(seed)
    model = build_model(config, device, stage_weights)
    parts = frozen_parts(model)  # left out of every weights file and state it writes; frozen, so computed once
    seed_rank(seed, world.rank)
    stepper = Stepper(model, tc, device, tc.amp)  # the model's optimiser, clip and hook (harness.contract)
    backbone = frozen_backbone(model) if feature_cache is not None else None
    train_set, heldout_set = training_split(config, data_dir, backbone=backbone, feature_cache=feature_cache,
                                           device=device)
    val_set = open_split(data_dir, config.dataset, "val")
    if backbone is not None:
        val_set = cached_view(val_set, config, backbone, Path(feature_cache), device)
    loader, position = train_loader(train_set, batch_size=tc.batch_size, seed=seed, num_workers=tc.num_workers,
                                    collate_fn=collate, worker_seeding=worker_seeding,
                                    pin_memory=device.type == "cuda", rank=world.rank, world=world.size)

    # --- resume: the full state of the last checkpoint, if the run directory has one ---
    run_dir.mkdir(parents=True, exist_ok=True)
    state_path = run_dir / TRAIN_STATE
    at, curve, interval, kernels = Position(), [], Interval(), kernel_identity(device)
    if state_path.exists():
        state = load_train_state(state_path, config_hash=chash, seed=seed, world_size=world.size)
        if is_compact(state["model"]):
            load_state(model, state["model"], parts, name=str(state_path))
        else:  # written before states were compact: the model's own full state_dict
            model.load_state_dict(state["model"])
        stepper.load_state_dict(state)
        at = Position(state["step"], state["epoch"], state["consumed"], saved=state["step"])
        set_rng_state(state["rng"][world.rank], device)
        curve = [point for point in state.get("curve", []) if point["step"] <= at.step]
        interval = Interval(**state.get("interval", {}))
        warn_if_other_kernels(state.get("kernels"), kernels, state_path)
    resumed_from = at.step
    net = model if world.size == 1 else DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)
    net = compiled(net, tc.compile)

    def save_state() -> None:
        at.saved = at.step
        rngs = world.gather(rng_state(device))  # every rank's own stream, so that each resumes its own
        if world.main:
            save_train_state(state_path, model=compact_state(model, parts), **stepper.state_dict(), step=at.step,
                             epoch=at.epoch, consumed=at.consumed, rng=rngs, world_size=world.size, config_hash=chash,
                             seed=seed, curve=curve, interval=interval.state(), kernels=kernels)

    # --- the loop: schedule → step → log / validate / checkpoint ---
    log = RunLog(run_dir, resume_step=at.step, enabled=world.main)
    checkpoint_every = tc.checkpoint_interval or tc.val_interval
    bar = progress_bar(total=tc.steps, initial=at.step, desc=f"train {config.method}/{config.dataset}/{seed}",
                       unit="step", enabled=progress and world.main)
    started, images_seen = time.perf_counter(), 0
    model.train()
    while at.step < tc.steps:
        position(at.epoch, at.consumed)
        for batch in loader:
            # this rank's share of the global batch: its mean loss × scale, averaged by DDP = the global mean
            scale = loss_scale(len(train_set), tc.batch_size, at.consumed, world.rank, world.size)
            try:
                result = stepper(at.step, lambda: model_losses(net, batch, config, device), scale=scale,
                                 average=world.average)
            except NonFiniteLoss as e:
                raise NonFiniteLoss(f"{e}; the last good checkpoint (step {at.saved}) is kept in {state_path}") from None
            images_seen += shard(len(train_set), tc.batch_size, at.consumed, world.rank, world.size)[0]  # global
            interval.add(result)
            at.step, at.consumed = at.step + 1, at.consumed + 1
            bar.update(1)

            if at.step % log_every == 0 or at.step == tc.steps:
                rate = images_seen / max(time.perf_counter() - started, 1e-9)
                logged = {k: float(v.detach()) if torch.is_tensor(v) else v for k, v in result.items()}  # host sync
                log.write("train", at.step, {**logged, "images_per_s": rate})
                bar.set_postfix(loss=f"{logged['loss']:.4f}")
            if at.step % tc.val_interval == 0 or at.step == tc.steps:
                point = {"step": at.step, **validate(model, config, val_set, device, (chash, seed, at.step))}
                if heldout_set is not None:
                    held = validate(model, config, heldout_set, device, (chash, seed, at.step, "heldout"))
                    point.update({f"{HELDOUT}{name}": value for name, value in held.items()})
                point.update(interval.means())
                curve.append(point)
                log.write("val", at.step, {k: v for k, v in point.items() if k != "step"})
                if world.main and at.step < tc.steps:  # the last step's weights are weights.pth
                    for rule in rules_improved_by(curve, tc):
                        save_weights(model, run_dir / CHECKPOINTS / f"{rule}.pth", parts)
            if at.step % checkpoint_every == 0 or at.step == tc.steps:
                save_state()
            if at.step >= tc.steps:
                break
        else:
            at.epoch, at.consumed = at.epoch + 1, 0
    bar.close()
    log.close()

    # --- the end: weights in the authors' layout and a summary of the run ---
    seconds = time.perf_counter() - started
    weights_path = run_dir / WEIGHTS
    summary = TrainSummary(at.step, seconds, images_seen / max(seconds, 1e-9), peak_memory_mb(device), resumed_from,
                           weights_path, curve)
    if world.main:
        save_weights(model, weights_path, parts)
        record = {"method": config.method, "dataset": config.dataset, "seed": seed, "config_hash": chash,
                  "config": to_dict(config), "steps": at.step, "curve": curve, "resumed_from": resumed_from,
                  "seconds_this_session": seconds, "images_per_second": summary.images_per_second,
                  "peak_memory_mb": summary.peak_memory_mb, "device": device_description(device),
                  "hardware": hardware(device),
                  "processes": world.size, "train_card": train_set.card,
                  "heldout_card": None if heldout_set is None else heldout_set.card, "worker_seeding": worker_seeding,
                  "versions": versions()}
        atomic_write_text(run_dir / SUMMARY, json.dumps(record, indent=1, default=str) + "\n")
        if not keep_state:  # complete: weights.pth and run.json hold what is kept
            state_path.unlink(missing_ok=True)
    world.barrier()  # the weights exist for every rank once train returns
    return summary


def finished_run(run_dir: Path, chash: str, seed: int, steps: int) -> TrainSummary | None:
    """The summary of a run of this recipe that is already complete (its run.json and weights.pth), else None."""
    summary_path, weights = run_dir / SUMMARY, run_dir / WEIGHTS
    if not (summary_path.is_file() and weights.is_file()):
        return None
    record = json.loads(summary_path.read_text())
    if (record.get("config_hash"), record.get("seed"), record.get("steps")) != (chash, seed, steps):
        return None
    return TrainSummary(steps, record["seconds_this_session"], record["images_per_second"], record["peak_memory_mb"],
                        steps, weights, record.get("curve", []))


def refuse_another_finished_run(run_dir: Path, chash: str, seed: int, steps: int) -> None:
    """A finished run has no train_state.pt left to refuse another recipe (harness.run.state): its run.json does."""
    summary_path = run_dir / SUMMARY
    if (run_dir / TRAIN_STATE).exists() or not summary_path.is_file():
        return
    record = json.loads(summary_path.read_text())
    for name, expected in (("config_hash", chash), ("seed", seed), ("steps", steps)):
        if record.get(name) != expected:
            raise TrainStateError(f"{summary_path}: a finished run of {name}={record.get(name)!r}, this run has "
                                  f"{name}={expected!r}; use another run directory")


@dataclass
class Interval:
    """The training loss terms summed since the last validation, for each curve point's `train_<term>` means.
    Sums stay tensors until a point reads them (no host sync per step); the state holds them as floats."""

    sums: dict = field(default_factory=dict)
    steps: int = 0

    def add(self, result: dict) -> None:
        for name, value in result.items():
            if name == "loss" or f"w_{name}" in result:  # the weighted total and every loss term
                self.sums[name] = self.sums.get(name, 0.0) + value.detach()
        self.steps += 1

    def means(self) -> dict[str, float]:
        out = {f"train_{name}": float(total) / max(self.steps, 1) for name, total in self.sums.items()}
        self.sums, self.steps = {}, 0
        return out

    def state(self) -> dict:
        return {"sums": {name: float(total) for name, total in self.sums.items()}, "steps": self.steps}


def best_point(curve: list[dict], key: str, since: int) -> dict | None:
    """The first curve point from step `since` on with the highest `key` (undefined values never win)."""
    points = [p for p in curve if p["step"] >= since and key in p and p[key] == p[key]]
    return max(points, key=lambda p: p[key], default=None)


def rules_improved_by(curve: list[dict], train) -> list[str]:
    """The selection rules whose best saved validation is the curve's last point."""
    return [rule for rule, prefix in SELECTION_RULES.items()
            if best_point(curve, prefix + train.select_on, train.save_since) is curve[-1]]


def selected_checkpoint(run_dir: Path, rule: str, curve: list[dict], train) -> tuple[Path, dict]:
    """(weights file, curve point) a selection rule picks from a finished run."""
    if rule == "last":
        return run_dir / WEIGHTS, curve[-1] if curve else {"step": train.steps}
    if rule not in SELECTION_RULES:
        raise HarnessError(f"unknown selection rule {rule!r}; valid: {', '.join(SELECTIONS)}")
    key = SELECTION_RULES[rule] + train.select_on
    point = best_point(curve, key, train.save_since)
    if point is None:
        raise HarnessError(f"selection {rule!r}: the run has no validation of {key!r} from step {train.save_since} "
                           "on" + (" (train.heldout is 0: no held-out images)" if rule == "best-heldout" else ""))
    return (run_dir / WEIGHTS if point["step"] == train.steps else run_dir / CHECKPOINTS / f"{rule}.pth"), point


def kernel_identity(device: torch.device) -> dict:
    """What decides this process's rounding: the kernel fields of `harness.compute.hardware`."""
    described = hardware(device)
    return {k: described[k] for k in KERNEL_FIELDS}


def warn_if_other_kernels(saved: dict | None, now: dict, state_path: Path) -> None:
    """A run resumed on other kernels (another CPU, kernel library or thread count) trains on, but cannot end
    bit-identical to an uninterrupted run: say so, once."""
    if saved is not None and saved != now:
        changed = ", ".join(f"{k} {saved.get(k)!r} → {now.get(k)!r}" for k in now if saved.get(k) != now.get(k))
        print(f"note: {state_path} was written with other kernels ({changed}); the resumed run will not be "
              "bit-identical to an uninterrupted one", file=sys.stderr, flush=True)


@dataclass
class Position:
    """Where training is: optimiser steps done, the data epoch and batches consumed in it, the last saved step."""

    step: int = 0
    epoch: int = 0
    consumed: int = 0
    saved: int | None = None


def compiled(net: torch.nn.Module, backend: str) -> torch.nn.Module:
    """`net` itself ("off") or torch.compile'd with `backend`; checkpoints keep using the uncompiled model."""
    return net if backend == "off" else torch.compile(net, backend=backend)


def model_losses(net, batch: dict, config, device: torch.device) -> dict[str, torch.Tensor]:
    """The model's unweighted loss terms on a training batch: images in the config's dtype, or the frozen backbone's
    cached output for them (harness.run.train_data)."""
    images = batch["image"].to(device, torch_dtype(config), non_blocking=True)
    features = batch.get("feature")
    out = net(images) if features is None else net(images, features=features.to(device, non_blocking=True))
    return out.losses


def validate(model, config, val_set, device: torch.device, noise_seed: tuple) -> dict[str, float]:
    """Validation during training: the segmentation metrics of the config's mask (as the authors log them), or,
    for a stage without masks (a VQ-VAE), its mean losses."""
    kw = dict(device=device, batch_size=config.eval.batch_size, amp=config.eval.amp, limit=config.train.val_limit,
              dtype=torch_dtype(config))
    if not config.eval.mask:
        return mean_losses(model, val_set, noise_seed=noise_seed, **kw)
    val = evaluate(model, val_set, mask=config.eval.mask, protocol=DEFAULT_PROTOCOL, noise_seed=noise_seed, **kw)
    means = dataset_means(val.per_image, DEFAULT_PROTOCOL)
    return {k: float("nan") if v is None else v for k, v in means.items()}


def load_trained(config, weights: str | Path, device) -> torch.nn.Module:
    """A trained model from a weights file: the authors', or ours, full or compact (reassembled: harness.run.weights);
    strict, weights_only."""
    model = build_model(config, torch.device(device), initial=False)
    load_weights_file(model, weights, described=f"{config.method} ({config.dataset} config)")
    return model
