"""Drift check: a fresh aggregation of a table against committed golden values (results/golden/<file>.json).

A golden file holds, per (label, dataset, metric) of the table under its protocol, the seed mean and sample
std in percent, plus the command that regenerates the results:

    {"schema": "harness.golden/1", "table": "mini", "protocol": "dias-v3",
     "command": "python -m harness reproduce --table mini", "written_by": "...",
     "values": [{"label", "dataset", "metric", "mean", "std", "n_seeds", "seeds"}]}

A metric has drifted when |new − old| > tolerance, tolerance = `tol` if given else max(0.5 point, 2 × the
golden seed std) — the committed run's own seed spread sets how far a fresh run may wander. A cell present
on one side only is drift too: a vanished or an unexpected number is a change nobody asked for.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.errors import HarnessError
from harness.io import atomic_write_text
from harness.report.content import load_frame
from harness.report.frame import OURS, summarise
from harness.tables import Table

SCHEMA = "harness.golden/1"
MIN_TOLERANCE = 0.5  # points
STD_FACTOR = 2.0


class GoldenError(HarnessError):
    pass


@dataclass(frozen=True)
class Drift:
    label: str
    dataset: str
    metric: str
    old: float | None  # percent; None: no value in the golden file
    new: float | None  # percent; None: no value in the fresh results
    tolerance: float
    reason: str  # "moved", "missing from the fresh results", "not in the golden file", "undefined on one side"

    @property
    def delta(self) -> float | None:
        return None if self.old is None or self.new is None else self.new - self.old

    def __str__(self) -> str:
        name = f"{self.label} {self.metric}"
        if self.reason == "moved":
            return (f"{name}: old {self.old:.3f} new {self.new:.3f} delta {self.delta:+.3f} "
                    f"tolerance {self.tolerance:.3f}")
        return f"{name}: {self.reason} (old {_fmt(self.old)}, new {_fmt(self.new)})"


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def fresh_values(table: Table, results_dir, allow_mixed: bool = False) -> pd.DataFrame:
    """The table's seed means/stds (percent) from the records under `results_dir`, under the table's protocol."""
    frame, _, _ = load_frame(table, results_dir, False, None, allow_mixed)
    if frame.empty:
        raise GoldenError(f"table {table.name!r}: no result records under {results_dir}")
    summary = summarise(frame)
    summary = summary[(summary["source"] == OURS) & (summary["protocol"] == table.protocol)]
    return summary[["label", "dataset", "metric", "mean_pct", "std_pct", "n_seeds", "seeds"]].reset_index(drop=True)


def golden_document(table: Table, values: pd.DataFrame, command: str, written_by: str) -> dict:
    return {
        "schema": SCHEMA, "table": table.name, "protocol": table.protocol, "command": command,
        "written_by": written_by, "units": "percent; mean and sample std (ddof=1) over seeds",
        "values": [{"label": v.label, "dataset": v.dataset, "metric": v.metric, "mean": _number(v.mean_pct),
                    "std": _number(v.std_pct), "n_seeds": int(v.n_seeds), "seeds": [int(s) for s in v.seeds]}
                   for v in values.itertuples()],
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
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise GoldenError(f"{path}: not a golden file (schema is not {SCHEMA!r})")
    if document.get("table") != table.name:
        raise GoldenError(f"{path}: golden values of table {document.get('table')!r}, not {table.name!r}")
    if document.get("protocol") != table.protocol:
        raise GoldenError(f"{path}: golden values under protocol {document.get('protocol')!r}; table "
                          f"{table.name!r} fixes {table.protocol!r}")
    for i, v in enumerate(document.get("values", [])):
        missing = [k for k in ("label", "dataset", "metric", "mean", "std") if k not in v]
        if missing:
            raise GoldenError(f"{path}: values[{i}] lacks {', '.join(missing)}")
    return document


def tolerance(golden_std: float | None, tol: float | None = None) -> float:
    if tol is not None:
        return tol
    if golden_std is None or math.isnan(golden_std):
        return MIN_TOLERANCE
    return max(MIN_TOLERANCE, STD_FACTOR * golden_std)


def compare(golden: dict, fresh: pd.DataFrame, tol: float | None = None) -> list[Drift]:
    """Every drifted metric, golden order first, then cells only the fresh results have. A metric undefined
    on both sides (no valid image) has not drifted."""
    new = {(v.label, v.dataset, v.metric): _number(v.mean_pct) for v in fresh.itertuples()}
    drifts = []
    for v in golden["values"]:
        key = (v["label"], v["dataset"], v["metric"])
        limit = tolerance(v["std"], tol)
        if key not in new:
            drifts.append(Drift(*key, old=v["mean"], new=None, tolerance=limit,
                                reason="missing from the fresh results"))
            continue
        value = new.pop(key)
        if v["mean"] is None and value is None:
            continue
        if v["mean"] is None or value is None:
            drifts.append(Drift(*key, old=v["mean"], new=value, tolerance=limit, reason="undefined on one side"))
        elif abs(value - v["mean"]) > limit:
            drifts.append(Drift(*key, old=v["mean"], new=value, tolerance=limit, reason="moved"))
    for key, value in new.items():
        drifts.append(Drift(*key, old=None, new=value, tolerance=tolerance(None, tol), reason="not in the golden file"))
    return drifts


def _number(value) -> float | None:
    return None if value is None or math.isnan(value) else float(value)
