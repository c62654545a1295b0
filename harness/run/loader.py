"""Training batches in a resumable order: the permutation of epoch e is a function of (seed, e) alone, so a
run resumed after k batches of an epoch continues with batch k of the same permutation.

Data-parallel runs cut every global batch into contiguous shards, one per rank (`shard`), so that the ranks'
shards together are exactly the batch a single process would draw; the batch size stays the global one.
"""

from __future__ import annotations

import functools

import torch
from torch.utils.data import DataLoader, Sampler

from harness.run.distributed import DistributedError
from harness.run.seeding import PerSampleSeeded, derive_seed, faithful_worker_init


def num_batches(n: int, batch_size: int) -> int:
    return -(-n // batch_size)  # drop_last=False, as the authors


def shard(n: int, batch_size: int, index: int, rank: int, world: int) -> tuple[int, int, int]:
    """(size, start, stop) of batch `index` of an epoch of `n` items: the global batch holds `size` items
    (batch_size, or fewer for the last one) and rank `rank` of `world` takes positions [start, stop) of it.
    Shards are contiguous and as equal as the size allows, so a short last batch may leave a rank nothing."""
    size = min(batch_size, n - index * batch_size)
    return size, rank * size // world, (rank + 1) * size // world


def loss_scale(n: int, batch_size: int, index: int, rank: int, world: int) -> float:
    """The factor world·b_r/b for rank r's mean loss over its b_r items of a global batch of b.

    DDP averages gradients over the ranks, so (1/world)·Σ_r world·b_r/b·∇mean_r = ∇(mean over the global
    batch) exactly when every loss term is a mean over equally-sized per-image terms. It is 1.0 for full batches
    (equal shards) and 0.0 for a rank whose shard of a short last batch is empty (it then re-reads one item of
    the batch only to join the gradient all-reduce).
    """
    size, start, stop = shard(n, batch_size, index, rank, world)
    return world * (stop - start) / size


class ResumableBatches(Sampler[list[int]]):
    """Shuffled batches (drop_last=False, as the authors) starting at batch `start` of epoch `epoch`; with
    `world` > 1, rank `rank`'s shard of each global batch of `batch_size` items."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        if batch_size % world:
            raise DistributedError(f"the global batch size {batch_size} is not divisible by the {world} processes "
                                   f"of this run; choose a batch size that is a multiple of {world} (--set "
                                   "train.batch_size=...) or another number of processes")
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.epoch, self.start = 0, 0

    def set_position(self, epoch: int, start: int) -> None:
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return num_batches(self.n, self.batch_size) - self.start

    def __iter__(self):
        g = torch.Generator().manual_seed(derive_seed(self.seed, "order", self.epoch))
        order = torch.randperm(self.n, generator=g).tolist()
        for b in range(self.start, num_batches(self.n, self.batch_size)):
            batch = order[b * self.batch_size:(b + 1) * self.batch_size]
            _, start, stop = shard(self.n, self.batch_size, b, self.rank, self.world)
            yield batch[start:stop] or batch[:1]  # an empty shard: one item, weighed 0 by loss_scale


def train_loader(dataset, *, batch_size: int, seed: int, num_workers: int, collate_fn,
                 worker_seeding: str = "per-sample", pin_memory: bool = False, rank: int = 0, world: int = 1):
    """(loader, position): call `position(epoch, start)` before iterating an epoch. `batch_size` is the global
    batch; with `world` > 1 the loader yields rank `rank`'s shard of it."""
    if worker_seeding == "per-sample":
        data, init = PerSampleSeeded(dataset, seed), None
    elif worker_seeding == "faithful":
        data, init = dataset, functools.partial(faithful_worker_init, seed)
    else:
        raise ValueError(f"worker_seeding must be 'per-sample' or 'faithful', got {worker_seeding!r}")
    sampler = ResumableBatches(len(dataset), batch_size, seed, rank, world)
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
