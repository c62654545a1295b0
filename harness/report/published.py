"""The authors' published numbers (results/published/published.json, docs/reference.md#published-numbers) as rows of the
tidy frame.

The JSON is `{table: {method: {dataset: {metric: {mean, std, per_seed|null, source}}}}}` in percent, each table
with a `_meta` entry. A harness table names its published sources in order (`Table.published`); each row is
matched, by method name ignoring case ("dias" ↔ "DIAS"), to the first source that has that method and dataset. Values
enter the frame in 0–1 like ours; where the authors give per-seed values the frame holds those (the means/stds are then
recomputed, as their xlsx does), otherwise one row per metric with the stated mean and std.

A source's `_meta.pre_v3_datasets` lists the data sets whose numbers it made under the protocol before v3 (COCO's void
and VOC's boundary pixels merged into the background; docs/reference.md#evaluation-protocol), limited to the methods
in `_meta.pre_v3_methods` where a source mixes protocols: the per-cell marks of the reports come from there.
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


def published_tables(table: Table, path: str | Path = PUBLISHED_FILE) -> dict[str, dict]:
    """The published entries `table.published` names, in order: {key: {method: {dataset: {metric: cell}}, "_meta"}}."""
    if not table.published:
        raise PublishedError(f"table {table.name!r} has no published numbers to show")
    data = load_published(path)
    missing = [key for key in table.published if key not in data]
    if missing:
        raise PublishedError(f"{path}: no published table {', '.join(map(repr, missing))} (table {table.name!r} "
                             f"names it); it has: {', '.join(sorted(data))}")
    entries = {key: data[key] for key in table.published}
    for key, entry in entries.items():
        _check_pre_v3(entry.get("_meta", {}), f"{path}: {key}/_meta")
    return entries


def _check_pre_v3(meta: dict, where: str) -> None:
    for field in ("pre_v3_datasets", "pre_v3_methods"):
        value = meta.get(field, [])
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise PublishedError(f"{where}: {field} must be a list of names, got {value!r}")


def is_pre_v3(meta: dict, method: str, dataset: str) -> bool:
    """Whether the source described by `meta` made its number of `method` on `dataset` under the pre-v3 protocol
    (methods compared ignoring case, as rows are matched)."""
    methods = meta.get("pre_v3_methods")
    return dataset in meta.get("pre_v3_datasets", []) and \
        (methods is None or method.casefold() in {m.casefold() for m in methods})


def pre_v3_labels(frame: pd.DataFrame, meta: dict[str, dict]) -> dict[str, str]:
    """{row label: published source key} of the published rows of `frame` made under the pre-v3 protocol; `meta`:
    each source's `_meta` (published_tables)."""
    rows = frame[frame["source"] == SOURCE].drop_duplicates("label")
    return {r.label: r.published_table for r in rows.itertuples()
            if is_pre_v3(meta.get(r.published_table, {}), r.method, r.dataset)}


def published_frame(table: Table, path: str | Path = PUBLISHED_FILE) -> pd.DataFrame:
    """Tidy rows (source "published") for every row of `table` a published source covers."""
    entries = published_tables(table, path)
    rows = []
    for row in table.rows:
        if row.variant != "trained" or row.run is not None:  # published beside the row that owns the run
            continue
        found = [(key, entry, name) for key, entry in entries.items() for name in entry
                 if name != "_meta" and name.casefold() == row.method.casefold() and row.dataset in entry[name]]
        if not found:
            continue
        key, entry, name = found[0]
        meta = entry.get("_meta", {})
        for metric in METRICS:
            where = f"{path}: {key}/{name}/{row.dataset}/{metric}"
            cell = entry[name][row.dataset].get(metric)
            if not isinstance(cell, dict) or "mean" not in cell or "std" not in cell:
                raise PublishedError(f"{where}: expected {{mean, std, per_seed, source}}")
            common = {"source": SOURCE, "method": row.method, "dataset": row.dataset, "label": row.label,
                      "metric": metric, "protocol": meta.get("protocol"), "origin": cell.get("source"),
                      "published_table": key, "stated_mean": cell["mean"] / 100, "stated_std": _optional(cell["std"])}
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


def released_checkpoints(meta_by_source: dict[str, dict]) -> list[dict]:
    """Which checkpoint the authors released per method, dataset and seed, and what is known of the rule that chose
    it: the last epoch of training, or an earlier one (then a maximum over saved validations, and the validation split
    is the reported one: docs/reference.md#checkpoints). From each source's `_meta.released` / `last_epoch`."""
    rows = []
    for source, meta in meta_by_source.items():
        last = meta.get("last_epoch", {})
        for method, datasets in meta.get("released", {}).items():
            for dataset, epochs in datasets.items():
                seeds = [{"seed": seed, "epoch": epoch, "last": epoch == last.get(dataset)}
                         for seed, epoch in sorted(epochs.items())]
                rows.append({"source": source, "method": method, "dataset": dataset, "last_epoch": last.get(dataset),
                             "seeds": seeds, "not_last": sum(not s["last"] for s in seeds)})
    return rows
