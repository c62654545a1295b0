"""The orchestration engine: plan a table's cells, refuse stale records, make sure the data is there, run the missing
cells (and the prerequisites they share) through an executor with progress lines, then render the report.

It knows a table's cells only through a `Task` — which cells, how one runs and what its record is, how the table
renders — so discovery (harness.engine.discovery) and recognition (harness.engine.recognition) are two implementations
of one loop, and a third kind of table (a downstream probe, video) is one more implementation.

Each cell's record is written atomically when the cell is complete, and training resumes from its last checkpoint, so
a killed `reproduce` leaves no half-written result and a rerun does only what is missing. Where the cells run is the
executor's business (harness.run.launch): on this machine (`--executor local`, `--jobs` cells at a time, by default
one per core on a CPU device), or one submitit job per cell on Slurm (`--executor slurm`) or on this machine
(`--executor submitit-local`). Either way the report is rendered here from the records the cells wrote.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from harness.errors import HarnessError
from harness.run.launch import Job, Resources, SlurmOptions, local_jobs, make_executor
from harness.tables import TABLES, Row, Table


class ReproduceError(HarnessError):
    pass


@dataclass(frozen=True)
class Cell:
    """One row of a table for one seed, and where its files live under the results directory."""

    table: Table
    row: Row
    seed: int

    @property
    def name(self) -> str:
        return f"{self.row.label}-{self.seed}"

    def record_path(self, results: Path) -> Path:
        return results / self.table.name / self.row.label / f"seed{self.seed}.json"

    def run_dir(self, results: Path) -> Path:
        """The training run's directory, shared by the rows that evaluate other checkpoints of it (`Row.run`)."""
        return results / self.table.name / "runs" / self.row.run_label / f"seed{self.seed}"


@dataclass(frozen=True)
class ReproduceOptions:
    """How to run a table: where data, results and reports live, train or evaluate releases, on what, and where
    the cells run (`executor`: harness.run.launch.EXECUTORS; locally `jobs` cells at a time, None: one per core on
    CPU). `gpus`, `minutes`, `cpus` and `slurm` size cluster jobs. `keep_state`: keep each finished training run's
    train_state.pt (removed by default)."""

    data_dir: Path | None = None
    results: Path = Path("runs")
    out_dir: Path = Path("reports")
    checkpoints: Path | None = None
    device: str = "cpu"
    overrides: tuple[str, ...] = ()
    allow_mixed: bool = False
    progress: bool = True
    seeds: tuple[int, ...] | None = None
    feature_cache: Path | None = None
    executor: str = "local"
    gpus: int | None = None
    minutes: int | None = None
    cpus: int | None = None
    slurm: SlurmOptions | None = None
    jobs: int | None = 1
    formats: tuple[str, ...] | None = None  # report formats (harness.report.render.FORMATS); None: xlsx, md, html
    keep_state: bool = False


@dataclass(frozen=True)
class Rendered:
    text: str  # what `reproduce` prints
    paths: dict  # the report files written


class Task(Protocol):
    """What the engine needs to know of one kind of table (`Table.task`)."""

    def check(self, cells: list[Cell], missing: list[Cell]) -> None:
        """Raise for every problem the cells would meet (overrides, missing checkpoints or models), before anything
        runs or is written."""

    def recipe_hash(self, cell: Cell) -> str:
        """The hash of the recipe the cell runs now; a record made with another is stale."""

    def recorded_hash(self, record: dict) -> str:
        """The recipe hash a record of this task was made with."""

    def data(self, missing: list[Cell]) -> Path | None:
        """The data directory the missing cells read (generated, or checked to exist)."""

    def prerequisites(self, missing: list[Cell], data_dir: Path | None) -> list[Job]:
        """Shared jobs the cells need first (VQ-VAE tokenizers), each once."""

    def job(self, cell: Cell, data_dir: Path | None) -> Job:
        """The job that runs one cell and returns its record (a picklable callable, for pool workers and clusters)."""

    def cost(self, cell: Cell) -> tuple:
        """Sort key of the missing cells: the slowest first, so that with several at a time the short ones fill the
        gaps at the end."""

    def progress(self, record: dict) -> str:
        """One line of a finished cell's numbers."""

    def render(self) -> Rendered:
        """The table's reports from every record under the results directory."""


TaskFactory = Callable[[Table, ReproduceOptions], Task]
TASKS: dict[str, TaskFactory] = {}  # Table.task → its implementation (filled by harness.engine)


def plan(table: Table, results: Path, seeds: list[int] | None = None,
         released: bool = False) -> tuple[list[Cell], list[Cell]]:
    """(all cells, cells without a record). `released`: the learned cells evaluate released checkpoints, one file
    each, so the rows that select another checkpoint of a training run (`Row.run`) have nothing to evaluate."""
    rows = [row for row in table.rows if not (released and row.run is not None)]
    cells = [Cell(table, row, s) for row in rows for s in (seeds or table.seeds)]
    return cells, [c for c in cells if not c.record_path(results).is_file()]


def stale_records(cells: list[Cell], results: Path, task: Task) -> list[Path]:
    """Records of `cells` made with another recipe than the cell's current one (the code's recipe changed, or other
    overrides were given): reusing them would mix recipes in one table."""
    stale = []
    for cell in cells:
        path = cell.record_path(results)
        if not path.is_file():
            continue
        try:
            recorded = task.recorded_hash(json.loads(path.read_text()))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ReproduceError(f"{path}: not a readable result record ({type(e).__name__}: {e}); remove it to "
                                 "re-run the cell") from None
        if recorded != task.recipe_hash(cell):
            stale.append(path)
    return stale


def find_release_checkpoint(checkpoints: Path, cell: Cell) -> Path:
    """The authors' release layout `<label>/<seed>-<epoch>.pth` (e.g. dias_r-coco/42-0027.pth)."""
    folder = checkpoints / cell.row.label
    found = [p for p in sorted(folder.glob(f"{cell.seed}-*.pth")) if re.fullmatch(rf"{cell.seed}-\d+\.pth", p.name)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise ReproduceError(f"no checkpoint for {cell.name}: expected {folder}/{cell.seed}-<epoch>.pth "
                             "(the authors publish them at https://github.com/Genera1Z/DIAS/releases/tag/archive-dias)")
    raise ReproduceError(f"several checkpoints for {cell.name} in {folder}: {', '.join(p.name for p in found)}; "
                         "keep the one to evaluate")


def ensure_data(table: Table, data_dir: Path | None, *, need_train: bool) -> Path:
    """The table's data directory: synthetic data is generated (deterministically) if absent and checked against
    the table's generator parameters if present; real data must exist, else the error lists every missing file
    and where the authors publish it."""
    from harness.data import DATASETS, GENERATORS, data_card, split_path

    if table.data == "synthetic":
        data_dir = data_dir or Path("data") / table.name
        synth = table.synth
        _, write, params = GENERATORS[synth.dataset]
        expected = {"train": synth.train, "val": synth.val}
        paths = {s: split_path(data_dir, synth.dataset, s) for s in expected}
        if not all(p.is_file() for p in paths.values()):
            print(f"generating the {table.name} table's {synth.dataset} data in {data_dir} ...", flush=True)
            write(data_dir, synth.config, train=synth.train, val=synth.val)
        for split, path in paths.items():
            card = data_card(path)
            made = card.get("generator") or {}
            wanted = json.loads(json.dumps(params(synth.config)))  # as the card stores it
            if made != wanted or card["records"] != expected[split]:
                raise ReproduceError(
                    f"{path} was generated with other parameters ({made}, {card['records']} records) than table "
                    f"{table.name!r} fixes ({wanted}, {expected[split]} records); remove {data_dir} to regenerate "
                    "it, or pass another --data-dir")
        return data_dir
    datasets = sorted({row.dataset for row in table.rows})
    splits = ("train", "val") if need_train else ("val",)
    root = Path("<data-dir>") if data_dir is None else data_dir
    missing = [(d, split_path(root, d, s)) for d in datasets for s in splits
               if data_dir is None or not split_path(data_dir, d, s).is_file()]
    if missing:
        files = [f"  {path}" for _, path in missing]
        where = [f"  {d}: {DATASETS.get(d).where_to_get()}" for d in sorted({d for d, _ in missing})]
        head = (f"table {table.name!r} needs real data: pass --data-dir DIR holding" if data_dir is None
                else f"table {table.name!r} is missing {len(missing)} data file(s) under {data_dir}:")
        raise ReproduceError("\n".join([head, *files, "where to get them:", *where]))
    return data_dir


def resources(table: Table, *, trains: bool, device: str, gpus: int | None, minutes: int | None,
              cpus: int | None) -> Resources:
    """A job's resources: the table's GPU budget (or --slurm-gpus) as data-parallel processes for training jobs,
    one process (and at most one GPU) for the rest — CPU processes and no GPU on a CPU device; the table's wall
    time (or --slurm-time)."""
    gpus = table.budget.gpus if gpus is None else gpus
    processes = max(gpus, 1) if trains else 1
    if not device.startswith("cuda"):
        gpus = 0
    return Resources(processes=processes, gpus=gpus if trains else min(gpus, 1), cpus=cpus,
                     minutes=table.budget.minutes if minutes is None else minutes)


def job_resources(table: Table, options: ReproduceOptions, *, trains: bool) -> Resources:
    o = options
    return resources(table, trains=trains, device=o.device, gpus=o.gpus, minutes=o.minutes, cpus=o.cpus)


def reproduce(table_name: str, options: ReproduceOptions = ReproduceOptions()) -> Rendered:
    """Run the table's missing cells, then aggregate and render the table; returns what was printed and written."""
    o = options
    table = TABLES.get(table_name)
    task = TASKS[table.task](table, o)
    cells, missing = plan(table, o.results, list(o.seeds) if o.seeds else None,
                          released=o.checkpoints is not None)
    task.check(cells, missing)
    stale = stale_records(cells, o.results, task)
    if stale:
        listing = "\n  ".join(map(str, stale))
        if not o.allow_mixed:
            raise ReproduceError(
                f"table {table.name!r}: {len(stale)} record(s) were made with another config than the cells' current "
                f"one (changed code or overrides):\n  {listing}\nremove them and their run directories under "
                f"{o.results / table.name / 'runs'}, use another --results directory, or --allow-mixed to reuse them")
        print(f"reusing {len(stale)} record(s) made with another config (--allow-mixed):\n  {listing}", flush=True)
    data_dir = task.data(missing)

    processes = local_jobs(o.jobs, device=o.device, jobs=len(missing)) if o.executor == "local" else 1
    at_once = f", {processes} at a time" if processes > 1 else ""
    print(f"table {table.name}: {len(cells)} cells, {len(cells) - len(missing)} done, {len(missing)} to run{at_once}",
          flush=True)
    launcher = make_executor(o.executor, folder=o.results / table.name / "jobs", device=o.device, slurm=o.slurm,
                             name=f"harness-{table.name}", processes=processes)
    started = time.perf_counter()
    for job, _ in launcher.run(task.prerequisites(missing, data_dir)):
        print(f"{job.name}: trained ({time.perf_counter() - started:.0f}s)\n", end="", flush=True)
    jobs = [task.job(cell, data_dir) for cell in sorted(missing, key=task.cost)]
    for i, (job, record) in enumerate(launcher.run(jobs), 1):
        # one write per line: worker processes print to the same stream
        print(f"[{i}/{len(missing)}] {job.name}: {task.progress(record)}  ({time.perf_counter() - started:.0f}s)\n",
              end="", flush=True)
    rendered = task.render()
    print(rendered.text)
    for path in rendered.paths.values():
        print(f"wrote {path}")
    return rendered
