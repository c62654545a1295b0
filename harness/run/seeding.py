"""Every random stream of a run, derived from the run's seed so that a run repeats and resumes bit-identically.

Faithful vs default data seeding. The authors seed every DataLoader worker with the *same* seed
(`worker_init_fn = lambda _: set_seed(seed)`), so all workers draw identical augmentation streams, restarted each
epoch. By default we instead seed each sample's augmentation from (seed, epoch, index): streams are distinct, do
not depend on the number of workers, and a run resumed mid-epoch draws exactly what it would have drawn.
`worker_seeding="faithful"` restores the authors' behaviour.
"""

from __future__ import annotations

import hashlib
import random

import numpy as np
import torch
from torch.utils.data import Dataset

WORKER_SEEDING = ("per-sample", "faithful")


def derive_seed(*parts) -> int:
    """A 63-bit seed from any parts (ints, strings): stable across processes and Python versions."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def seed_everything(seed: int) -> None:
    """The authors' set_seed: python `random`, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seed_rank(seed: int, rank: int) -> None:
    """Give data-parallel rank `rank` its own stream for the model's randomness (slot noise, decoder masks,
    dropout), once the model is built (identically on every rank). Rank 0 goes on with the run's stream, so a
    one-process run draws exactly what a plain run draws; rank r > 0 draws from (seed, r)."""
    if rank:
        seed_everything(derive_seed(seed, "rank", rank))


def rng_state(device: torch.device | None = None) -> dict:
    """All global RNG states as plain tensors/lists, loadable with torch.load(weights_only=True). Of CUDA, only
    the training device's: touching every GPU would open a context on each from every data-parallel rank."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
    }
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device | None = None) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


class PerSampleSeeded(Dataset):
    """Draws each item's augmentation from (seed, epoch, index) without disturbing the caller's RNG streams.

    The transforms use torch's global RNG (crop parameters) and python `random` (flip), as the authors'
    do; both are forked, seeded, and restored around every item.
    """

    def __init__(self, base: Dataset, seed: int):
        self.base, self.seed, self.epoch = base, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        item_seed = derive_seed(self.seed, self.epoch, index)
        py_state = random.getstate()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(item_seed)
            random.seed(item_seed)
            try:
                return self.base[index]
            finally:
                random.setstate(py_state)


def faithful_worker_init(seed: int, _worker_id: int) -> None:
    """The authors' worker_init_fn (bind the seed with functools.partial): every worker gets the same seed."""
    seed_everything(seed)
