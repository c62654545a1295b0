"""Evaluating one cell into a result record (harness.results) with its identity and mask gallery."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import torch

from harness.compute import device_description, hardware
from harness.config import config_hash, to_dict, torch_dtype
from harness.data import open_split
from harness.results import make_record, write_gallery, write_record
from harness.run.distributed import current, rank_device
from harness.run.evaluate import evaluate
from harness.run.feature_cache import DEFAULT_STORAGE, use_feature_cache
from harness.run.identity import backbone_identity, file_sha256, versions
from harness.run.launch import progress_bar
from harness.run.seeding import seed_everything
from harness.run.train import build_model, load_trained
from harness.run.weights import weights_bytes

UNTRAINED = "untrained"


def noise_key(config, seed: int) -> tuple:
    """What seeds an evaluation's slot noise (harness.run.evaluate): the cell — method, dataset, seed — and never
    the weights' bytes. A checkpoint that differs in its last bit (another CPU's kernels) must draw the same noise,
    or the evaluation's own noise would pass for a difference between machines."""
    return (config.method, config.dataset, seed)


def eval_noise(config) -> str:
    """How the config's slot initialiser behaves at evaluation ("sample", "mean"), or "none" if it has no noise."""
    return getattr(config, "eval_noise", "none")


def evaluate_cell(config, *, data_dir: str | Path, checkpoint: str | Path | None, seed: int, output: str | Path,
                  protocol: str = "dias-v3", device: str | torch.device = "cpu", split: str = "val",
                  stage_weights: str | Path | None = None, gallery: int = 8, identity_extra: dict | None = None,
                  cost: dict | None = None, limit: int | None = None, num_workers: int = 0,
                  feature_cache: str | Path | None = None, feature_storage: str = DEFAULT_STORAGE,
                  progress: bool = False, curve: list[dict] | None = None, selection: dict | None = None) -> dict:
    """Evaluate `checkpoint` (a weights file: the authors', or ours, full or compact) — or, with checkpoint=None, the
    method's untrained initialisation for `seed` — on `split`, and write the record (+ gallery) to `output`.
    `feature_cache`: a directory of frozen-backbone feature caches (harness.run.feature_cache) read and written.
    A trained cell's record also keeps its training run's validation `curve` and the `selection` of the checkpoint.
    In a data-parallel group the ranks share the batches and rank 0 writes; every rank returns the record."""
    device, world = rank_device(device), current()
    if checkpoint is None:
        seed_everything(seed)
        model = build_model(config, device, stage_weights)
        # the initial weights' sha256, as a checkpoint file of them would have
        ckpt = {"path": None, "sha256": hashlib.sha256(weights_bytes(model)).hexdigest(), "kind": UNTRAINED}
    else:
        model = load_trained(config, checkpoint, device)
        ckpt = {"path": str(checkpoint), "sha256": file_sha256(checkpoint), "kind": "weights"}
    dataset = open_split(data_dir, config.dataset, split)
    cache = use_feature_cache(feature_cache, model, dataset, device=device, amp=config.eval.amp,
                              batch_size=config.eval.batch_size, limit=limit, storage=feature_storage)
    images = len(dataset) if limit is None else min(limit, len(dataset))
    with cache as (evaluated, cache_use), progress_bar(total=images, unit="img", enabled=progress and world.main,
                                                       desc=f"eval {config.method}/{config.dataset}/{seed}") as bar:
        out = evaluate(model, evaluated, mask=config.eval.mask, protocol=protocol,
                       noise_seed=noise_key(config, seed), device=device, dtype=torch_dtype(config),
                       batch_size=config.eval.batch_size, amp=config.eval.amp, resolution=config.eval.resolution,
                       gallery=gallery, limit=limit, num_workers=num_workers, progress=bar)
    identity = {
        "method": config.method, "dataset": config.dataset, "split": split, "seed": seed, "protocol": protocol,
        "config_hash": config_hash(config), "config": to_dict(config), "data_card": dataset.card,
        "checkpoint": ckpt, "backbone": backbone_identity(model, config), "eval_noise": eval_noise(config),
        "mask": config.eval.mask,
        "steps": config.train.steps if ckpt["kind"] != UNTRAINED else 0, "batch_size": config.train.batch_size,
        "versions": versions(), "device": device_description(device), "hardware": hardware(device),
        "processes": world.size,
        **(identity_extra or {}),
    }
    cost = {**(cost or {}), "eval_seconds": out.seconds, "eval_images_per_second": out.images / max(out.seconds, 1e-9),
            "parameters": sum(p.numel() for p in model.parameters()),
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)}
    if cache_use is not None:
        cost["feature_cache"] = cache_use.describe()
    record = make_record(identity, out.per_image, cost, curve=curve, selection=selection)
    if world.main:
        write_record(output, record)
        if out.gallery is not None:
            write_gallery(output, out.gallery["image"], out.gallery["gt"], out.gallery["masks"], out.gallery["keys"])
    world.barrier()  # the record exists for every rank once this returns
    return record


def with_eval_noise(config, noise: str | None):
    """The config with its initialiser's evaluation noise set, refusing methods that have none."""
    if noise is None:
        return config
    if not hasattr(config, "eval_noise"):
        from harness.errors import HarnessError

        raise HarnessError(f"method {config.method!r} has no evaluation noise to set (its slots are deterministic "
                           "at evaluation); drop --noise")
    return dataclasses.replace(config, eval_noise=noise)
