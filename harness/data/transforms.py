"""The authors' train/val transforms (docs/reference.md#transforms-and-collate), without torchvision.

Order matters and the image stays uint8 until Normalize:

    train: RandomResizedCrop *parameters* (crop only; scale rescaled by the largest square) → resize image
           (bilinear, antialias, uint8 in/out) and index map (nearest-exact) to R×R → horizontal flip
           (p = 0.5) → Normalize with the ImageNet mean/std on the 0–255 scale → float32
    val:   largest centred square → the same two resizes → Normalize

`F.interpolate` on a uint8 tensor reproduces torchvision v2's uint8 `Resize` exactly (verified in
docs/reference.md#transforms-and-collate): on AVX2/AVX512 CPUs, the authors' machines, torchvision calls this same
native uint8 kernel (elsewhere it resizes in float and rounds, which can differ by one level). A resize to the current
size is skipped, as torchvision does.

Randomness is drawn where the authors draw it: the crop from torch's global RNG (as torchvision's
`RandomResizedCrop.make_params`), the flip from python's `random`. Neither is seeded here: seeding each
DataLoader worker (distinctly, unlike the authors' identical per-worker seeds,
docs/reference.md#training-loop-and-seeding) is the runner's job.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
CROP_SCALE = (0.75, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)
FLIP_P = 0.5
FLIP_DIMS = (-1,)

_MEAN = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).reshape(3, 1, 1)
_STD = torch.tensor(IMAGENET_STD, dtype=torch.float32).reshape(3, 1, 1)


def square_rescaled_scale(height: int, width: int, scale) -> tuple[float, float]:
    """The authors' `RandomCrop(size=None)`: the area range relative to the largest square, not the image."""
    factor = min(height, width) ** 2 / (height * width)
    return (scale[0] * factor, scale[1] * factor)


def random_resized_crop_params(height: int, width: int, scale, ratio=CROP_RATIO) -> tuple[int, int, int, int]:
    """(top, left, h, w) by torchvision's RandomResizedCrop algorithm, drawing from torch's global RNG.

    Up to 10 trials: area ~ U(scale)·H·W and log aspect ~ U(log ratio) (float32 draws and a float32 log of
    the ratio bounds, as torchvision stores them); w = round(√(area·r)), h = round(√(area/r)); the first box
    that fits gets top/left from torch.randint. Otherwise the central crop of the ratio-clamped full box.
    """
    area = height * width
    log_ratio = torch.log(torch.tensor(ratio))
    for _ in range(10):
        target_area = area * torch.empty(1).uniform_(scale[0], scale[1]).item()
        aspect = torch.exp(torch.empty(1).uniform_(log_ratio[0].item(), log_ratio[1].item())).item()
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, size=(1,)).item())
            left = int(torch.randint(0, width - w + 1, size=(1,)).item())
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def center_square_params(height: int, width: int) -> tuple[int, int, int, int]:
    """(top, left, s, s) of the largest centred square: the authors' `CenterCrop(size=None)`."""
    s = min(height, width)
    return (height - s) // 2, (width - s) // 2, s, s


def resize_image(image: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (3,h,w) → uint8 (3,size,size): bilinear with antialias, as torchvision v2 on uint8."""
    if tuple(image.shape[-2:]) == (size, size):
        return image
    return F.interpolate(image[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]


def resize_index_map(index_map: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (h,w) → uint8 (size,size) with nearest-exact (no antialias), as the authors' segment Resize."""
    if tuple(index_map.shape[-2:]) == (size, size):
        return index_map
    return F.interpolate(index_map[None, None], size=(size, size), mode="nearest-exact")[0, 0]


def normalize(image: torch.Tensor) -> torch.Tensor:
    """uint8 (3,H,W) → float32 (x − mean) / std with the ImageNet statistics on the 0–255 scale."""
    return torch.sub(image, _MEAN).div_(_STD)  # (image − mean) / std, the quotient written in place


def _crop(image: torch.Tensor, index_map: torch.Tensor, box) -> tuple[torch.Tensor, torch.Tensor]:
    top, left, h, w = box
    return image[..., top:top + h, left:left + w], index_map[..., top:top + h, left:left + w]


@dataclass(frozen=True)
class ValTransform:
    """Centre square → resize to `resolution` → normalise. (uint8 (3,H,W), uint8 (H,W)) → (float32, uint8).

    `mirror`: flip left-right after the resize, as the train transform's flip does: the other half of the exact
    flip augmentation that cached features allow (harness.run.train_data)."""

    resolution: int
    mirror: bool = False

    def __call__(self, image: torch.Tensor, index_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image, index_map = _crop(image, index_map, center_square_params(*image.shape[-2:]))
        image = resize_image(image, self.resolution)
        index_map = resize_index_map(index_map, self.resolution)
        if self.mirror:
            image, index_map = image.flip(-1), index_map.flip(-1)
        return normalize(image), index_map


@dataclass(frozen=True)
class TrainTransform:
    """Random crop → resize to `resolution` → random horizontal flip → normalise."""

    resolution: int
    scale: tuple[float, float] = CROP_SCALE
    ratio: tuple[float, float] = CROP_RATIO
    flip_p: float = FLIP_P

    def __call__(self, image: torch.Tensor, index_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        height, width = image.shape[-2:]
        scale = square_rescaled_scale(height, width, self.scale)
        image, index_map = _crop(image, index_map, random_resized_crop_params(height, width, scale, self.ratio))
        image = resize_image(image, self.resolution)
        index_map = resize_index_map(index_map, self.resolution)
        if random.random() <= self.flip_p:
            # The authors pick the flip dim with random.choice even from one dim; it draws from `random`
            # too, so keeping the call keeps the python RNG stream in step with theirs.
            dim = random.choice(FLIP_DIMS)
            image, index_map = image.flip(dim), index_map.flip(dim)
        return normalize(image), index_map
