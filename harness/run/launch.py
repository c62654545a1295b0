"""Executors: where the jobs of a reproduction run, and how their results come back.

- `InProcess` (`--executor local --jobs 1`): one job after the other in this process.
- `LocalPool` (`--executor local --jobs N`): N jobs at a time in worker processes of this machine, each with its
  share of the cores as intra-op threads — for the small CPU models of the synthetic tables, two one-thread cells
  train about twice as fast as one two-thread cell.
- `Submitit` on Slurm (`--executor slurm`): one Slurm job per job (a job array per group of equal resources,
  `executor.batch()`); a job asking for K > 1 processes runs as K tasks that join one data-parallel group
  (harness.run.distributed), one GPU each. Pre-empted or timed-out jobs are resubmitted (`Resumable.checkpoint`)
  and resume from what they left on disk — a training run from its train_state.pt.
- `Submitit` on this machine (`--executor submitit-local`): the same path through submitit's LocalExecutor
  (subprocesses), which is what CI runs.

A job is a picklable callable with its arguments (for submitit: a module-level function or a bound method of a
module-level class, pickled by reference) and the resources it asks for. `run(jobs)` yields (job, result) as jobs
finish; the pooled and submitit executors first wait for all of them and then raise JobsFailed naming every
failure.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from harness.errors import HarnessError, describe

EXECUTORS = ("local", "submitit-local", "slurm")
LOCAL_MINUTES = 24 * 60  # submitit-local's time limit when the table and the command line name none


class LaunchError(HarnessError):
    pass


class JobsFailed(LaunchError):
    pass


def raise_failures(failures: list[str], jobs: int) -> None:
    """After the other jobs have finished: one error naming every failed job (a line each), if any failed."""
    if failures:
        raise JobsFailed(f"{len(failures)} of {jobs} job(s) failed:\n" + "\n".join(failures))


@dataclass(frozen=True)
class Resources:
    """What one job asks the scheduler for: `processes` data-parallel ranks (one per GPU when `gpus` > 0),
    `gpus` per job, `cpus` per process, a wall-time limit in minutes (None: the executor's default)."""

    processes: int = 1
    gpus: int = 0
    cpus: int | None = None
    minutes: int | None = None


@dataclass(frozen=True)
class Job:
    name: str
    fn: Callable
    args: tuple = ()
    resources: Resources = field(default_factory=Resources)


@dataclass(frozen=True)
class SlurmOptions:
    """Cluster settings shared by every job: partition, sbatch lines run before the job (module load, venv
    activation), any other sbatch parameter (account, qos, constraint, ...), how often a job may time out and be
    resubmitted, how many array tasks run at once."""

    partition: str | None = None
    setup: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)
    max_timeouts: int = 3
    array_parallelism: int = 256


class InProcess:
    """Jobs one after the other in this process; an exception stops the run at once."""

    def run(self, jobs: list[Job]) -> Iterator[tuple[Job, object]]:
        for job in jobs:
            yield job, job.fn(*job.args)


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def local_jobs(requested: int | None, *, device: str, jobs: int) -> int:
    """How many of `jobs` run at once locally: as asked, else one per core on a CPU device (at most one per job)
    and one on an accelerator (its cells would otherwise share one device's memory)."""
    if requested is not None:
        if requested < 1:
            raise LaunchError(f"--jobs {requested}: need at least 1")
        return requested
    return max(1, min(usable_cores(), jobs)) if device == "cpu" else 1


# The progress-bar line of this worker process (0, 1, ... in the order the pool started them); None outside a pool.
WORKER_SLOT: int | None = None


def die_with_parent() -> None:
    """Linux: the kernel sends this process SIGTERM when its parent dies, so a killed `reproduce` (kill, OOM, a
    closed terminal) leaves no worker training on in the background into run directories that a rerun will use."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def init_worker(threads: int, started) -> None:
    """A pool worker: dies with the pool's process, its share of the cores, and its own line for progress bars (so
    parallel cells' bars do not overwrite each other)."""
    import torch

    from harness.compute import apply_deterministic

    global WORKER_SLOT
    die_with_parent()
    torch.set_num_threads(threads)
    apply_deterministic()
    with started.get_lock():
        WORKER_SLOT, started.value = started.value, started.value + 1


def progress_bar(**kwargs):
    """A tqdm bar on this process's line, shown only on a terminal (quiet in logs and CI)."""
    from tqdm.auto import tqdm

    return tqdm(position=WORKER_SLOT, leave=False, disable=None if kwargs.pop("enabled", True) else True, **kwargs)


def announce(name: str, fn: Callable, args: tuple):
    sys.stdout.write(f"{name}: started (process {os.getpid()})\n")  # one write: lines of parallel jobs stay whole
    sys.stdout.flush()
    return fn(*args)


class LocalPool:
    """`processes` jobs at a time in spawned worker processes (spawn: no forked torch thread pools or open LMDB
    environments), each with `threads` intra-op threads; results come back as jobs finish, and every failure is
    reported together after the other jobs have finished. Ctrl-C cancels the jobs not yet started; the running
    ones are interrupted with the parent, and their training resumes from its last checkpoint on the next run."""

    def __init__(self, processes: int, threads: int | None = None):
        self.processes = processes
        self.threads = threads or max(1, usable_cores() // processes)

    def run(self, jobs: list[Job]) -> Iterator[tuple[Job, object]]:
        if not jobs:
            return
        failures = []
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(min(self.processes, len(jobs)), mp_context=context, initializer=init_worker,
                                   initargs=(self.threads, context.Value("i", 0)))
        try:
            futures = {pool.submit(announce, job.name, job.fn, job.args): job for job in jobs}
            for future in as_completed(futures):
                job = futures[future]
                try:
                    result = future.result()
                except Exception as e:
                    failures.append(f"  {job.name}: {describe(e)}")
                    continue
                yield job, result
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        raise_failures(failures, len(jobs))


class Resumable:
    """A job as submitit runs it.

    In a job of several tasks (Slurm: one per GPU), every task joins the job's process group before running the
    function, so the function runs data-parallel; task 0's result is the job's. On pre-emption or time-out
    submitit calls `checkpoint()`, which resubmits the very same work: the object holds no progress of its own,
    the function finds it on disk (a training run resumes from its train_state.pt, finished cells have records).
    """

    def __init__(self, fn: Callable, args: tuple, processes: int, device: str):
        self.fn, self.args, self.processes, self.device = fn, args, processes, device

    def __call__(self):
        from harness.run.distributed import process_group

        if self.processes == 1:
            return self.fn(*self.args)
        import submitit

        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
        with process_group(self.device, self.processes):
            return self.fn(*self.args)

    def checkpoint(self, *args, **kwargs):
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(Resumable(self.fn, self.args, self.processes, self.device))


def slurm_parameters(resources: Resources, options: SlurmOptions, name: str) -> dict:
    """submitit (AutoExecutor) parameters of a Slurm job with `resources`: one task per process on one node."""
    if resources.minutes is None:
        raise LaunchError(f"{name}: no wall-time limit for the Slurm jobs: the table fixes none, pass "
                          "--slurm-time MINUTES (a job that times out is resubmitted and resumes)")
    params = {"name": name, "nodes": 1, "tasks_per_node": resources.processes, "timeout_min": resources.minutes,
              "gpus_per_node": resources.gpus, "slurm_array_parallelism": options.array_parallelism}
    if resources.cpus is not None:
        params["cpus_per_task"] = resources.cpus
    if options.partition is not None:
        params["slurm_partition"] = options.partition
    if options.setup:
        params["slurm_setup"] = list(options.setup)
    if options.extra:
        params["slurm_additional_parameters"] = dict(options.extra)
    return params


def local_parameters(resources: Resources, name: str) -> dict:
    return {"name": name, "nodes": 1, "tasks_per_node": resources.processes, "gpus_per_node": resources.gpus,
            "timeout_min": resources.minutes or LOCAL_MINUTES}


class Submitit:
    """Jobs through submitit: `cluster` "slurm" or "local" (subprocesses of this machine)."""

    def __init__(self, folder: str | Path, *, cluster: str, device: str, slurm: SlurmOptions | None = None,
                 poll_seconds: float | None = None, name: str = "harness"):
        self.folder, self.cluster, self.device, self.name = Path(folder), cluster, device, name
        self.slurm = slurm or SlurmOptions()
        self.poll = poll_seconds if poll_seconds is not None else (30.0 if cluster == "slurm" else 0.5)

    def executor(self, resources: Resources):
        import submitit

        try:
            executor = submitit.AutoExecutor(self.folder / "%j", cluster=self.cluster,
                                             **{f"{self.cluster}_max_num_timeout": self.slurm.max_timeouts})
        except RuntimeError as e:  # submitit's "Could not detect srun"
            raise LaunchError(f"--executor {self.cluster}: {e}; run where Slurm is installed, or use "
                              "--executor local / submitit-local") from e
        params = (slurm_parameters(resources, self.slurm, self.name) if self.cluster == "slurm"
                  else local_parameters(resources, self.name))
        executor.update_parameters(**params)
        return executor

    def submit(self, jobs: list[Job]) -> list:
        """Submit every job (a job array per group of jobs with equal resources); the submitit jobs in order."""
        handles: dict[int, object] = {}
        order = sorted(range(len(jobs)), key=lambda i: repr(jobs[i].resources))
        for resources, group in itertools.groupby(order, key=lambda i: jobs[i].resources):
            group = list(group)
            executor = self.executor(resources)
            with executor.batch():
                for i in group:
                    job = jobs[i]
                    handles[i] = executor.submit(Resumable(job.fn, job.args, resources.processes, self.device))
        return [handles[i] for i in range(len(jobs))]

    def run(self, jobs: list[Job]) -> Iterator[tuple[Job, object]]:
        from submitit.helpers import as_completed

        if not jobs:
            return
        handles = self.submit(jobs)
        print(f"submitted {len(jobs)} job(s) to {self.cluster}: {', '.join(sorted({str(h.job_id) for h in handles}))}"
              f" (logs in {self.folder})", flush=True)
        of = {id(h): job for h, job in zip(handles, jobs)}
        failures = []
        for handle in as_completed(handles, poll_frequency=self.poll):
            job = of[id(handle)]
            try:
                result = handle.results()[0]  # task 0's (rank 0's) result
            except Exception as e:  # the job raised, was cancelled, or timed out too often: report them all
                failures.append(f"  {job.name} (job {handle.job_id}): {last_line(e)}; log: {handle.paths.stderr}")
                continue
            yield job, result
        raise_failures(failures, len(jobs))


def last_line(error: Exception) -> str:
    """The exception line of a failed job's traceback (submitit wraps it in a FailedJobError)."""
    text = str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip() and not set(line.strip()) <= {"-"}]
    tb = [line for line in lines if not line.startswith(("Job (task", "You can check", "- /", "or at paths"))]
    return tb[-1] if tb else f"{type(error).__name__}: {text}"


def make_executor(kind: str, *, folder: str | Path, device: str, slurm: SlurmOptions | None = None,
                  name: str = "harness", processes: int = 1):
    """`processes`: how many jobs the local executor runs at once (see `local_jobs`)."""
    if kind == "local":
        return InProcess() if processes == 1 else LocalPool(processes)
    if kind == "submitit-local":
        return Submitit(folder, cluster="local", device=device, name=name)
    if kind == "slurm":
        return Submitit(folder, cluster="slurm", device=device, slurm=slurm, name=name)
    raise LaunchError(f"unknown executor {kind!r}; valid: {', '.join(EXECUTORS)}")
