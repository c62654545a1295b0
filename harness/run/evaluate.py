"""Evaluation of one model on one split (SPEC §4): the method's named attention → bilinear upsampling to the
eval size → argmax → one-hot → per-image metrics under a protocol. The loop never knows which method it runs.

Slot-initialisation noise: DIAS samples its initial slots at evaluation too, and the authors' eval.py is
unseeded, so their numbers jitter between runs. Here the noise is drawn from a generator seeded by
(checkpoint identity, seed): an evaluation repeats exactly, and different seeds give the authors' spread.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader

from harness.data import collate
from harness.metrics import attention_to_segments, segmentation_metrics
from harness.run.seeding import derive_seed

IMAGENET_MEAN = torch.tensor([123.675, 116.28, 103.53])
IMAGENET_STD = torch.tensor([58.395, 57.12, 57.375])


@dataclass
class EvalOutput:
    per_image: dict  # keys, ari, ari_fg, mbo, miou, valid, valid_fg (lists, dataset order)
    gallery: dict | None  # image, gt, masks {name: index maps}, keys — for the report's mask gallery
    images: int
    seconds: float


def autocast(device: torch.device, amp: str):
    """The authors' AMP: fp16 autocast on CUDA; "bf16" autocast anywhere; otherwise full precision."""
    if amp == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if amp == "fp16" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def denormalise(images: torch.Tensor) -> np.ndarray:
    """(b,3,H,W) normalised float → (b,H,W,3) uint8 RGB, for galleries."""
    mean, std = IMAGENET_MEAN.to(images.device)[:, None, None], IMAGENET_STD.to(images.device)[:, None, None]
    pixels = (images.float() * std + mean).clamp(0, 255).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).cpu().numpy()


def gt_index_map(segment: torch.Tensor) -> np.ndarray:
    """(b,H,W,S) one-hot gt → (b,H,W) channel index, −1 where a pixel has no label (VOID / boundary)."""
    labelled = segment.any(-1)
    index = segment.to(torch.uint8).argmax(-1).to(torch.int16)
    return torch.where(labelled, index, torch.full_like(index, -1)).cpu().numpy()


@torch.inference_mode()
def evaluate(model, dataset, *, mask: str, protocol: str, noise_seed: tuple, device: torch.device,
             batch_size: int = 32, amp: str = "fp16", resolution: int | None = None, limit: int | None = None,
             gallery: int = 0, num_workers: int = 0, progress=None) -> EvalOutput:
    """Evaluate `model` on `dataset` (items {"image", "segment"} and, from a feature cache, "feature"; `.keys`);
    `mask` names the segmentation map."""
    import time

    start = time.perf_counter()
    keys = list(dataset.keys)
    if limit is not None:
        dataset = torch.utils.data.Subset(dataset, range(min(limit, len(dataset))))
        keys = keys[:len(dataset)]
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate, num_workers=num_workers)
    was_training = model.training
    model.eval()
    columns = {k: [] for k in ("ari", "ari_fg", "mbo", "miou", "valid", "valid_fg")}
    shown: dict = {"image": [], "gt": [], "masks": {}}
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(derive_seed("eval-noise", *noise_seed))
        for batch in loader:
            images = batch["image"].to(device, non_blocking=True)
            gt = batch["segment"].to(device, non_blocking=True)  # (b,R,R,S) bool
            size = resolution or gt.shape[1]
            features = batch.get("feature")  # cached backbone output (harness.run.feature_cache)
            with autocast(device, amp):
                out = model(images) if features is None else model(images, features=features.to(device))
            if mask not in out.masks:
                raise KeyError(f"model output has no mask {mask!r}; it has {sorted(out.masks)}")
            pred = attention_to_segments(out.masks[mask].float(), size)
            metrics = segmentation_metrics(pred, gt.flatten(1, 2), protocol=protocol)
            for k in columns:
                columns[k].append(metrics[k].cpu())
            collected = sum(len(x) for x in shown["image"])
            if collected < gallery:
                take = gallery - collected
                shown["image"].append(denormalise(images[:take]))
                shown["gt"].append(gt_index_map(gt[:take]))
                for name, attn in out.masks.items():
                    index = attention_to_segments(attn[:take].float(), size).to(torch.uint8).argmax(-1)
                    shown["masks"].setdefault(name, []).append(index.view(-1, size, size).cpu().numpy())
            if progress is not None:
                progress.update(len(images))
    model.train(was_training)
    per_image = {k: torch.cat(v).tolist() if v else [] for k, v in columns.items()}
    per_image["keys"] = keys
    out_gallery = None
    if gallery and shown["image"]:
        out_gallery = {"image": np.concatenate(shown["image"]), "gt": np.concatenate(shown["gt"]),
                       "masks": {k: np.concatenate(v) for k, v in shown["masks"].items()},
                       "keys": keys[:gallery]}
    return EvalOutput(per_image, out_gallery, len(keys), time.perf_counter() - start)


@torch.inference_mode()
def mean_losses(model, dataset, *, device: torch.device, batch_size: int, amp: str, limit: int | None = None,
                noise_seed: tuple = ()) -> dict[str, float]:
    """Mean of each loss term over the first `limit` images: the validation of a stage, which has no masks."""
    if limit is not None:
        dataset = torch.utils.data.Subset(dataset, range(min(limit, len(dataset))))
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    count = 0
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(derive_seed("val-losses", *noise_seed))
        for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate):
            images = batch["image"].to(device)
            with autocast(device, amp):
                out = model(images)
            for name, value in out.losses.items():
                sums[name] = sums.get(name, 0.0) + float(value) * len(images)
            count += len(images)
    model.train(was_training)
    return {f"loss_{name}": total / max(count, 1) for name, total in sums.items()}
