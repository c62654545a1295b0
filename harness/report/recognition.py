"""Reports of recognition tables (`Table.task == "recognition"`): their records (harness.engine.recognition) and
the published probe numbers → what the report says (`RecognitionContent`) → reports/acc-<T>.{xlsx,md,html} and the
printed text.

Per protocol of the table's probe recipe, the rows in table order: each discovery model's probe, then beside it
the trivial predictor of that probe's own training pairs (majority class, mean box) scored on the same val
pairs; under the table's protocol the published rows follow (a published method with no row of ours keeps its
own name). top-1 / top-3 / box IoU are percent, `matched` a count of kept pairs; each is the mean ± sample std over
seeds (Excel AVERAGE / STDEV, one decimal with Excel's rounding; counts without decimals).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from openpyxl import Workbook

from harness.io import atomic_write_bytes
from harness.metrics.aggregate import excel_text
from harness.metrics.recognition import RECOGNITION_METRICS, RECOGNITION_PROTOCOLS
from harness.report.content import ReportError
from harness.report.published import PUBLISHED_FILE, PublishedError, published_tables
from harness.report.xlsx import PERCENT, SHEET, save, write_eval_multi, write_frame
from harness.results import RECOGNITION_SCHEMA
from harness.tables import Table

METRIC_TITLES = {"top1": "top-1", "top3": "top-3", "box_iou": "box IoU", "matched": "matched"}
FRACTIONS = ("top1", "top3", "box_iou")  # 0–1 in records, percent in reports; `matched` is a count
PROBE, TRIVIAL, PUBLISHED = "probe", "trivial", "published"
TRIVIAL_SUFFIX = " · majority class / mean box"
UNITS = {**dict.fromkeys(FRACTIONS, PERCENT), "matched": "count"}
PER_SEED_UNITS = "; ".join(f"{m}: {unit}" for m, unit in UNITS.items())
FORMATS = ("xlsx", "md", "html")  # the report formats of a recognition table
NONE = "—"


@dataclass(frozen=True)
class SeedStat:
    mean: float
    std: float  # NaN with one seed
    n_seeds: int

    def text(self, decimals: int) -> str:
        std = NONE if math.isnan(self.std) else excel_text(self.std, decimals)
        return f"{excel_text(self.mean, decimals)}±{std}"


@dataclass
class RecognitionRow:
    """One row of one protocol's table: per seed {metric: value in display units}, and their statistics."""

    label: str
    kind: str  # PROBE, TRIVIAL or PUBLISHED
    per_seed: dict[int, dict[str, float]] = field(default_factory=dict)
    origin: str | None = None  # published rows: where the numbers are from

    def stat(self, metric: str) -> SeedStat | None:
        values = [v[metric] for v in self.per_seed.values() if v.get(metric) is not None
                  and not math.isnan(v[metric])]
        if not values:
            return None
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else math.nan
        return SeedStat(mean, std, len(values))

    def text(self, metric: str) -> str:
        stat = self.stat(metric)
        return NONE if stat is None else stat.text(1 if metric in FRACTIONS else 0)


@dataclass
class RecognitionContent:
    table: Table
    protocols: list[tuple[str, list[RecognitionRow]]]  # (protocol, rows in report order)
    missing: list[str]  # cells without a record
    published_meta: dict[str, dict]
    records: list[dict]

    @property
    def has_ours(self) -> bool:
        return bool(self.records)


def display_values(metrics: dict) -> dict[str, float]:
    """A record's 0–1 fractions and count → percent and count; a missing value (no pair) → NaN."""
    return {m: (math.nan if metrics.get(m) is None else float(metrics[m]) * (100 if m in FRACTIONS else 1))
            for m in RECOGNITION_METRICS}


def read_recognition_records(table: Table, results_dir) -> dict[tuple[str, int], dict]:
    """{(label, seed): record} of `table` under results_dir/<table>/<label>/seed<S>.json."""
    found = {}
    root = Path(results_dir) / table.name if results_dir is not None else None
    for row in table.rows:
        for path in sorted(root.glob(f"{row.label}/seed*.json")) if root is not None and root.is_dir() else []:
            try:
                record = json.loads(path.read_text())
            except json.JSONDecodeError as e:
                raise ReportError(f"{path}: not valid JSON ({e})") from None
            if not isinstance(record, dict) or record.get("schema") != RECOGNITION_SCHEMA:
                raise ReportError(f"{path}: not a recognition record (schema {RECOGNITION_SCHEMA!r})")
            found[(row.label, int(record["identity"]["seed"]))] = record
    return found


def published_rows(table: Table, path) -> tuple[list[RecognitionRow], dict[str, dict]]:
    """The published entries' methods on the table's datasets, labelled as our row of the same method if any."""
    rows, meta = [], {}
    datasets = {row.dataset for row in table.rows}
    for key, entry in published_tables(table, path).items():
        meta[key] = entry.get("_meta", {})
        for method, by_dataset in entry.items():
            if method == "_meta":
                continue
            for dataset in sorted(datasets & set(by_dataset)):
                ours = next((r.label for r in table.rows if r.method.casefold() == method.casefold()
                             and r.dataset == dataset), method)
                row = RecognitionRow(f"{ours} (published)", PUBLISHED, origin=key)
                for metric in RECOGNITION_METRICS:
                    cell = by_dataset[dataset].get(metric)
                    if not isinstance(cell, dict) or not cell.get("per_seed"):
                        raise PublishedError(f"{path}: {key}/{method}/{dataset}/{metric}: expected "
                                             "{mean, std, per_seed, source}")
                    for seed, value in cell["per_seed"].items():
                        row.per_seed.setdefault(int(seed), {})[metric] = float(value)
                rows.append(row)
    return rows, meta


def build_recognition(table: Table, results_dir, published: bool, published_path=PUBLISHED_FILE
                      ) -> RecognitionContent:
    records = read_recognition_records(table, results_dir)
    pub, meta = published_rows(table, published_path) if published else ([], {})
    if not records and not pub:
        raise ReportError(f"table {table.name!r}: no recognition records under {results_dir}; run `python -m "
                          f"harness reproduce --table {table.name}` or pass --published")
    blocks = []
    for protocol in table.probe.protocols:
        rows = []
        for row in table.rows:
            seeds = sorted(s for label, s in records if label == row.label)
            if not seeds:
                continue
            probe = RecognitionRow(row.label, PROBE)
            trivial = RecognitionRow(row.label + TRIVIAL_SUFFIX, TRIVIAL)
            for seed in seeds:
                scores = records[(row.label, seed)]["protocols"].get(protocol)
                if scores is None:
                    continue
                probe.per_seed[seed] = display_values(scores["probe"])
                trivial.per_seed[seed] = display_values(scores["trivial"])
            rows += [probe, trivial]
        if protocol == table.protocol:
            rows += pub
        blocks.append((protocol, rows))
    missing = [f"{row.label}-{seed}" for row in table.rows for seed in table.seeds
               if records and (row.label, seed) not in records]
    return RecognitionContent(table, blocks, missing, meta, list(records.values()))


# ----- views -------------------------------------------------------------------------------------------------


def context(content: RecognitionContent) -> dict:
    table = content.table
    return {
        "title": f"Table {table.name}", "table": table, "has_ours": content.has_ours, "missing": content.missing,
        "metrics": [METRIC_TITLES[m] for m in RECOGNITION_METRICS],
        "published": [{"key": k, "protocol": m.get("protocol", "?"), "units": m.get("units", "")}
                      for k, m in content.published_meta.items()],
        "blocks": [{"protocol": protocol, "summary": RECOGNITION_PROTOCOLS.get(protocol).summary,
                    "trains": protocol == table.probe.protocols[0],
                    "rows": [{"label": r.label, "kind": r.kind, "cells": [r.text(m) for m in RECOGNITION_METRICS]}
                             for r in rows],
                    "seeds": [{"label": r.label, "seed": seed,
                               "cells": [_value(values.get(m), m) for m in RECOGNITION_METRICS]}
                              for r in rows for seed, values in sorted(r.per_seed.items())]}
                   for protocol, rows in content.protocols if rows],
    }


def _value(value, metric: str) -> str:
    if value is None or math.isnan(value):
        return NONE
    return f"{value:.3f}" if metric in FRACTIONS else f"{value:.0f}"


def _environment() -> Environment:
    return Environment(loader=FileSystemLoader(Path(__file__).with_name("templates")),
                       autoescape=select_autoescape(["html.j2"]), undefined=StrictUndefined, trim_blocks=True,
                       lstrip_blocks=True, keep_trailing_newline=True)


def markdown(content: RecognitionContent) -> str:
    return _environment().get_template("recognition.md.j2").render(**context(content))


def html(content: RecognitionContent) -> str:
    return _environment().get_template("recognition.html.j2").render(**context(content))


def workbook(content: RecognitionContent) -> bytes:
    """`eval_multi`: our probes' per-seed 0–1 top-1 / top-3 / box IoU under the table's protocol in the authors'
    layout (the published ones when there are none of ours); then a summary and a per-seed sheet of everything."""
    main = dict(content.protocols).get(content.table.protocol, [])
    shown = [r for r in main if r.kind == (PROBE if content.has_ours else PUBLISHED)]
    groups = [(r.label, [(seed, {m: v[m] / 100 for m in FRACTIONS}) for seed, v in sorted(r.per_seed.items())])
              for r in shown]
    summary, per_seed = [], []
    for protocol, rows in content.protocols:
        for r in rows:
            for m in RECOGNITION_METRICS:
                stat = r.stat(m)
                summary.append({"protocol": protocol, "label": r.label, "kind": r.kind, "metric": m,
                                "n_seeds": stat.n_seeds if stat else 0, "mean": stat.mean if stat else None,
                                "std": stat.std if stat and not math.isnan(stat.std) else None, "text": r.text(m),
                                "unit": UNITS[m]})
            per_seed += [{"protocol": protocol, "label": r.label, "kind": r.kind, "seed": seed, **values,
                          "unit": PER_SEED_UNITS} for seed, values in sorted(r.per_seed.items())]
    wb = Workbook()
    ws = wb.active
    ws.title = SHEET
    cached = write_eval_multi(ws, groups, metrics=FRACTIONS)
    write_frame(wb, "summary", pd.DataFrame(summary))
    write_frame(wb, "per_seed", pd.DataFrame(per_seed))
    return save(wb, {SHEET: cached})


def text_recognition(content: RecognitionContent) -> str:
    lines = []
    for protocol, rows in content.protocols:
        if not rows:
            continue
        grid = pd.DataFrame([[r.text(m) for m in RECOGNITION_METRICS] for r in rows], index=[r.label for r in rows],
                            columns=[METRIC_TITLES[m] for m in RECOGNITION_METRICS])
        lines += [f"{protocol}:", grid.to_string(), ""]
    return "\n".join(lines).rstrip()


class RecognitionReport(NamedTuple):
    content: RecognitionContent
    paths: dict


def check_formats(table: Table, formats) -> tuple[str, ...]:
    """`formats` (None: all of FORMATS), or an error naming those a recognition table does not render."""
    formats = FORMATS if formats is None else tuple(formats)
    other = [f for f in formats if f not in FORMATS]
    if other:
        raise ReportError(f"table {table.name!r} (object recognition) renders {', '.join(FORMATS)}, not "
                          f"{', '.join(other)}")
    return formats


def render_recognition(table: Table, results_dir, out_dir, published: bool = False, *,
                       published_path=PUBLISHED_FILE, formats=None) -> RecognitionReport:
    """Write out_dir/acc-<T>.<format> for each of `formats` (of FORMATS; None: all), each atomically and only once
    all are rendered."""
    formats = check_formats(table, formats)
    content = build_recognition(table, results_dir, published, published_path)
    views = {"xlsx": workbook, "md": lambda c: markdown(c).encode(), "html": lambda c: html(c).encode()}
    rendered = {kind: views[kind](content) for kind in formats}
    paths = {kind: Path(out_dir) / f"acc-{table.name}.{kind}" for kind in rendered}
    for kind, data in rendered.items():
        atomic_write_bytes(paths[kind], data)
    return RecognitionReport(content, paths)
