"""Evaluation of one model on one split (docs/reference.md#evaluation-protocol): the method's named attention → bilinear upsampling to the
eval size → argmax → one-hot → per-image metrics under a protocol. The loop never knows which method it runs.

Slot-initialisation noise: DIAS samples its initial slots at evaluation too, and the authors' eval.py is
unseeded, so their numbers jitter between runs. Here the noise of every batch is drawn from a generator seeded by
(checkpoint identity, seed, batch number): an evaluation repeats exactly, different seeds give the authors' spread,
and the result does not depend on how many processes share the batches.

Data-parallel evaluation (harness.run.distributed): the batches are those of one process (batch i = items
[i·b, (i+1)·b)); rank r evaluates batches r, r+K, r+2K, ... and every rank receives all per-image values in
dataset order, so the metrics equal the single-process ones.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from harness.compute import forward_precision
from harness.contract import SlotModel
from harness.data import collate
from harness.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from harness.metrics import attention_to_segments, segmentation_metrics
from harness.metrics.protocols import METRICS
from harness.run.distributed import World, current
from harness.run.seeding import derive_seed

METRIC_COLUMNS = (*METRICS, "valid", "valid_fg")  # per image: the metrics and the validity flags


@dataclass
class EvalOutput:
    per_image: dict  # keys, ari, ari_fg, mbo, miou, valid, valid_fg (lists, dataset order)
    gallery: dict | None  # image, gt, masks {name: index maps}, keys — for the report's mask gallery
    images: int
    seconds: float


def at_least_float32(t: torch.Tensor) -> torch.Tensor:
    """`t` in float32, or in its own dtype where that is wider (a float64 model's losses and maps stay float64)."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def resize_masks(gt: torch.Tensor, size: int) -> torch.Tensor:
    """(b, R, R, S) bool ground truth at the evaluation size, nearest-exact: what the authors' segment resize does to
    a source smaller than 256² (docs/reference.md#transforms-and-collate), for data generated below the size the
    metrics are computed at. Unchanged where R = size."""
    if gt.shape[1] == size:
        return gt
    channels = gt.permute(0, 3, 1, 2).to(torch.uint8)
    return F.interpolate(channels, size=(size, size), mode="nearest-exact").permute(0, 2, 3, 1).bool()


def denormalise(images: torch.Tensor) -> np.ndarray:
    """(b,3,H,W) normalised float → (b,H,W,3) uint8 RGB, for galleries."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, device=images.device)[:, None, None]
    pixels = (images.float() * std + mean).clamp(0, 255).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).cpu().numpy()


def gt_index_map(segment: torch.Tensor) -> np.ndarray:
    """(b,H,W,S) one-hot gt → (b,H,W) channel index, −1 where a pixel has no label (VOID / boundary)."""
    labelled = segment.any(-1)
    index = segment.to(torch.uint8).argmax(-1).to(torch.int16)
    return torch.where(labelled, index, torch.full_like(index, -1)).cpu().numpy()


def eval_batches(n: int, batch_size: int, world: World) -> list[tuple[int, list[int]]]:
    """(batch number, item indices) of the evaluation batches rank `world.rank` runs, in order."""
    return [(i, list(range(i * batch_size, min(n, (i + 1) * batch_size))))
            for i in range(world.rank, -(-n // batch_size), world.size)]


def _metrics_to_host(parts: list) -> list:
    """Per-batch metric tensors → python lists with one device→host copy per metric (not one per batch)."""
    if not parts:
        return parts
    sizes = [len(values[METRIC_COLUMNS[0]]) for _, values, _ in parts]
    columns = {k: torch.cat([values[k] for _, values, _ in parts]).cpu().split(sizes) for k in METRIC_COLUMNS}
    return [(number, {k: columns[k][i].tolist() for k in METRIC_COLUMNS}, shown)
            for i, (number, _, shown) in enumerate(parts)]


@torch.inference_mode()
def evaluate(model, dataset, *, mask: str, protocol: str, noise_seed: tuple, device: torch.device,
             batch_size: int = 32, amp: str = "fp16", resolution: int | None = None, limit: int | None = None,
             gallery: int = 0, num_workers: int = 0, progress=None, dtype: torch.dtype = torch.float32
             ) -> EvalOutput:
    """Evaluate `model` on `dataset` (items {"image", "segment"} and, from a feature cache, "feature"; `.keys`);
    `mask` names the segmentation map; images enter the model as `dtype` (its `MethodConfig.dtype`). The model runs
    under its `masks_only()` (nothing but masks is read), and the metrics stay on the device until the last batch."""
    import time

    start = time.perf_counter()
    keys = list(dataset.keys)
    if limit is not None:
        dataset = torch.utils.data.Subset(dataset, range(min(limit, len(dataset))))
        keys = keys[:len(dataset)]
    world = current()
    mine = eval_batches(len(dataset), batch_size, world)
    loader = DataLoader(dataset, batch_sampler=[items for _, items in mine], collate_fn=collate,
                        num_workers=num_workers, pin_memory=device.type == "cuda")
    was_training = model.training
    model.eval()
    parts = []  # per batch: (number, {metric: values on the device}, gallery pieces or None)
    devices = [device] if device.type == "cuda" else []
    masks_only = model.masks_only() if isinstance(model, SlotModel) else contextlib.nullcontext()
    with torch.random.fork_rng(devices=devices), masks_only:
        for (number, items), batch in zip(mine, loader):
            torch.manual_seed(derive_seed("eval-noise", *noise_seed, number))
            images = batch["image"].to(device, dtype, non_blocking=True)
            shown_gt = batch["segment"].to(device, non_blocking=True)  # (b,R,R,S) bool, as the images
            size = resolution or shown_gt.shape[1]
            gt = resize_masks(shown_gt, size)
            features = batch.get("feature")  # cached backbone output (harness.run.feature_cache)
            with forward_precision(device, amp):
                out = model(images) if features is None else model(images, features=features.to(device))
            if mask not in out.masks:
                raise KeyError(f"model output has no mask {mask!r}; it has {sorted(out.masks)}")
            pred = attention_to_segments(at_least_float32(out.masks[mask]), size)
            metrics = segmentation_metrics(pred, gt.flatten(1, 2), protocol=protocol)
            shown = None
            take = gallery - items[0]
            if take > 0:
                side = shown_gt.shape[1]  # the gallery shows masks at the images' size
                shown = {"image": denormalise(images[:take]), "gt": gt_index_map(shown_gt[:take]),
                         "masks": {name: attention_to_segments(at_least_float32(attn[:take]), side).to(torch.uint8)
                                   .argmax(-1).view(-1, side, side).cpu().numpy()
                                   for name, attn in out.masks.items()}}
            parts.append((number, {k: metrics[k] for k in METRIC_COLUMNS}, shown))
            if progress is not None:
                progress.update(len(images))
    model.train(was_training)
    parts = _metrics_to_host(parts)
    parts = sorted((p for rank_parts in world.gather(parts) for p in rank_parts), key=lambda p: p[0])
    per_image = {k: [v for _, values, _ in parts for v in values[k]] for k in METRIC_COLUMNS}
    per_image["keys"] = keys
    shown = [g for _, _, g in parts if g is not None]
    out_gallery = None
    if shown:
        out_gallery = {"image": np.concatenate([g["image"] for g in shown]),
                       "gt": np.concatenate([g["gt"] for g in shown]),
                       "masks": {k: np.concatenate([g["masks"][k] for g in shown]) for k in shown[0]["masks"]},
                       "keys": keys[:gallery]}
    return EvalOutput(per_image, out_gallery, len(keys), time.perf_counter() - start)


@torch.inference_mode()
def mean_losses(model, dataset, *, device: torch.device, batch_size: int, amp: str, limit: int | None = None,
                noise_seed: tuple = (), dtype: torch.dtype = torch.float32) -> dict[str, float]:
    """Mean of each loss term over the first `limit` images: the validation of a stage, which has no masks."""
    if limit is not None:
        dataset = torch.utils.data.Subset(dataset, range(min(limit, len(dataset))))
    world = current()
    mine = eval_batches(len(dataset), batch_size, world)
    was_training = model.training
    model.eval()
    parts = []  # per batch: (number, {name: sum over its images})
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        loader = DataLoader(dataset, batch_sampler=[items for _, items in mine], collate_fn=collate)
        for (number, _), batch in zip(mine, loader):
            torch.manual_seed(derive_seed("val-losses", *noise_seed, number))
            images = batch["image"].to(device, dtype)
            with forward_precision(device, amp):
                out = model(images)
            parts.append((number, {name: float(value) * len(images) for name, value in out.losses.items()}))
    model.train(was_training)
    parts = sorted((p for rank_parts in world.gather(parts) for p in rank_parts), key=lambda p: p[0])
    sums: dict[str, float] = {}
    for _, batch_sums in parts:
        for name, total in batch_sums.items():
            sums[name] = sums.get(name, 0.0) + total
    return {f"loss_{name}": total / max(len(dataset), 1) for name, total in sums.items()}
