"""`python -m harness reproduce --table T`: run every cell of a table that has no result yet, then report.

Orchestration only (docs/architecture.md#layers): it plans cells from the table, makes sure the data is there, trains or
loads checkpoints and evaluates through the run layer, and renders through the report layer. Each cell's record is
written atomically when the cell is complete, and training resumes from its last checkpoint, so a killed
`reproduce` leaves no half-written result and a rerun does only what is missing.

Where the cells run is the executor's business (harness.run.launch): on this machine (`--executor local`, `--jobs`
cells at a time, by default one per core on a CPU device), or one submitit job per cell on Slurm (`--executor
slurm`) or on this machine (`--executor submitit-local`), with the shared prerequisite stages (VQ-VAE tokenizers)
trained first. Either way the report is rendered here from the records the cells wrote.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from harness.config import config_hash
from harness.errors import HarnessError
from harness.registry import METHODS, get_config
from harness.results import ResultError, read_record
from harness.run.launch import Job, Resources, SlurmOptions, local_jobs, make_executor
from harness.tables import TABLES, Row, Table


class ReproduceError(HarnessError):
    pass


@dataclass(frozen=True)
class Cell:
    table: Table
    row: Row
    seed: int

    @property
    def name(self) -> str:
        return f"{self.row.label}-{self.seed}"

    def record_path(self, results: Path) -> Path:
        return results / self.table.name / self.row.label / f"seed{self.seed}.json"

    def run_dir(self, results: Path) -> Path:
        return results / self.table.name / "runs" / self.row.label / f"seed{self.seed}"

    @property
    def trains(self) -> bool:
        return METHODS.get(self.row.method).kind == "learned" and self.row.variant == "trained"


def budget_overrides(steps: int | None, batch_size: int | None) -> list[str]:
    """A table's step budget and batch size as overrides; warm-up, validations and saving follow the steps
    (harness.config.SCHEDULE_RULES)."""
    return ([f"train.steps={steps}"] if steps is not None else []) + \
        ([f"train.batch_size={batch_size}"] if batch_size is not None else [])


def cell_config(table: Table, row: Row, overrides: list[str] = ()):
    """The method's config for the row's dataset under the table's budget (every learned cell gets the same; a
    reference row has no training to budget). One `get_config` call, so that a schedule field set by any of the
    overrides is kept and the others follow the steps: the table's overrides, the row's, the budget, the caller's."""
    budget = [] if METHODS.get(row.method).kind == "reference" else budget_overrides(table.budget.steps,
                                                                                   table.budget.batch_size)
    return get_config(row.method, row.dataset, [*table.overrides, *row.overrides, *budget, *overrides])


def stage_config(table: Table, stage: str, dataset: str):
    """A prerequisite's config under the table's stage budget; a learned method serving as a stage (SPOT's stage 1)
    trains under the budget of the learned cells, as it does in its own rows."""
    if METHODS.get(stage).kind == "learned":
        budget = budget_overrides(table.budget.steps, table.budget.batch_size)
    else:
        budget = budget_overrides(table.budget.stage_steps, table.budget.stage_batch_size)
    return get_config(stage, dataset, [*table.overrides, *budget])


def plan(table: Table, results: Path, seeds: list[int] | None = None) -> tuple[list[Cell], list[Cell]]:
    """(all cells, cells without a record)."""
    cells = [Cell(table, row, s) for row in table.rows for s in (seeds or table.seeds)]
    return cells, [c for c in cells if not c.record_path(results).is_file()]


def stale_records(cells: list[Cell], results: Path, overrides: list[str] = ()) -> list[Path]:
    """Records of `cells` made with another config than the cell's current one (the code's recipe changed, or
    other overrides were given): reusing them would mix recipes in one table."""
    stale = []
    for cell in cells:
        path = cell.record_path(results)
        if not path.is_file():
            continue
        try:
            recorded = read_record(path)["identity"]["config_hash"]
        except ResultError as e:
            raise ReproduceError(f"{path}: not a readable result record ({e}); remove it to re-run the cell") from None
        if recorded != config_hash(cell_config(cell.table, cell.row, overrides)):
            stale.append(path)
    return stale


def stage_run_dir(results: Path, table: Table, stage: str, dataset: str, seed: int) -> Path:
    return results / table.name / "stages" / f"{stage}-{dataset}" / f"seed{seed}"


def find_release_checkpoint(checkpoints: Path, cell: Cell) -> Path:
    """The authors' release layout `<label>/<seed>-<epoch>.pth` (e.g. dias_r-coco/42-0027.pth)."""
    folder = checkpoints / cell.row.label
    found = sorted(folder.glob(f"{cell.seed}-*.pth"))
    found = [p for p in found if re.fullmatch(rf"{cell.seed}-\d+\.pth", p.name)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise ReproduceError(f"no checkpoint for {cell.name}: expected {folder}/{cell.seed}-<epoch>.pth "
                             "(the authors publish them at https://github.com/Genera1Z/DIAS/releases/tag/archive-dias)")
    raise ReproduceError(f"several checkpoints for {cell.name} in {folder}: {', '.join(p.name for p in found)}; "
                         "keep the one to evaluate")


class Runner:
    """Runs one cell (or one shared stage) wherever an executor calls it: in this process, or unpickled in a
    submitit job; inside a data-parallel group every rank calls it and rank 0 writes."""

    def __init__(self, table: Table, *, data_dir: Path, results: Path, device: str, checkpoints: Path | None,
                 overrides: list[str] = (), progress: bool = True, eval_limit: int | None = None,
                 feature_cache: Path | None = None):
        self.table, self.data_dir, self.results, self.device = table, data_dir, results, device
        self.checkpoints, self.overrides = checkpoints, list(overrides)
        self.progress, self.eval_limit = progress, eval_limit
        self.feature_cache = feature_cache  # frozen-backbone features reused across evaluations (identical metrics)

    def stage_of(self, cell: Cell) -> tuple[str, str, int] | None:
        """(stage, dataset, seed) the cell needs trained first, or None (released checkpoints hold their stage).

        One stage per dataset and seed, shared by the methods that need it, so a seed's spread includes its
        tokenizer's; or one per dataset when the table's budget fixes a `stage_seed` (tokenizers only: a learned
        method serving as a stage is trained per seed, as its own cells are)."""
        config = cell_config(self.table, cell.row, self.overrides)
        if config.stage is None or (cell.trains and self.checkpoints is not None):
            return None
        seed = self.table.budget.stage_seed if METHODS.get(config.stage).kind == "stage" else None
        return config.stage, config.dataset, cell.seed if seed is None else seed

    def trains(self, cell: Cell) -> bool:
        """Whether the cell trains here (rather than evaluating a rule, an initialisation or a release)."""
        return cell.trains and self.checkpoints is None

    def train_stage(self, stage: str, dataset: str, seed: int) -> Path:
        """Train (once per dataset and seed, shared by every method that needs it) or reuse a stage's weights."""
        from harness.run.train import WEIGHTS, train

        run_dir = stage_run_dir(self.results, self.table, stage, dataset, seed)
        weights = run_dir / WEIGHTS
        if not weights.is_file():
            train(stage_config(self.table, stage, dataset), data_dir=self.data_dir, run_dir=run_dir, seed=seed,
                  device=self.device, progress=self.progress)
        return weights

    def run(self, cell: Cell) -> dict:
        from harness.compute import apply_deterministic
        from harness.run.cell import evaluate_cell
        from harness.run.train import train

        apply_deterministic()  # a cluster job inherits the environment, not the process state
        config = cell_config(self.table, cell.row, self.overrides)
        identity = {"table": self.table.name, "label": cell.row.label, "variant": cell.row.variant}
        cost: dict = {}
        needs = self.stage_of(cell)
        stage = self.train_stage(*needs) if needs else None
        checkpoint = None
        if cell.trains and self.checkpoints is not None:
            checkpoint = find_release_checkpoint(self.checkpoints, cell)
        elif cell.trains:
            started = time.perf_counter()
            summary = train(config, data_dir=self.data_dir, run_dir=cell.run_dir(self.results), seed=cell.seed,
                            device=self.device, stage_weights=stage, progress=self.progress,
                            feature_cache=self.feature_cache)
            checkpoint = summary.weights
            cost = {"train_seconds": time.perf_counter() - started, "train_images_per_second":
                    summary.images_per_second, "peak_memory_mb": summary.peak_memory_mb, "steps": summary.steps}
        return evaluate_cell(config, data_dir=self.data_dir, checkpoint=checkpoint, seed=cell.seed,
                             output=cell.record_path(self.results), protocol=self.table.protocol, device=self.device,
                             stage_weights=stage, identity_extra=identity, cost=cost, limit=self.eval_limit,
                             feature_cache=self.feature_cache, progress=self.progress)


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


def cell_launcher(table: Table, options: "ReproduceOptions", *, cells: int, missing: int):
    """The executor that runs a table's missing cells (locally `options.jobs` at a time, default one per core on
    CPU), after announcing what will run."""
    o = options
    processes = local_jobs(o.jobs, device=o.device, jobs=missing) if o.executor == "local" else 1
    at_once = f", {processes} at a time" if processes > 1 else ""
    print(f"table {table.name}: {cells} cells, {cells - missing} done, {missing} to run{at_once}", flush=True)
    return make_executor(o.executor, folder=o.results / table.name / "jobs", device=o.device, slurm=o.slurm,
                         name=f"harness-{table.name}", processes=processes)


@dataclass(frozen=True)
class ReproduceOptions:
    """How to run a table: where data, results and reports live, train or evaluate releases, on what, and where
    the cells run (`executor`: harness.run.launch.EXECUTORS; locally `jobs` cells at a time, None: one per core on
    CPU). `gpus`, `minutes`, `cpus` and `slurm` size cluster jobs."""

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


def reproduce(table_name: str, options: ReproduceOptions = ReproduceOptions()):
    """Run the table's missing cells, then aggregate and render the table. Returns the report's RenderResult."""
    from harness.report import render_table, text_table

    o = options
    table = TABLES.get(table_name)
    if table.task == "recognition":
        from harness.recognition.tables import reproduce_recognition

        return reproduce_recognition(table, o)
    cells, missing = plan(table, o.results, list(o.seeds) if o.seeds else None)
    overrides = list(o.overrides)
    for cell in cells:  # every override problem is reported before anything runs
        cell_config(table, cell.row, overrides)
    stale = stale_records(cells, o.results, overrides)
    if stale:
        listing = "\n  ".join(map(str, stale))
        if not o.allow_mixed:
            raise ReproduceError(
                f"table {table.name!r}: {len(stale)} record(s) were made with another config than the cells' current "
                f"one (changed code or overrides):\n  {listing}\nremove them and their run directories under "
                f"{o.results / table.name / 'runs'}, use another --results directory, or --allow-mixed to reuse them")
        print(f"reusing {len(stale)} record(s) made with another config (--allow-mixed):\n  {listing}", flush=True)
    data_dir = ensure_data(table, o.data_dir, need_train=o.checkpoints is None and any(c.trains for c in missing))
    feature_cache = o.feature_cache or (o.results / table.name / "features" if table.cache_features else None)
    runner = Runner(table, data_dir=data_dir, results=o.results, device=o.device, checkpoints=o.checkpoints,
                    overrides=overrides, progress=o.progress and o.executor == "local",
                    feature_cache=feature_cache)
    launcher = cell_launcher(table, o, cells=len(cells), missing=len(missing))
    started = time.perf_counter()
    budget = dict(device=o.device, gpus=o.gpus, minutes=o.minutes, cpus=o.cpus)
    stages = sorted({key for key in map(runner.stage_of, missing) if key is not None})
    stage_jobs = [Job(f"stage {s}-{d}-{seed}", runner.train_stage, (s, d, seed),
                      resources(table, trains=True, **budget)) for s, d, seed in stages]
    for job, _ in launcher.run(stage_jobs):
        print(f"{job.name}: trained ({time.perf_counter() - started:.0f}s)\n", end="", flush=True)
    # training cells first, the slowest to train first (the registry's train_cost): with several at a time the short
    # ones fill the gaps at the end
    ordered = sorted(missing, key=lambda cell: (not runner.trains(cell), -METHODS.get(cell.row.method).train_cost))
    cell_jobs = [Job(cell.name, runner.run, (cell,), resources(table, trains=runner.trains(cell), **budget))
                 for cell in ordered]
    for i, (job, record) in enumerate(launcher.run(cell_jobs), 1):
        means = "  ".join(f"{k} {100 * v:.1f}" if v is not None else f"{k} —" for k, v in record["means"].items())
        # one write per line: worker processes print to the same stream
        print(f"[{i}/{len(missing)}] {job.name}: {means}  ({time.perf_counter() - started:.0f}s)\n", end="",
              flush=True)
    result = render_table(table, o.results, o.out_dir, published=bool(table.published), allow_mixed=o.allow_mixed)
    print(text_table(result.frame, table))
    for path in result.paths.values():
        print(f"wrote {path}")
    return result


