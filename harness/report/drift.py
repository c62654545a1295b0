"""Drift check: a fresh run of a table against committed golden values (results/golden/<file>.json), value by value.

With fixed seeds a table's value for one cell (row × seed) and metric is a fact, not a sample: the golden file holds
each of them, and a fresh value may differ only by what another machine's kernels and thread counts make of the same
computation. That spread is measured, not assumed: the table declares it (`Table.drift_tolerance`, points per value;
mini-ci computes in float64, where every value repeats to the last digit across the kernel libraries, ISAs and thread
counts we can vary, docs/experiments.md#2026-12-06-the-same-answer-on-every-cpu), and the golden file records the
tolerance it was written with. The seed spread says nothing about this and is not used.

    {"schema": "harness.golden/2", "table", "protocol", "command", "written_by", "units",
     "tolerance": {metric: points}, "hardware": [the hardware of the records it was written from],
     "values": [{"label", "dataset", "metric", "seed", "value"}]}

A value has drifted when |new − old| > the metric's tolerance; a value on one side only has drifted too, except for
rows the golden file has never seen (a method added since): they are reported as new and pass until the file is
regenerated with its recorded command. Both sides' hardware is reported, so that a difference within tolerance reads
as hardware and one beyond it as a change of code, data or recipe.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness.compute import describe_hardware, same_kernels
from harness.errors import HarnessError
from harness.io import atomic_write_text
from harness.metrics.protocols import METRICS
from harness.report.content import load_frame
from harness.report.frame import OURS
from harness.tables import Table

SCHEMA = "harness.golden/2"
KEY = ("label", "dataset", "metric", "seed")


class GoldenError(HarnessError):
    pass


@dataclass(frozen=True)
class Drift:
    label: str
    dataset: str
    metric: str
    seed: int
    old: float | None  # percent; None: no value in the golden file
    new: float | None  # percent; None: no value in the fresh results
    tolerance: float
    reason: str  # "moved", "missing from the fresh results", "not in the golden file", "undefined on one side"

    @property
    def delta(self) -> float | None:
        return None if self.old is None or self.new is None else self.new - self.old

    def __str__(self) -> str:
        name = f"{self.label} seed {self.seed} {self.metric}"
        if self.reason == "moved":
            return (f"{name}: old {self.old:.3f} new {self.new:.3f} delta {self.delta:+.3f} "
                    f"tolerance {self.tolerance:.3f}")
        return f"{name}: {self.reason} (old {_fmt(self.old)}, new {_fmt(self.new)})"


@dataclass
class Comparison:
    """The outcome of `compare`: what fails the check (`drifts`), what does not (`new_labels`: rows the golden file
    never had; `within`: values that differ by no more than the tolerance), and the two sides' hardware."""

    drifts: list[Drift]
    new_labels: list[str]
    within: list[Drift]
    compared: int
    tolerance: dict[str, float]
    golden_hardware: list[dict] = field(default_factory=list)
    fresh_hardware: list[dict] = field(default_factory=list)

    @property
    def same_hardware(self) -> bool:
        return (len(self.golden_hardware) == len(self.fresh_hardware) == 1
                and same_kernels(self.golden_hardware[0], self.fresh_hardware[0]))


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


@dataclass
class FreshValues:
    values: pd.DataFrame  # label, dataset, metric, seed, value (percent)
    hardware: list[dict]


def fresh_values(table: Table, results_dir, allow_mixed: bool = False) -> FreshValues:
    """The table's value per cell and metric (percent) from the records under `results_dir`, under the table's
    protocol, and the distinct hardware that computed them."""
    frame, evaluated, _ = load_frame(table, results_dir, False, None, allow_mixed)
    if frame.empty:
        raise GoldenError(f"table {table.name!r}: no result records under {results_dir}")
    ours = frame[(frame["source"] == OURS) & (frame["protocol"] == table.protocol)]
    values = pd.DataFrame({"label": ours["label"], "dataset": ours["dataset"], "metric": ours["metric"],
                           "seed": ours["seed"].astype(int), "value": ours["value"] * 100}).reset_index(drop=True)
    return FreshValues(values, _distinct([e.record["identity"].get("hardware") for e in evaluated]))


def _distinct(items: list) -> list:
    out = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def tolerances(table: Table, tol: float | None) -> dict[str, float]:
    """Points per value and metric: `tol` if given, else the table's measured `drift_tolerance`."""
    points = tol if tol is not None else table.drift_tolerance
    if points is None:
        raise GoldenError(f"table {table.name!r} declares no drift tolerance: give --tol POINTS, the spread its values "
                          "show across kernel libraries and thread counts (measure it: run the table under "
                          "HARNESS_CPU_LINEAR=blas and =onednn and compare)")
    return dict.fromkeys(METRICS, float(points))


def golden_document(table: Table, fresh: FreshValues, tolerance: dict[str, float], command: str,
                    written_by: str) -> dict:
    return {
        "schema": SCHEMA, "table": table.name, "protocol": table.protocol, "command": command,
        "written_by": written_by, "units": "percent; one value per cell (row × seed) and metric",
        "tolerance": tolerance, "hardware": fresh.hardware,
        "values": [{"label": v.label, "dataset": v.dataset, "metric": v.metric, "seed": int(v.seed),
                    "value": _number(v.value)} for v in fresh.values.itertuples()],
    }


def write_golden(path: str | Path, document: dict) -> None:
    atomic_write_text(path, json.dumps(document, indent=1, allow_nan=False) + "\n")


def read_golden(path: str | Path, table: Table) -> dict:
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise GoldenError(f"{path}: no such golden file (write one with `python -m harness check-drift "
                          f"--table {table.name} --write-golden {path}`)") from None
    except json.JSONDecodeError as e:
        raise GoldenError(f"{path}: not valid JSON ({e})") from None
    schema = document.get("schema") if isinstance(document, dict) else None
    if schema != SCHEMA:
        old = f" (it has {schema!r}: seed means, from an older harness)" if schema == "harness.golden/1" else ""
        raise GoldenError(f"{path}: not a golden file of schema {SCHEMA!r}{old}; regenerate it with the command it "
                          "records, then `python -m harness check-drift --write-golden`")
    if document.get("table") != table.name:
        raise GoldenError(f"{path}: golden values of table {document.get('table')!r}, not {table.name!r}")
    if document.get("protocol") != table.protocol:
        raise GoldenError(f"{path}: golden values under protocol {document.get('protocol')!r}; table "
                          f"{table.name!r} fixes {table.protocol!r}")
    missing_tolerance = [m for m in METRICS if m not in document.get("tolerance", {})]
    if missing_tolerance:
        raise GoldenError(f"{path}: tolerance lacks {', '.join(missing_tolerance)}")
    for i, v in enumerate(document.get("values", [])):
        missing = [k for k in (*KEY, "value") if k not in v]
        if missing:
            raise GoldenError(f"{path}: values[{i}] lacks {', '.join(missing)}")
    return document


def compare(golden: dict, fresh: FreshValues, tol: float | None = None) -> Comparison:
    """Every value that drifted (golden order first, then values only the fresh results have), the rows new to the
    golden file, and the values that differ within tolerance. A metric undefined on both sides (no valid image) has
    not drifted."""
    limits = dict.fromkeys(METRICS, tol) if tol is not None else golden["tolerance"]
    new = {(v.label, v.dataset, v.metric, int(v.seed)): _number(v.value) for v in fresh.values.itertuples()}
    known_labels = {v["label"] for v in golden["values"]}
    drifts, within = [], []
    for v in golden["values"]:
        key = (v["label"], v["dataset"], v["metric"], int(v["seed"]))
        limit = float(limits[v["metric"]])
        old = v["value"]
        if key not in new:
            drifts.append(Drift(*key, old=old, new=None, tolerance=limit, reason="missing from the fresh results"))
            continue
        value = new.pop(key)
        if old is None and value is None:
            continue
        if old is None or value is None:
            drifts.append(Drift(*key, old=old, new=value, tolerance=limit, reason="undefined on one side"))
        elif abs(value - old) > limit:
            drifts.append(Drift(*key, old=old, new=value, tolerance=limit, reason="moved"))
        elif value != old:
            within.append(Drift(*key, old=old, new=value, tolerance=limit, reason="within tolerance"))
    new_labels = []
    for key, value in new.items():
        if key[0] not in known_labels:
            if key[0] not in new_labels:
                new_labels.append(key[0])
            continue
        drifts.append(Drift(*key, old=None, new=value, tolerance=float(limits[key[2]]),
                            reason="not in the golden file"))
    return Comparison(drifts, new_labels, within, compared=len(golden["values"]),
                      tolerance={m: float(limits[m]) for m in METRICS}, golden_hardware=golden.get("hardware", []),
                      fresh_hardware=fresh.hardware)


def report_lines(comparison: Comparison, table: Table, against: str, command: str) -> list[str]:
    """What `check-drift` prints: the hardware of both sides, the verdict, every drifted value, the new rows."""
    c = comparison
    tolerance = ", ".join(f"{m} {t:g}" for m, t in c.tolerance.items())
    lines = [f"table {table.name} against {against} ({c.compared} values; tolerance per value in points: {tolerance})"]
    lines += [f"  golden values computed on: {describe_hardware(h)}" for h in c.golden_hardware or [None]]
    lines += [f"  fresh values computed on:  {describe_hardware(h)}" for h in c.fresh_hardware or [None]]
    if not c.same_hardware:
        lines.append("  the two sides ran on different hardware or kernels: differences up to the tolerance are what "
                     "kernels and thread counts can make of the same computation; a drifted value is beyond that")
    if c.within:
        largest = max(c.within, key=lambda d: abs(d.delta))
        lines.append(f"{len(c.within)} value(s) differ within tolerance (largest: {largest}): hardware, not code")
    if c.drifts:
        lines.append(f"{len(c.drifts)} value(s) drifted beyond tolerance — a change of code, data or recipe, not of "
                     "hardware:")
        lines += [f"  {d}" for d in c.drifts]
    else:
        identical = c.compared - len(c.within)
        lines.append(f"table {table.name}: {c.compared} values within tolerance of {against} "
                     f"({identical} identical)")
    if c.new_labels:
        lines.append(f"new rows, not in the golden file (not checked; they join it when it is regenerated: {command}, "
                     f"then check-drift --write-golden): {', '.join(c.new_labels)}")
    return lines


def _number(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
