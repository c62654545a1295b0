"""The training split as a config's augmentation policy makes it, on cached backbone features where that is exact.

`train.augment`:
    "authors"  the authors' random crop, resize and flip (docs/reference.md#transforms-and-collate); every image is
               new, so a frozen backbone runs on every step.
    "flip"     the val transform (centre square, resize) and a horizontal flip with probability 0.5 drawn per
               (seed, epoch, index): each image has two versions, the image and its mirror, whose backbone outputs
               are cached once (a ViT is not flip-equivariant, so the mirror's features are its own, not the
               flipped features). Training then never runs the backbone.
    "off"      the val transform only; one cached version per image.

Cached features are shared by every method and seed whose frozen backbone has the same weights and whose
extraction is computed the same way (harness.run.feature_cache identities), so a table's methods extract each
image once per backbone.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch
from torch.utils.data import Dataset

from harness.config import AUGMENT_POLICIES
from harness.data import open_split
from harness.errors import HarnessError
from harness.run.feature_cache import ensure_features


class FlipAugmented(Dataset):
    """Item i of `plain` or, with probability 1/2 (python `random`, seeded per sample by the loader), of
    `mirrored`: the same record flipped left-right, image, masks and (cached) features alike."""

    def __init__(self, plain: Dataset, mirrored: Dataset):
        if len(plain) != len(mirrored):
            raise HarnessError(f"flip augmentation: {len(plain)} plain and {len(mirrored)} mirrored items")
        self.plain, self.mirrored = plain, mirrored
        self.keys, self.card = plain.keys, plain.card

    def __len__(self) -> int:
        return len(self.plain)

    def __getitem__(self, index: int) -> dict:
        return (self.mirrored if random.random() < 0.5 else self.plain)[index]


class SplitPart(Dataset):
    """Items `start` … `stop` − 1 of a split (with its keys), and a data card that says which part it is."""

    def __init__(self, base: Dataset, start: int, stop: int, role: str):
        self.base, self.start, self.stop = base, start, stop
        self.keys = list(base.keys)[start:stop]
        self.card = {**base.card, "part": {"role": role, "first_index": start, "items": stop - start,
                                           "of_records": len(base)}}

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self.base[self.start + index]


def training_split(config, data_dir: str | Path, *, backbone: torch.nn.Module | None, feature_cache: Path | None,
                   device: torch.device) -> tuple[Dataset, Dataset | None]:
    """(the images training draws from, the held-out images): the train split under `config.train.augment`, less
    its last `config.train.heldout` records, which are held out — disjoint from training and from the reported
    split — for checkpoint selection (`best-heldout`), under the val transform. Items carry cached "feature"s when
    the model declares a frozen backbone, a cache directory is given and the policy is exact ("flip" or "off")."""
    policy, heldout = config.train.augment, config.train.heldout
    if policy not in AUGMENT_POLICIES:
        raise HarnessError(f"train.augment must be one of {', '.join(AUGMENT_POLICIES)}, got {policy!r}")
    plain = open_split(data_dir, config.dataset, "train")
    kept = len(plain) - heldout
    if kept < 1:
        raise HarnessError(f"train.heldout={heldout} leaves no training image of the {len(plain)} in "
                           f"{config.dataset}/train")
    if backbone is not None and feature_cache is not None and (policy != "authors" or heldout):
        plain = cached_view(plain, config, backbone, feature_cache, device)
    held = SplitPart(plain, kept, len(plain), "heldout") if heldout else None
    if policy == "authors":
        train = open_split(data_dir, config.dataset, "train", train=True)
    elif policy == "off":
        train = plain
    else:
        mirrored = open_split(data_dir, config.dataset, "train", mirror=True)
        if backbone is not None and feature_cache is not None:
            mirrored = cached_view(mirrored, config, backbone, feature_cache, device)
        train = FlipAugmented(plain, mirrored)
    return (SplitPart(train, 0, kept, "train") if heldout else train), held


def cached_view(dataset, config, backbone: torch.nn.Module, feature_cache: Path, device: torch.device):
    """`dataset` with its frozen-backbone features (computed once, as evaluation computes them: the eval config's
    autocast and batch size, so that a table's evaluations hit the same files)."""
    return ensure_features(feature_cache, backbone, dataset, device=device, amp=config.eval.amp,
                           batch_size=config.eval.batch_size)
