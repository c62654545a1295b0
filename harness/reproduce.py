"""`python -m harness reproduce --table T`: run every cell of a table that has no result yet, then report.

Orchestration only (DESIGN.md layering): it plans cells from the table, makes sure the data is there, trains or
loads checkpoints and evaluates through the run layer, and renders through the report layer. Each cell's record is
written atomically when the cell is complete, and training resumes from its last checkpoint, so a killed
`reproduce` leaves no half-written result and a rerun does only what is missing.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from harness.config import apply_overrides
from harness.errors import HarnessError
from harness.registry import METHODS, get_config
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
        return results / self.table.name / "runs" / f"{self.row.method}-{self.row.dataset}" / f"seed{self.seed}"

    @property
    def trains(self) -> bool:
        return METHODS.get(self.row.method).kind == "learned" and self.row.variant == "trained"


def cell_config(table: Table, row: Row, overrides: list[str] = ()):
    """The method's config for the row's dataset under the table's budget (every learned cell gets the same)."""
    config = get_config(row.method, row.dataset)
    budget = {}
    if table.budget.steps is not None:
        budget["train.steps"] = table.budget.steps
    if table.budget.batch_size is not None:
        budget["train.batch_size"] = table.budget.batch_size
    if budget:
        config = apply_overrides(config, budget)
    return apply_overrides(config, list(overrides)) if overrides else config


def plan(table: Table, results: Path, seeds: list[int] | None = None) -> tuple[list[Cell], list[Cell]]:
    """(all cells, cells without a record)."""
    cells = [Cell(table, row, s) for row in table.rows for s in (seeds or table.seeds)]
    return cells, [c for c in cells if not c.record_path(results).is_file()]


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
    """Runs cells in-process, one after the other (the local executor)."""

    def __init__(self, table: Table, *, data_dir: Path, results: Path, device: str, checkpoints: Path | None,
                 overrides: list[str] = (), progress: bool = True, eval_limit: int | None = None):
        self.table, self.data_dir, self.results, self.device = table, data_dir, results, device
        self.checkpoints, self.overrides, self.progress, self.eval_limit = checkpoints, list(overrides), progress, eval_limit

    def stage_weights(self, config, seed: int) -> Path | None:
        """Train (once per dataset and seed, shared by every method that needs it) or reuse the config's stage."""
        if config.stage is None:
            return None
        from harness.run.train import WEIGHTS, train

        run_dir = stage_run_dir(self.results, self.table, config.stage, config.dataset, seed)
        weights = run_dir / WEIGHTS
        if not weights.is_file():
            stage_config = get_config(config.stage, config.dataset)
            train(stage_config, data_dir=self.data_dir, run_dir=run_dir, seed=seed, device=self.device,
                  progress=self.progress)
        return weights

    def run(self, cell: Cell) -> dict:
        from harness.run.cell import evaluate_cell
        from harness.run.train import train

        config = cell_config(self.table, cell.row, self.overrides)
        identity = {"table": self.table.name, "label": cell.row.label, "variant": cell.row.variant}
        cost: dict = {}
        stage = None
        checkpoint = None
        if cell.trains and self.checkpoints is not None:
            checkpoint = find_release_checkpoint(self.checkpoints, cell)
        elif cell.trains:
            stage = self.stage_weights(config, cell.seed)
            started = time.perf_counter()
            summary = train(config, data_dir=self.data_dir, run_dir=cell.run_dir(self.results), seed=cell.seed,
                            device=self.device, stage_weights=stage, progress=self.progress)
            checkpoint = summary.weights
            cost = {"train_seconds": time.perf_counter() - started, "train_images_per_second":
                    summary.images_per_second, "peak_memory_mb": summary.peak_memory_mb, "steps": summary.steps}
        elif config.stage is not None:
            stage = self.stage_weights(config, cell.seed)
        return evaluate_cell(config, data_dir=self.data_dir, checkpoint=checkpoint, seed=cell.seed,
                             output=cell.record_path(self.results), protocol=self.table.protocol, device=self.device,
                             stage_weights=stage, identity_extra=identity, cost=cost, limit=self.eval_limit)
