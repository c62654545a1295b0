"""The machine-readable views: the table's main results as one tidy table and its per-seed values as another, in
CSV (acc-<T>.csv, acc-<T>-seeds.csv) and JSON (acc-<T>.json: both, with the units and where the numbers come from).

Main results: ours under the table's protocol and the published numbers, a row per (source, table row, metric) in
report row order: mean and sample std over seeds (n − 1, as Excel's STDEV) and the number of seeds they come from
(0 where a source states only mean±std). Everything in percent, the `unit` column says so; `pre_v3` marks a published
number made under the protocol before v3. Per seed: a row per (source, table row, seed, metric), with the record
(ours) or the source (published) it comes from.
"""

from __future__ import annotations

import io
import json
import math

import pandas as pd

from harness.report.content import Content, ordered_rows
from harness.report.frame import OURS
from harness.report.published import SOURCE as PUBLISHED
from harness.report.published import pre_v3_labels
from harness.report.xlsx import PERCENT, percent
from harness.results import METRICS

SCHEMA = "harness.report-export/1"
UNIT_NOTE = ("percent: the records' 0–1 values ×100; std is the sample standard deviation over seeds (n − 1, Excel "
             "STDEV), empty with one seed")
RESULT_COLUMNS = ["source", "label", "method", "dataset", "variant", "selection", "protocol", "metric", "mean", "std",
                  "n_seeds", "unit", "pre_v3", "published_table", "origin"]
SEED_COLUMNS = ["source", "label", "method", "dataset", "variant", "selection", "protocol", "metric", "seed", "value",
                "unit", "published_table", "origin", "record"]


def results_frame(content: Content) -> pd.DataFrame:
    """The main results, one row per source × table row × metric."""
    s = content.summary
    main = s[((s["source"] == OURS) & (s["protocol"] == content.table.protocol)) | (s["source"] == PUBLISHED)]
    rows_of = {row.label: row for row in content.table.rows}
    provenance = _provenance(content)
    pre_v3 = pre_v3_labels(content.frame, content.published_meta)
    rows = []
    for r in main.itertuples():
        published, row = r.source == PUBLISHED, rows_of[r.label]
        rows.append({"source": r.source, "label": r.label, "method": r.method, "dataset": r.dataset,
                     "variant": row.variant, "selection": None if published else row.selection,
                     "protocol": r.protocol, "metric": r.metric, "mean": _number(r.mean_pct),
                     "std": _number(r.std_pct), "n_seeds": r.n_seeds, "unit": PERCENT,
                     "pre_v3": (r.label in pre_v3) if published else None,
                     **provenance.get((r.source, r.label, r.metric), {})})
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def seeds_frame(content: Content) -> pd.DataFrame:
    """The per-seed values behind the main results, one row per source × table row × seed × metric, in the order of
    the main results (ours first, report row order), then seed and metric."""
    f = content.frame
    main = f[(((f["source"] == OURS) & (f["protocol"] == content.table.protocol)) | (f["source"] == PUBLISHED))
             & f["seed"].notna()]
    rank = {row.label: i for i, row in enumerate(ordered_rows(content.table))}
    rows_of = {row.label: row for row in content.table.rows}
    cells = sorted(main.itertuples(), key=lambda r: (r.source != OURS, rank[r.label], r.seed,
                                                     METRICS.index(r.metric)))
    rows = [{"source": r.source, "label": r.label, "method": r.method, "dataset": r.dataset,
             "variant": rows_of[r.label].variant,
             "selection": rows_of[r.label].selection if r.source == OURS else None, "protocol": r.protocol,
             "metric": r.metric, "seed": int(r.seed), "value": percent(r.value), "unit": PERCENT,
             "published_table": _text(r.published_table), "origin": _text(r.origin), "record": _text(r.record)}
            for r in cells]
    return pd.DataFrame(rows, columns=SEED_COLUMNS)


def csv_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    return buf.getvalue().encode()


def json_bytes(content: Content) -> bytes:
    """Both tables with the table's identity, the units and the published sources' own notes."""
    table = content.table
    document = {
        "schema": SCHEMA, "table": table.name, "description": table.description, "protocol": table.protocol,
        "seeds": list(table.seeds), "unit": PERCENT, "unit_note": UNIT_NOTE,
        "sources": {"ours": "result records (harness.results), evaluated under the table's protocol; each per-seed "
                            "value names its record",
                    "published": content.published_meta},
        "results": _records(results_frame(content)), "per_seed": _records(seeds_frame(content)),
    }
    return (json.dumps(document, indent=1, ensure_ascii=False, allow_nan=False) + "\n").encode()


def _records(frame: pd.DataFrame) -> list[dict]:
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _plain(value):
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    return value.item() if hasattr(value, "item") else value


def _number(value) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _text(value) -> str | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA else str(value)


def _provenance(content: Content) -> dict[tuple[str, str, str], dict]:
    """{(source, label, metric): {published_table, origin}} of the published rows."""
    f = content.frame[content.frame["source"] == PUBLISHED].drop_duplicates(["label", "metric"])
    return {(PUBLISHED, r.label, r.metric): {"published_table": r.published_table, "origin": r.origin}
            for r in f.itertuples()}
