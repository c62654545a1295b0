"""Discovery tables (`Table.task == "discovery"`): each cell trains a slot model (or loads the authors' released
checkpoint, or evaluates an untrained initialisation or a reference rule) and evaluates its masks into a result record
(harness.results); the shared prerequisite stages (VQ-VAE tokenizers) are trained first."""

from __future__ import annotations

import json
from pathlib import Path

from harness.compute import apply_deterministic
from harness.config import config_hash
from harness.engine.core import Cell, Rendered, ReproduceOptions, ensure_data, find_release_checkpoint, job_resources
from harness.io import exclusive
from harness.registry import METHODS
from harness.report import render_table, text_table
from harness.run.cell import evaluate_cell
from harness.run.launch import Job
from harness.run.train import SUMMARY, WEIGHTS, selected_checkpoint, train
from harness.tables import Table


def stage_run_dir(results: Path, table: Table, stage: str, dataset: str, seed: int) -> Path:
    return results / table.name / "stages" / f"{stage}-{dataset}" / f"seed{seed}"


def trains(cell: Cell) -> bool:
    """Whether the cell's row is a learned method's trained model (rather than a rule or an initialisation)."""
    return METHODS.get(cell.row.method).kind == "learned" and cell.row.variant == "trained"


class Runner:
    """Runs one cell (or one shared stage) wherever an executor calls it: in this process, or unpickled in a
    submitit job; inside a data-parallel group every rank calls it and rank 0 writes."""

    def __init__(self, table: Table, *, data_dir: Path, results: Path, device: str, checkpoints: Path | None,
                 overrides: list[str] = (), progress: bool = True, eval_limit: int | None = None,
                 feature_cache: Path | None = None, keep_state: bool = False):
        self.table, self.data_dir, self.results, self.device = table, data_dir, results, device
        self.checkpoints, self.overrides = checkpoints, list(overrides)
        self.progress, self.eval_limit = progress, eval_limit
        self.feature_cache = feature_cache  # frozen-backbone features reused across evaluations (identical metrics)
        self.keep_state = keep_state  # keep finished runs' train_state.pt

    def stage_of(self, cell: Cell) -> tuple[str, str, int] | None:
        """(stage, dataset, seed) the cell needs trained first, or None (released checkpoints hold their stage).

        One stage per dataset and seed, shared by the methods that need it, so a seed's spread includes its
        tokenizer's; or one per dataset when the table's budget fixes a `stage_seed` (tokenizers only: a learned
        method serving as a stage is trained per seed, as its own cells are)."""
        config = self.table.cell_config(cell.row, self.overrides)
        if config.stage is None or (trains(cell) and self.checkpoints is not None):
            return None
        seed = self.table.budget.stage_seed if METHODS.get(config.stage).kind == "stage" else None
        return config.stage, config.dataset, cell.seed if seed is None else seed

    def trains(self, cell: Cell) -> bool:
        """Whether the cell trains here (rather than evaluating a rule, an initialisation or a release)."""
        return trains(cell) and self.checkpoints is None

    def train_stage(self, stage: str, dataset: str, seed: int) -> Path:
        """Train (once per dataset and seed, shared by every method that needs it) or reuse a stage's weights."""
        apply_deterministic()  # a cluster job inherits the environment, not the process state
        run_dir = stage_run_dir(self.results, self.table, stage, dataset, seed)
        weights = run_dir / WEIGHTS
        if not weights.is_file():
            train(self.table.stage_config(stage, dataset), data_dir=self.data_dir, run_dir=run_dir, seed=seed,
                  device=self.device, progress=self.progress, keep_state=self.keep_state)
        return weights

    def run(self, cell: Cell) -> dict:
        apply_deterministic()
        config = self.table.cell_config(cell.row, self.overrides)
        identity = {"table": self.table.name, "label": cell.row.label, "variant": cell.row.variant}
        cost, extra = {}, {}
        needs = self.stage_of(cell)
        stage = self.train_stage(*needs) if needs else None
        checkpoint = None
        if trains(cell) and self.checkpoints is not None:
            checkpoint = find_release_checkpoint(self.checkpoints, cell)
        elif trains(cell):
            run_dir = cell.run_dir(self.results)
            with exclusive(run_dir.with_name(run_dir.name + ".training")):  # rows sharing a run train it once
                summary = train(config, data_dir=self.data_dir, run_dir=run_dir, seed=cell.seed, device=self.device,
                                stage_weights=stage, progress=self.progress, feature_cache=self.feature_cache,
                                keep_state=self.keep_state)
            checkpoint, point = selected_checkpoint(run_dir, cell.row.selection, summary.curve, config.train)
            cost = {"train_seconds": summary.seconds, "train_images_per_second": summary.images_per_second,
                    "peak_memory_mb": summary.peak_memory_mb, "steps": summary.steps}
            if stage is not None:  # the tokenizer's training is part of what the method costs
                cost["stage_seconds"] = json.loads((stage.parent / SUMMARY).read_text())["seconds_this_session"]
            extra = {"curve": summary.curve, "selection": {"rule": cell.row.selection, "step": point["step"],
                                                           "on": config.train.select_on}}
        return evaluate_cell(config, data_dir=self.data_dir, checkpoint=checkpoint, seed=cell.seed,
                             output=cell.record_path(self.results), protocol=self.table.protocol, device=self.device,
                             stage_weights=stage, identity_extra=identity, cost=cost, limit=self.eval_limit,
                             feature_cache=self.feature_cache, progress=self.progress, **extra)


class DiscoveryTask:
    """harness.engine.core.Task for discovery tables."""

    def __init__(self, table: Table, options: ReproduceOptions):
        self.table, self.options = table, options
        self.runner: Runner | None = None

    def check(self, cells: list[Cell], missing: list[Cell]) -> None:
        for cell in cells:  # every override problem is reported before anything runs
            self.table.cell_config(cell.row, self.options.overrides)

    def recipe_hash(self, cell: Cell) -> str:
        return config_hash(self.table.cell_config(cell.row, self.options.overrides))

    def recorded_hash(self, record: dict) -> str:
        return record["identity"]["config_hash"]

    def data(self, missing: list[Cell]) -> Path | None:
        o = self.options
        need_train = o.checkpoints is None and any(trains(c) for c in missing)
        data_dir = ensure_data(self.table, o.data_dir, need_train=need_train)
        if o.checkpoints is not None:  # every released checkpoint the cells evaluate, before any of them runs
            for cell in filter(trains, missing):
                find_release_checkpoint(o.checkpoints, cell)
        feature_cache = o.feature_cache or (o.results / self.table.name / "features" if self.table.cache_features
                                            else None)
        self.runner = Runner(self.table, data_dir=data_dir, results=o.results, device=o.device,
                             checkpoints=o.checkpoints, overrides=list(o.overrides),
                             progress=o.progress and o.executor == "local", feature_cache=feature_cache,
                             keep_state=o.keep_state)
        return data_dir

    def prerequisites(self, missing: list[Cell], data_dir: Path | None) -> list[Job]:
        stages = sorted({key for key in map(self.runner.stage_of, missing) if key is not None})
        return [Job(f"stage {s}-{d}-{seed}", self.runner.train_stage, (s, d, seed),
                    job_resources(self.table, self.options, trains=True)) for s, d, seed in stages]

    def job(self, cell: Cell, data_dir: Path | None) -> Job:
        return Job(cell.name, self.runner.run, (cell,),
                   job_resources(self.table, self.options, trains=self.runner.trains(cell)))

    def cost(self, cell: Cell) -> tuple:
        """Job order: training runs first, the dearest first; a row that evaluates another row's run (a selection
        rule) after every run's owner, so that no worker waits on a run another worker trains."""
        return (not self.runner.trains(cell), cell.row.run is not None,
                -METHODS.get(cell.row.method).train_cost)

    def progress(self, record: dict) -> str:
        return "  ".join(f"{k} {100 * v:.1f}" if v is not None else f"{k} —" for k, v in record["means"].items())

    def render(self) -> Rendered:
        o = self.options
        result = render_table(self.table, o.results, o.out_dir, published=bool(self.table.published),
                              allow_mixed=o.allow_mixed, formats=o.formats)
        return Rendered(text_table(result.frame, self.table), result.paths)

