"""The authors' published numbers (results/published/published.json, SPEC §5) as rows of the tidy frame.

The JSON is `{table: {method: {dataset: {metric: {mean, std, per_seed|null, source}}}}}` in percent, each table
with a `_meta` entry. A harness table names its published table (`Table.published`); its rows are matched to
the published methods by name, ignoring case ("dias" ↔ "DIAS"). Values enter the frame in 0–1 like ours;
where the authors give per-seed values the frame holds those (the means/stds are then recomputed, as their
xlsx does), otherwise one row per metric with the stated mean and std.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from harness.errors import HarnessError
from harness.results import METRICS
from harness.tables import Table

PUBLISHED_FILE = Path(__file__).resolve().parents[2] / "results" / "published" / "published.json"
SOURCE = "published"


class PublishedError(HarnessError):
    pass


def load_published(path: str | Path = PUBLISHED_FILE) -> dict:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise PublishedError(f"{path}: no such published-numbers file") from None
    except json.JSONDecodeError as e:
        raise PublishedError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise PublishedError(f"{path}: expected an object of published tables")
    return data


def published_table(table: Table, path: str | Path = PUBLISHED_FILE) -> dict:
    """The published entry `table.published` names ({method: {dataset: {metric: cell}}, "_meta": {...}})."""
    if table.published is None:
        raise PublishedError(f"table {table.name!r} has no published numbers to show")
    data = load_published(path)
    if table.published not in data:
        raise PublishedError(f"{path}: no published table {table.published!r} (table {table.name!r} names it); "
                             f"it has: {', '.join(sorted(data))}")
    return data[table.published]


def published_frame(table: Table, path: str | Path = PUBLISHED_FILE) -> pd.DataFrame:
    """Tidy rows (source "published") for every row of `table` the published table covers."""
    entry = published_table(table, path)
    meta = entry.get("_meta", {})
    by_name = {name.casefold(): name for name in entry if name != "_meta"}
    rows = []
    for row in table.rows:
        name = by_name.get(row.method.casefold())
        if name is None or row.variant != "trained" or row.dataset not in entry[name]:
            continue
        for metric in METRICS:
            where = f"{path}: {table.published}/{name}/{row.dataset}/{metric}"
            cell = entry[name][row.dataset].get(metric)
            if not isinstance(cell, dict) or "mean" not in cell or "std" not in cell:
                raise PublishedError(f"{where}: expected {{mean, std, per_seed, source}}")
            common = {"source": SOURCE, "method": row.method, "dataset": row.dataset, "label": row.label,
                      "metric": metric, "protocol": meta.get("protocol"), "origin": cell.get("source"),
                      "stated_mean": cell["mean"] / 100, "stated_std": _optional(cell["std"])}
            per_seed = cell.get("per_seed") or {}
            for seed, value in per_seed.items():
                if not str(seed).isdigit():
                    raise PublishedError(f"{where}: per_seed key {seed!r} is not a seed")
                rows.append({**common, "seed": int(seed), "value": value / 100})
            if not per_seed:
                rows.append({**common, "seed": None, "value": cell["mean"] / 100})
    return pd.DataFrame(rows)


def _optional(std):
    return None if std is None else std / 100
