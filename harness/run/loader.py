"""Training batches in a resumable order: the permutation of epoch e is a function of (seed, e) alone, so a
run resumed after k batches of an epoch continues with batch k of the same permutation."""

from __future__ import annotations

import functools

import torch
from torch.utils.data import DataLoader, Sampler

from harness.run.seeding import PerSampleSeeded, derive_seed, faithful_worker_init


class ResumableBatches(Sampler[list[int]]):
    """Shuffled batches (drop_last=False, as the authors) starting at batch `start` of epoch `epoch`."""

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.epoch, self.start = 0, 0

    def set_position(self, epoch: int, start: int) -> None:
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return -(-self.n // self.batch_size) - self.start

    def __iter__(self):
        g = torch.Generator().manual_seed(derive_seed(self.seed, "order", self.epoch))
        order = torch.randperm(self.n, generator=g).tolist()
        for b in range(self.start, -(-self.n // self.batch_size)):
            yield order[b * self.batch_size:(b + 1) * self.batch_size]


def train_loader(dataset, *, batch_size: int, seed: int, num_workers: int, collate_fn,
                 worker_seeding: str = "per-sample", pin_memory: bool = False):
    """(loader, sampler, dataset wrapper). Call `position(epoch, start)` before iterating an epoch."""
    if worker_seeding == "per-sample":
        data, init = PerSampleSeeded(dataset, seed), None
    elif worker_seeding == "faithful":
        data, init = dataset, functools.partial(faithful_worker_init, seed)
    else:
        raise ValueError(f"worker_seeding must be 'per-sample' or 'faithful', got {worker_seeding!r}")
    sampler = ResumableBatches(len(dataset), batch_size, seed)
    # A private generator: the DataLoader draws its workers' base seed from it at every new iterator, which would
    # otherwise consume the global stream that the model's own randomness (slot noise, decoder masks) draws from.
    loader = DataLoader(data, batch_sampler=sampler, num_workers=num_workers, collate_fn=collate_fn,
                        worker_init_fn=init, pin_memory=pin_memory,
                        generator=torch.Generator().manual_seed(derive_seed(seed, "loader")))

    def position(epoch: int, start: int) -> None:
        sampler.set_position(epoch, start)
        if isinstance(data, PerSampleSeeded):
            data.set_epoch(epoch)

    return loader, position
