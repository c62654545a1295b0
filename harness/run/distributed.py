"""Data-parallel runs across processes (torch.distributed), one device per process.

Launch: `torchrun --nproc_per_node=K -m harness train ...` on one node, or `reproduce --executor slurm` (one
Slurm task per GPU, see harness.run.launch). Every process reads RANK / WORLD_SIZE / LOCAL_RANK from the
environment the launcher sets, joins the process group (NCCL on CUDA, gloo on CPU) and takes device
cuda:LOCAL_RANK (or the CPU). The run layer asks `current()` which rank it is; with no process group it is rank 0
of 1, and every code path is the single-process one.

No silent fallback: a run asked for K > 1 processes (WORLD_SIZE > 1, or `--ddp K`) that cannot join its
process group stops with a DistributedError instead of training alone with a K-times smaller batch.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from harness.errors import HarnessError

# How long a collective may wait for a slow rank (validation and checkpoints run on every rank in lock-step).
TIMEOUT = datetime.timedelta(minutes=30)


class DistributedError(HarnessError):
    pass


@dataclass(frozen=True)
class World:
    """This process's place among the processes of one run: rank `rank` of `size`."""

    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        """Rank 0 alone writes (checkpoints, logs, weights, records)."""
        return self.rank == 0

    def gather(self, obj) -> list:
        """Every rank's `obj` (any picklable object), in rank order, on every rank."""
        if self.size == 1:
            return [obj]
        out = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def average(self, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each scalar averaged over the ranks (one all-reduce for all of them)."""
        if self.size == 1:
            return values
        stacked = torch.stack([v.detach().float() for v in values.values()])
        dist.all_reduce(stacked)
        return dict(zip(values, stacked / self.size))

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()


def current() -> World:
    """The process group this process belongs to (rank 0 of 1 without one)."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size())
    return World()


def rank_device(device: str | torch.device) -> torch.device:
    """`device` with its index made explicit: "cuda" is the current CUDA device (cuda:LOCAL_RANK in a group)."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def requested_size(expected: int | None = None) -> int:
    """The number of processes asked for: WORLD_SIZE from the launcher, checked against an explicit `expected` (the --ddp flag)."""
    launched = os.environ.get("WORLD_SIZE")
    if launched is None:
        if expected is not None and expected > 1:
            raise DistributedError(
                f"--ddp {expected} asks for {expected} processes, but this process was not started by a launcher "
                f"(WORLD_SIZE is unset); run it as `torchrun --nproc_per_node={expected} -m harness ...`")
        return 1
    try:
        size = int(launched)
    except ValueError:
        raise DistributedError(f"WORLD_SIZE={launched!r} is not a number of processes") from None
    if expected is not None and expected != size:
        raise DistributedError(f"--ddp {expected} asks for {expected} processes, but the launcher started "
                               f"WORLD_SIZE={size}")
    return size


def init_process_group(device: str | torch.device, expected: int | None = None) -> torch.device:
    """Join the process group the environment describes; return this rank's device.

    A single process (no launcher, or WORLD_SIZE=1) gets `device` back and no group. With K > 1 processes:
    "cuda" becomes cuda:LOCAL_RANK (an explicit index is refused: each rank takes its own GPU), NCCL for CUDA,
    gloo for the CPU; any failure to join is a DistributedError.
    """
    device = torch.device(device)
    size = requested_size(expected)
    if size == 1 or (dist.is_available() and dist.is_initialized()):
        return rank_device(device) if size > 1 else device
    where = (f"WORLD_SIZE={size}, RANK={os.environ.get('RANK')}, LOCAL_RANK={os.environ.get('LOCAL_RANK')}, "
             f"MASTER_ADDR={os.environ.get('MASTER_ADDR')}, MASTER_PORT={os.environ.get('MASTER_PORT')}")
    if not dist.is_available():
        raise DistributedError(f"{size} processes were asked for ({where}) but this torch build has no "
                               "torch.distributed; refusing to train alone with a smaller batch")
    if device.type == "cuda":
        if device.index is not None:
            raise DistributedError(f"--device {device} names one GPU, but each of the {size} processes takes its "
                                   "own (cuda:LOCAL_RANK); pass --device cuda")
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if local_rank >= torch.cuda.device_count():
            raise DistributedError(f"LOCAL_RANK={local_rank} but this node has {torch.cuda.device_count()} "
                                   "visible GPU(s); start at most one process per GPU")
        torch.cuda.set_device(local_rank)
        device, backend = torch.device("cuda", local_rank), "nccl"
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise DistributedError(f"data-parallel runs support cuda and cpu devices, not {device.type!r}")
    try:
        kw = {"device_id": device} if backend == "nccl" else {}
        dist.init_process_group(backend, timeout=TIMEOUT, **kw)
    except Exception as e:  # the launcher's environment is incomplete or the rendezvous failed
        raise DistributedError(f"{size} processes were asked for ({where}) but the {backend} process group "
                               f"could not be initialised: {type(e).__name__}: {e}; refusing to fall back to a "
                               "single process") from e
    return device


@contextlib.contextmanager
def process_group(device: str | torch.device, expected: int | None = None):
    """`init_process_group` for the duration of a block; the group is destroyed on the way out."""
    owned = not (dist.is_available() and dist.is_initialized())
    device = init_process_group(device, expected)
    try:
        yield device
    finally:
        if owned and dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
