"""Recognition tables (`Table.task == "recognition"`, their `ProbeRecipe`): each cell is a row's frozen discovery
model for one seed — a released checkpoint (`--checkpoints DIR`, the release layout `<label>/<seed>-<epoch>.pth`) or
the trained weights of the discovery table the recipe names — and a probe (harness.run.probe) trained with that seed
under the recipe's first protocol, evaluated once under each of its protocols beside the trivial predictor of its own
training pairs. Its record (harness.results.RECOGNITION_SCHEMA) is written atomically."""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from pathlib import Path

import torch

from harness.compute import apply_deterministic, device_description, hardware
from harness.config import apply_overrides, config_hash, to_dict
from harness.data import open_split
from harness.engine.core import (
    Cell,
    Rendered,
    ReproduceError,
    ReproduceOptions,
    ensure_data,
    find_release_checkpoint,
    job_resources,
)
from harness.errors import HarnessError
from harness.io import atomic_write_text
from harness.registry import get_config
from harness.report.recognition import check_formats, render_recognition, text_recognition
from harness.results import RECOGNITION_SCHEMA
from harness.run.feature_cache import frozen_backbone
from harness.run.identity import file_sha256, versions
from harness.run.launch import Job
from harness.run.probe import ProbeConfig, extract_pairs, train_probe, train_probe_on_pairs
from harness.run.seeding import derive_seed, seed_everything
from harness.run.train import WEIGHTS, load_trained
from harness.run.train_data import cached_view
from harness.tables import TABLES, Row, Table

PROBE_PREFIX = "probe."  # `--set probe.steps=2`: a ProbeConfig field
EXTRA = ("clazz", "bbox")


def probe_overrides(overrides) -> list[str]:
    """The `--set` overrides of a recognition table: only `probe.FIELD=VALUE` (the discovery models are fixed by
    their checkpoints)."""
    wrong = [o for o in overrides if not o.startswith(PROBE_PREFIX)]
    if wrong:
        raise HarnessError(f"--set {wrong[0]}: a recognition table takes only probe.FIELD=VALUE overrides (fields of "
                           f"ProbeConfig: {', '.join(f.name for f in dataclasses.fields(ProbeConfig))})")
    return [o[len(PROBE_PREFIX):] for o in overrides]


def discovery_table(table: Table) -> Table | None:
    return TABLES.get(table.probe.discovery) if table.probe.discovery else None


def discovery_config(table: Table, row: Row):
    """The config the row's discovery model was made with: the discovery table's cell config (its budget), or the
    method's own config for released checkpoints."""
    source = discovery_table(table)
    return source.cell_config(row) if source is not None else get_config(row.method, row.dataset)


def probe_config(table: Table, row: Row, overrides=()) -> ProbeConfig:
    """The authors' recipe, the table's changes, the command line's, with the discovery model's slot width."""
    config = ProbeConfig(slot_dim=discovery_config(table, row).slot_dim)
    return apply_overrides(config, [*table.probe.overrides, *probe_overrides(overrides)])


def discovery_weights(cell: Cell, results: Path, checkpoints: Path | None) -> Path:
    source = discovery_table(cell.table)
    if source is None:
        if checkpoints is None:
            raise ReproduceError(f"table {cell.table.name!r} probes released checkpoints: pass --checkpoints DIR "
                                 "(<label>/<seed>-<epoch>.pth)")
        return find_release_checkpoint(checkpoints, cell)
    weights = Cell(source, cell.row, cell.seed).run_dir(results) / WEIGHTS
    if not weights.is_file():
        raise ReproduceError(f"no trained model for {cell.name}: expected {weights}")
    return weights


def check_weights(cells: list[Cell], results: Path, checkpoints: Path | None) -> dict[str, Path]:
    """Every cell's discovery weights, or one error listing each missing one (and what makes them)."""
    found, problems = {}, []
    for cell in cells:
        try:
            found[cell.name] = discovery_weights(cell, results, checkpoints)
        except ReproduceError as e:
            problems.append(str(e))
    if problems:
        source = discovery_table(cells[0].table)
        how = (f"train them with `python -m harness reproduce --table {source.name} --results {results}`"
               if source is not None else "the authors publish them at "
                                          "https://github.com/Genera1Z/DIAS/releases/tag/archive-dias")
        head = f"table {cells[0].table.name!r} is missing {len(problems)} discovery model(s):"
        raise ReproduceError("\n".join([head, *(f"  {p}" for p in problems), how]))
    return found


def splits(table: Table, config, data_dir: Path, model, device: torch.device, results: Path):
    """(train, val) splits with classes and boxes; with "once" pairs and a discovery table that caches features,
    on its cached backbone features (the same files its training wrote)."""
    train_mode = table.probe.pairs == "every step"  # the authors' random train transform
    train = open_split(data_dir, config.dataset, "train", train=train_mode, extra=EXTRA)
    val = open_split(data_dir, config.dataset, "val", extra=EXTRA)
    source = discovery_table(table)
    if not train_mode and source is not None and source.cache_features:
        backbone = frozen_backbone(model)
        if backbone is not None:
            cache = results / source.name / "features"
            train, val = (cached_view(s, config, backbone, cache, device) for s in (train, val))
    return train, val


def run_cell(cell: Cell, *, data_dir: Path, weights: Path, results: Path, device: str, overrides=()) -> dict:
    """Probe one cell's discovery model and write its record."""
    apply_deterministic()
    table, device = cell.table, torch.device(device)
    config = discovery_config(table, cell.row)
    protocols = table.probe.protocols
    probe = dataclasses.replace(probe_config(table, cell.row, overrides), protocol=protocols[0])
    started = time.perf_counter()
    # the discovery model samples slot noise while pairs are extracted: seeded per cell, so that a cell's numbers do
    # not depend on which cells a worker process ran before it (the authors' evaluation is unseeded)
    seed_everything(derive_seed("recognition", cell.seed))
    model = load_trained(config, weights, device)
    train, val = splits(table, config, data_dir, model, device, results)
    if table.probe.pairs == "once":
        train_pairs = extract_pairs(model, train, protocols[:1], train_mode=True, batch_size=probe.batch_size,
                                    device=device, amp=config.eval.amp)[protocols[0]]
        val_pairs = extract_pairs(model, val, protocols, train_mode=False, batch_size=probe.batch_size,
                                  device=device, amp=config.eval.amp)
        _, run, seen = train_probe_on_pairs(train_pairs, val_pairs, probe, seed=cell.seed, device=device)
    else:
        result = train_probe(model, train, val, probe, seed=cell.seed, device=device, protocols=protocols)
        run, seen = result.record, result.train_pairs
    identity = {"table": table.name, "label": cell.row.label, "method": cell.row.method,
                "dataset": cell.row.dataset, "seed": cell.seed, "protocols": list(protocols),
                "train_protocol": protocols[0], "pairs": table.probe.pairs, "probe_config": to_dict(probe),
                "probe_config_hash": config_hash(probe),
                "discovery": {"path": str(weights), "sha256": file_sha256(weights), "config_hash": config_hash(config)},
                "data_card": {"train": train.card, "val": val.card}, "versions": versions(),
                "device": device_description(device), "hardware": hardware(device)}
    record = {"schema": RECOGNITION_SCHEMA, "identity": identity, "protocols": run["protocols"],
              "training": {"steps": run["steps"], "skipped_steps": run["skipped_steps"], **seen.describe()},
              "cost": {"seconds": time.perf_counter() - started}}
    atomic_write_text(cell.record_path(results), json.dumps(record, indent=1) + "\n")
    return record


class RecognitionTask:
    """harness.engine.core.Task for recognition tables."""

    def __init__(self, table: Table, options: ReproduceOptions):
        self.table, self.options = table, options
        self.weights: dict[str, Path] = {}

    def check(self, cells: list[Cell], missing: list[Cell]) -> None:
        check_formats(self.table, self.options.formats)
        for cell in cells:  # every override problem before anything runs
            probe_config(self.table, cell.row, self.options.overrides)

    def recipe_hash(self, cell: Cell) -> str:
        probe = probe_config(self.table, cell.row, self.options.overrides)
        return config_hash(dataclasses.replace(probe, protocol=self.table.probe.protocols[0]))

    def recorded_hash(self, record: dict) -> str:
        return record["identity"]["probe_config_hash"]

    def data(self, missing: list[Cell]) -> Path | None:
        o = self.options
        if not missing:
            return o.data_dir
        source = discovery_table(self.table)
        if source is None:  # real data: the files first, as the discovery tables list them, then the checkpoints
            data_dir = ensure_data(self.table, o.data_dir, need_train=True)
            self.weights = check_weights(missing, o.results, o.checkpoints)
        else:  # the discovery table's models first: without them its data says nothing
            self.weights = check_weights(missing, o.results, o.checkpoints)
            data_dir = ensure_data(source, o.data_dir, need_train=True)
        return data_dir

    def prerequisites(self, missing: list[Cell], data_dir: Path | None) -> list[Job]:
        return []

    def job(self, cell: Cell, data_dir: Path | None) -> Job:
        o = self.options
        run = functools.partial(run_cell, data_dir=data_dir, weights=self.weights[cell.name], results=o.results,
                                device=o.device, overrides=o.overrides)
        return Job(cell.name, run, (cell,), job_resources(self.table, o, trains=False))

    def cost(self, cell: Cell) -> tuple:
        return ()

    def progress(self, record: dict) -> str:
        ours = record["protocols"][self.table.probe.protocols[0]]["probe"]
        return (f"top1 {100 * ours['top1']:.1f}  top3 {100 * ours['top3']:.1f}  box IoU {100 * ours['box_iou']:.1f}  "
                f"matched {ours['matched']}")

    def render(self) -> Rendered:
        o = self.options
        result = render_recognition(self.table, o.results, o.out_dir, published=bool(self.table.published),
                                    formats=o.formats)
        return Rendered(text_recognition(result.content), result.paths)
