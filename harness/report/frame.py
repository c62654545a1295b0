"""Result records → one tidy frame (one row per source × cell × metric) → seed means and sample stds.

A cell is one (row, seed) of a table, a row one method on one dataset under a label. The frame is the single
input of every output (xlsx, markdown, HTML, drift check): values stay in 0–1 as the records hold them; ×100
happens only for display, as in the authors' xlsx.

A table fixes the protocol, the data (data-card fingerprint per dataset) and the budget (steps, batch size)
of its cells. `check_uniform` refuses a frame whose cells disagree on any of them, naming the cells and the
field, because a mean over such cells (or a comparison between them) would not mean what the table says.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.data.card import data_card_fingerprint
from harness.errors import HarnessError
from harness.metrics.aggregate import excel_text, seed_mean_std
from harness.results import METRICS, SCHEMA, ResultError, validate
from harness.tables import Row, Table

OURS = "ours"
COLUMNS = ["source", "method", "dataset", "label", "variant", "seed", "metric", "value", "n_valid", "protocol",
           "config_hash", "data_card", "steps", "batch_size", "checkpoint", "record", "origin", "published_table",
           "stated_mean", "stated_std"]
SUMMARY_KEYS = ["source", "label", "method", "dataset", "variant", "protocol", "metric"]


class MixedCellsError(HarnessError):
    """Cells of one table disagree on what the table fixes (protocol, data, budget, a row's config)."""


@dataclass(frozen=True)
class Evaluated:
    """One result record found for a table: where it lies, what it holds, which row of the table it fills."""

    path: Path
    record: dict
    row: Row

    @property
    def seed(self) -> int:
        return int(self.record["identity"]["seed"])

    @property
    def name(self) -> str:
        return f"{self.row.label}-{self.seed}"


def find_records(results_dir: str | Path, table: Table) -> list[Evaluated]:
    """Every result record under `results_dir` (recursively) that fills a row of `table`.

    Other JSON files (published numbers, golden values, logs) are skipped; records tagged with another table
    (`identity.table`) or of a method × dataset the table does not hold are not this table's. A record is
    matched to its row by `identity.label` when it has one, else by method, dataset and variant.
    """
    found: list[Evaluated] = []
    seen: dict[tuple, Path] = {}
    for path in sorted(Path(results_dir).rglob("*.json")):
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ResultError(f"{path}: not valid JSON ({e})") from None
        schema = record.get("schema") if isinstance(record, dict) else None
        if not (isinstance(schema, str) and schema.startswith(SCHEMA.split("/")[0] + "/")):
            continue  # not a result record
        validate(record, str(path))  # a record of another schema version is an error, not skipped
        row = _row_of(record["identity"], table, path)
        if row is None:
            continue
        item = Evaluated(path, record, row)
        key = (row.label, item.seed, record["identity"]["protocol"])
        if key in seen:
            raise ResultError(f"two records for cell {item.name} (protocol {key[2]!r}): {seen[key]} and {path}; "
                              "keep one")
        seen[key] = path
        found.append(item)
    return found


def _row_of(identity: dict, table: Table, path: Path) -> Row | None:
    if identity.get("table", table.name) != table.name:
        return None
    label = identity.get("label")
    if label is not None:
        row = next((r for r in table.rows if r.label == label), None)
        if row is None:
            if "table" in identity:
                raise ResultError(f"{path}: label {label!r} is not a row of table {table.name!r}")
            return None
        if (row.method, row.dataset) != (identity["method"], identity["dataset"]):
            raise ResultError(f"{path}: row {label!r} of table {table.name!r} is {row.method}/{row.dataset}, "
                              f"the record is {identity['method']}/{identity['dataset']}")
        return row
    variant = identity.get("variant", "trained")
    rows = [r for r in table.rows if r.run is None  # a record without a label is of the run's own row
            and (r.method, r.dataset, r.variant) == (identity["method"], identity["dataset"], variant)]
    if len(rows) > 1:
        raise ResultError(f"{path}: {identity['method']}/{identity['dataset']} fills rows "
                          f"{', '.join(r.label for r in rows)} of table {table.name!r}; the record needs a label")
    return rows[0] if rows else None


def tidy_frame(evaluated: list[Evaluated]) -> pd.DataFrame:
    """Our records as tidy rows (source "ours"), one per cell × metric."""
    rows = []
    for item in evaluated:
        identity = item.record["identity"]
        common = {
            "source": OURS, "method": item.row.method, "dataset": item.row.dataset, "label": item.row.label,
            "variant": item.row.variant, "seed": item.seed, "protocol": identity["protocol"],
            "config_hash": identity["config_hash"], "data_card": data_card_fingerprint(identity["data_card"]),
            "steps": identity.get("steps"), "batch_size": identity.get("batch_size"),
            "checkpoint": _checkpoint_name(identity["checkpoint"]), "record": str(item.path),
        }
        for metric in METRICS:
            value = item.record["means"][metric]
            rows.append({**common, "metric": metric, "value": math.nan if value is None else float(value),
                         "n_valid": item.record["n_valid"].get(metric)})
    return conform(pd.DataFrame(rows))


def conform(frame: pd.DataFrame) -> pd.DataFrame:
    """Give any part of the tidy frame (ours, published, empty) the same columns and dtypes."""
    frame = frame.reindex(columns=COLUMNS)
    for column in ("seed", "n_valid", "steps", "batch_size"):
        frame[column] = pd.array(frame[column].tolist(), dtype="Int64")
    for column in ("value", "stated_mean", "stated_std"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return frame


def _checkpoint_name(checkpoint) -> str | None:
    if isinstance(checkpoint, dict):
        return checkpoint.get("path") or checkpoint.get("kind")
    return None if checkpoint is None else str(checkpoint)


def check_uniform(frame: pd.DataFrame, table: Table, allow_mixed: bool = False) -> list[str]:
    """The ways our cells disagree with what `table` fixes; raises MixedCellsError unless `allow_mixed`.

    protocol: every cell is evaluated under the table's protocol. data_card: all cells on one dataset read the
    same split. steps / batch_size: with a table budget every trained cell has exactly it; without one (each
    method's own recipe) the seeds of a row agree. Cells that were not trained (steps 0: reference rows,
    untrained initialisations) have no budget to compare. config_hash: the seeds of a row share one recipe (a
    record kept from before a code or override change would otherwise be averaged with the new ones).
    """
    cells = frame[frame["source"] == OURS].drop_duplicates(["label", "seed", "protocol"])
    issues = []
    wrong = cells[cells["protocol"] != table.protocol]
    if len(wrong):
        issues.append(f"protocol: table {table.name!r} fixes {table.protocol!r}; "
                      + _by_value(wrong, "protocol"))
    for dataset, group in cells.groupby("dataset", sort=False):
        if group["data_card"].nunique() > 1:
            issues.append(f"data_card: cells on {dataset} read different splits; " + _by_value(group, "data_card"))
    for label, group in cells.groupby("label", sort=False):
        if group["config_hash"].nunique() > 1:
            issues.append(f"config_hash: the seeds of {label} were made with different configs; "
                          + _by_value(group, "config_hash"))
    trained = cells[cells["steps"].fillna(0) > 0]
    for field, fixed in (("steps", table.budget.steps), ("batch_size", table.budget.batch_size)):
        if fixed is not None:
            wrong = trained[trained[field].ne(fixed).fillna(True)]
            if len(wrong):
                issues.append(f"{field}: table {table.name!r} fixes {fixed}; " + _by_value(wrong, field))
            continue
        for label, group in trained.groupby("label", sort=False):
            if group[field].nunique(dropna=False) > 1:
                issues.append(f"{field}: the seeds of {label} differ; " + _by_value(group, field))
    if issues and not allow_mixed:
        raise MixedCellsError(f"table {table.name!r} refuses to aggregate mixed cells — " + " | ".join(issues)
                              + " (allow_mixed=True / --allow-mixed aggregates them anyway)")
    return issues


def _by_value(cells: pd.DataFrame, field: str) -> str:
    parts = []
    for value, group in cells.groupby(field, sort=True, dropna=False):
        names = ", ".join(f"{r.label}-{r.seed}" for r in group.itertuples())
        parts.append(f"{field}={value}: {names}")
    return "; ".join(parts)


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """Seed mean and sample std in percent (Excel AVERAGE / STDEV ×100) per source × row × protocol × metric.

    Groups with per-seed values are aggregated here (published ones too, as the authors' xlsx does); a
    published group without per-seed values keeps its stated mean and std. Seeds whose value is undefined
    (no valid image) are left out and `n_seeds` says how many remain; one seed has no std (NaN). `text` is
    the display "mean±std" (one decimal, Excel's TEXT rounding).
    """
    out = []
    for key, group in frame.groupby(SUMMARY_KEYS, sort=False, dropna=False):
        seeded = group[group["seed"].notna() & group["value"].notna()]
        if len(seeded):
            seeds = tuple(int(s) for s in seeded["seed"])
            mean, std = seed_mean_std(seeded["value"].tolist())
        elif group["seed"].isna().all():
            seeds, mean, std = (), group["stated_mean"].iloc[0] * 100, group["stated_std"].iloc[0] * 100
        else:
            seeds, mean, std = (), math.nan, math.nan
        out.append({**dict(zip(SUMMARY_KEYS, key)), "n_seeds": len(seeds), "seeds": seeds, "mean_pct": mean,
                    "std_pct": std})
    summary = pd.DataFrame(out, columns=[*SUMMARY_KEYS, "n_seeds", "seeds", "mean_pct", "std_pct"])
    summary["mean_pct"] = summary["mean_pct"].astype(float)
    summary["std_pct"] = summary["std_pct"].astype(float)
    summary["text"] = [mean_std_text(m, s) for m, s in zip(summary["mean_pct"], summary["std_pct"])]
    return summary


def display(value: float, decimals: int = 1) -> str:
    """A percentage as the authors show it (Excel TEXT rounding); "—" where there is none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    text = excel_text(float(value), decimals)
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text  # "-0.0" reads as a loss: 0.0


def mean_std_text(mean_pct: float, std_pct: float) -> str:
    return f"{display(mean_pct)}±{display(std_pct)}"


def per_image_frame(evaluated: list[Evaluated]) -> pd.DataFrame:
    """Per-image values of our records, valid images only: (label, method, dataset, seed, protocol, key, metric,
    value) — what paired tests compare image by image."""
    parts = []
    for item in evaluated:
        per_image = item.record["per_image"]
        for metric in METRICS:
            part = pd.DataFrame({"key": per_image["keys"], "value": per_image[metric]})
            part = part[part["value"].notna()]  # null = not counted by the record's protocol
            parts.append(part.assign(label=item.row.label, method=item.row.method, dataset=item.row.dataset,
                                     seed=item.seed, protocol=item.record["identity"]["protocol"], metric=metric))
    columns = ["label", "method", "dataset", "seed", "protocol", "key", "metric", "value"]
    if not parts:
        return pd.DataFrame(columns=columns)
    frame = pd.concat(parts, ignore_index=True)[columns]
    frame["value"] = frame["value"].astype(float)
    return frame
