"""Fixtures of the baseline tests: full-size models built once per session, small structured images."""

import pytest
import torch

import baselines  # noqa: F401  (registers the methods)
from harness.registry import create_model


@pytest.fixture(scope="session")
def full_model():
    """full_model(method, dataset="coco") → the randomly initialised full-size model, built once per session."""
    cache = {}

    def get(method: str, dataset: str = "coco"):
        if (method, dataset) not in cache:
            torch.manual_seed(0)
            cache[method, dataset] = create_model(method, dataset)
        return cache[method, dataset]

    return get


def make_scenes(n: int, resolution: int = 32, seed: int = 0) -> torch.Tensor:
    """n images (n,3,R,R), roughly unit-scale like normalised images: a flat background colour and 2 axis-aligned
    rectangles of random flat colours at random places (structure a small model can learn in ~100 steps)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.empty(n, 3, resolution, resolution)
    for i in range(n):
        images[i] = (torch.rand(3, 1, 1, generator=g) * 2 - 1)
        for _ in range(2):
            h, w = (torch.randint(resolution // 4, resolution // 2, (2,), generator=g)).tolist()
            y, x = torch.randint(0, resolution - h, (1,), generator=g).item(), torch.randint(
                0, resolution - w, (1,), generator=g).item()
            images[i, :, y:y + h, x:x + w] = torch.rand(3, 1, 1, generator=g) * 4 - 2
    return images


@pytest.fixture
def scenes():
    return make_scenes
