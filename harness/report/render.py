"""`render_table`: a table's results (and/or the published numbers) → reports/acc-<T>.xlsx, .md and .html.

Everything is rendered in memory first and only then written, each file atomically: a failure anywhere
(a bad record, a corrupt gallery, a template error) leaves the previous reports as they were.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from harness.errors import HarnessError
from harness.io import atomic_write_bytes
from harness.metrics.protocols import PROTOCOLS
from harness.report import figures, stats, xlsx
from harness.report.frame import (
    OURS,
    Evaluated,
    check_uniform,
    conform,
    data_card_fingerprint,
    display,
    find_records,
    mean_std_text,
    per_image_frame,
    summarise,
    tidy_frame,
)
from harness.report.published import PUBLISHED_FILE, published_frame, published_tables
from harness.report.published import SOURCE as PUBLISHED
from harness.results import METRICS, gallery_path, read_gallery
from harness.tables import TABLES, Row, Table

TEMPLATES = Path(__file__).with_name("templates")
METRIC_TITLES = {"ari": "ARI", "ari_fg": "ARI-fg", "mbo": "mBO", "miou": "mIoU"}

# What each reference row means; being here is what sets a method's rows apart from the learned ones.
REFERENCE_NOTES = {
    "grid": "a fixed spatial partition of every image into equal cells, whatever it shows: what position alone "
            "scores.",
    "single-segment": "every pixel in one segment: the floor of ARI-fg.",
    "colour-kmeans": "per-image k-means clustering of pixel colours: what low-level colour alone achieves.",
}
UNTRAINED_NOTE = "the method's initialisation for the seed, evaluated without training: what training must beat."
# The metrics on which a trained row must beat its initialisation and the trivial rows (ARI-fg: objects; mBO: all
# segments, background included).
BEAT_METRICS = ("ari_fg", "mbo")
OWN_INITIALISATION = "its initialisation"

# Cost fields of a record (harness.run) in display order, with their titles; other numeric fields follow.
COST_TITLES = {
    "train_seconds": "train s", "train_images_per_second": "train img/s", "steps": "steps",
    "peak_memory_mb": "peak MiB", "eval_seconds": "eval s", "eval_images_per_second": "eval img/s",
    "parameters": "parameters", "trainable_parameters": "trainable",
}
COMPUTE_AXES = {"train_seconds": "train seconds (log)", "parameters": "parameters (log)"}
PLOT_METRIC = "ari_fg"


class ReportError(HarnessError):
    pass


class RenderResult(NamedTuple):
    frame: pd.DataFrame  # the tidy frame (ours and published)
    paths: dict  # {"xlsx" | "md" | "html": Path}


@dataclass
class Options:
    allow_mixed: bool = False
    compare: list[tuple[str, str]] | None = None  # label pairs for paired tests (None: the default pairs)
    gallery_images: int = 4
    gallery_size: int = 128
    n_boot: int = 10_000
    boot_seed: int = 0


def render_table(table: str | Table, results_dir: str | Path | None = None, out_dir: str | Path = "reports",
                 published: bool = False, *, published_path: str | Path = PUBLISHED_FILE, allow_mixed: bool = False,
                 compare: list[tuple[str, str]] | None = None, gallery_images: int = 4, gallery_size: int = 128,
                 n_boot: int = 10_000, boot_seed: int = 0) -> RenderResult:
    """Aggregate `table` from the records under `results_dir` (and the published numbers if `published`) and
    write out_dir/acc-<T>.{xlsx,md,html}. With `published` and no records the published per-seed values alone
    are rendered in the authors' layout (the v3 case). `compare`: pairs of row labels or method names for
    the paired tests (default: per dataset, the table's first learned row against each other learned row)."""
    table = TABLES.get(table) if isinstance(table, str) else table
    options = Options(allow_mixed, compare, gallery_images, gallery_size, n_boot, boot_seed)
    report = build(table, results_dir, published, published_path, options)
    out_dir = Path(out_dir)
    paths = {kind: out_dir / f"acc-{table.name}.{kind}" for kind in ("xlsx", "md", "html")}
    rendered = {"xlsx": report.xlsx_bytes(), "md": report.markdown().encode(), "html": report.html().encode()}
    for kind, data in rendered.items():
        atomic_write_bytes(paths[kind], data)
    return RenderResult(report.frame, paths)


def load_frame(table: Table, results_dir, published: bool, published_path, allow_mixed: bool):
    """(tidy frame, our evaluated records, mixing issues) — the aggregation without any rendering."""
    evaluated = find_records(results_dir, table) if results_dir is not None and Path(results_dir).is_dir() else []
    ours = tidy_frame(evaluated)
    issues = check_uniform(ours, table, allow_mixed) if len(ours) else []
    parts = [ours, published_frame(table, published_path)] if published else [ours]
    parts = [p for p in parts if len(p)]
    frame = conform(pd.concat(parts, ignore_index=True) if parts else pd.DataFrame())
    return frame, evaluated, issues


def build(table: Table, results_dir, published: bool, published_path, options: Options) -> "Report":
    frame, evaluated, issues = load_frame(table, results_dir, published, published_path, options.allow_mixed)
    if frame.empty:
        where = f"under {results_dir}" if results_dir is not None else "(no results directory given)"
        raise ReportError(f"table {table.name!r}: no result records {where}"
                          + ("" if published else "; run `python -m harness reproduce --table "
                             f"{table.name}` or pass --published to show the published numbers"))
    meta = {key: entry.get("_meta", {}) for key, entry in published_tables(table, published_path).items()} \
        if published else {}
    return Report(table, frame, evaluated, issues, meta, options)


class Report:
    """One table's aggregated numbers and everything the three outputs show; each output is a view of it."""

    def __init__(self, table: Table, frame: pd.DataFrame, evaluated: list[Evaluated], issues: list[str],
                 published_meta: dict[str, dict], options: Options):
        self.table, self.frame, self.evaluated, self.issues = table, frame, evaluated, issues
        self.published_meta, self.options = published_meta, options
        self.summary = summarise(frame)
        self.has_ours = bool((frame["source"] == OURS).any())
        self.has_published = bool((frame["source"] == PUBLISHED).any())
        self.main = frame[(frame["source"] == OURS) & (frame["protocol"] == table.protocol)]
        pairs = resolve_pairs(table, options.compare) if self.has_ours else []
        images = per_image_frame([e for e in evaluated if e.record["identity"]["protocol"] == table.protocol])
        tests = stats.compare_rows(self.main, images, pairs, n_boot=options.n_boot, seed=options.boot_seed)
        self.tests = tests[tests["n"] > 0].reset_index(drop=True)  # pairs without common cells say nothing

    # ----- shared pieces -----------------------------------------------------------------------------------

    def stat(self, source: str, label: str, metric: str):
        """The summary row of one cell group (ours: under the table's protocol), or None."""
        s = self.summary
        rows = s[(s["source"] == source) & (s["label"] == label) & (s["metric"] == metric)]
        if source == OURS:
            rows = rows[rows["protocol"] == self.table.protocol]
        return rows.iloc[0] if len(rows) else None

    def table_rows(self, reference: bool) -> list[dict]:
        """Rows of the main table: per metric ours and, with published numbers, theirs and ours − theirs."""
        out = []
        for row in self.table.rows:
            if is_reference(row) != reference:
                continue
            cells = []
            for metric in METRICS:
                ours = self.stat(OURS, row.label, metric) if self.has_ours else None
                theirs = self.stat(PUBLISHED, row.label, metric) if self.has_published else None
                diff = None if ours is None or theirs is None else ours["mean_pct"] - theirs["mean_pct"]
                cells.append({"ours": _text(ours), "published": _text(theirs), "diff": signed(diff)})
            if any(c["ours"] != "—" or c["published"] != "—" for c in cells):
                out.append({"label": row.label, "cells": cells})
        return out

    def reference_notes(self) -> list[dict]:
        notes = {}
        for row in self.table.rows:
            if not is_reference(row) or not (self.frame["label"] == row.label).any():
                continue
            if row.variant != "trained":
                notes[row.label] = UNTRAINED_NOTE
            else:
                notes[row.method] = REFERENCE_NOTES[row.method]
        return [{"name": k, "text": v} for k, v in notes.items()]

    def beats(self) -> dict:
        """Whether each trained row's seed mean beats its own untrained initialisation and every trivial row on
        BEAT_METRICS: {"columns": [...], "rows": [{"label", "cells": [text per column]}]} (empty without them)."""
        trivial = [r for r in self.table.rows if is_reference(r) and r.variant == "trained"]
        learned = [r for r in self.table.rows if not is_reference(r)]
        untrained = {(r.method, r.dataset): r for r in self.table.rows if r.variant == "untrained"}
        if not self.has_ours or not learned or not (trivial or untrained):
            return {}
        columns = ([OWN_INITIALISATION] if untrained else []) + list(dict.fromkeys(r.label for r in trivial))
        rows = []
        for row in learned:
            own = untrained.get((row.method, row.dataset))
            against = {OWN_INITIALISATION: own} if untrained else {}
            against.update({r.label: r for r in trivial if r.dataset == row.dataset})
            rows.append({"label": row.label, "cells": [self._beat(row, against.get(c)) for c in columns]})
        return {"columns": columns, "rows": rows}

    def _beat(self, row: Row, reference: Row | None) -> str:
        """"yes" when the row's mean is above the reference's on every BEAT_METRICS, else which metrics are not."""
        if reference is None:
            return "—"
        failed = []
        for metric in BEAT_METRICS:
            ours, theirs = self.stat(OURS, row.label, metric), self.stat(OURS, reference.label, metric)
            if ours is None or theirs is None:
                return "—"
            if not ours["mean_pct"] > theirs["mean_pct"]:
                failed.append(f"{METRIC_TITLES[metric]} {ours['mean_pct']:.1f} ≤ {theirs['mean_pct']:.1f}")
        return "yes" if not failed else "no: " + ", ".join(failed)

    def other_protocols(self) -> list[dict]:
        """With allow_mixed, cells evaluated under other protocols than the table's, aggregated on their own."""
        s = self.summary
        other = s[(s["source"] == OURS) & (s["protocol"] != self.table.protocol)]
        out = []
        for protocol, group in other.groupby("protocol", sort=True):
            rows = []
            for label, cells in group.groupby("label", sort=False):
                texts = {c.metric: c.text for c in cells.itertuples()}
                rows.append({"label": label, "cells": [texts.get(m, "—") for m in METRICS]})
            out.append({"protocol": protocol, "rows": rows})
        return out

    def missing_cells(self) -> list[str]:
        if not self.has_ours:
            return []
        have = set(zip(self.main["label"], self.main["seed"]))
        return [f"{row.label}-{seed}" for row in self.table.rows for seed in self.table.seeds
                if (row.label, seed) not in have]

    def fixed(self) -> list[tuple[str, str]]:
        """What the table fixes for all its cells, in words."""
        budget = self.table.budget
        steps = "each method's own steps" if budget.steps is None else f"{budget.steps} steps"
        batch = "its own batch size" if budget.batch_size is None else f"batch size {budget.batch_size}"
        protocol = PROTOCOLS.get(self.table.protocol)
        items = [("table", f"{self.table.name}: {self.table.description}"),
                 ("protocol", f"{protocol.name} — {protocol.summary}"),
                 ("budget", f"{steps}; {batch}"), ("seeds", ", ".join(map(str, self.table.seeds))),
                 ("data", self.table.data)]
        if self.has_published:
            for key, meta in self.published_meta.items():
                items.append(("published", f"{key} — {meta.get('protocol', '?')}"))
        return items

    def budget_rows(self) -> list[dict]:
        cells = self.main.drop_duplicates(["label", "seed"])
        out = []
        for label, group in cells.groupby("label", sort=False):
            out.append({"label": label, "steps": _distinct(group["steps"]),
                        "batch_size": _distinct(group["batch_size"]), "config_hash": _distinct(group["config_hash"]),
                        "checkpoints": _distinct(group["checkpoint"])})
        return out

    def data_cards(self) -> list[dict]:
        """One card per dataset (check_uniform guarantees one unless mixing was allowed: then all are shown)."""
        cards = {}
        for item in self.evaluated:
            card = item.record["identity"]["data_card"]
            fingerprint = data_card_fingerprint(card)
            entry = cards.setdefault((item.row.dataset, fingerprint), {"dataset": item.row.dataset,
                                                                        "fingerprint": fingerprint, "cells": [],
                                                                        "fields": _card_fields(card)})
            entry["cells"].append(item.name)
        return list(cards.values())

    def cost(self) -> pd.DataFrame:
        """Mean over seeds of every numeric cost field, per row (our cells under the table's protocol)."""
        rows = []
        for item in self.evaluated:
            if item.record["identity"]["protocol"] != self.table.protocol:
                continue
            numeric = {k: float(v) for k, v in item.record.get("cost", {}).items()
                       if isinstance(v, (int, float)) and not isinstance(v, bool)}
            rows.append({"label": item.row.label, "dataset": item.row.dataset, **numeric})
        if not rows:
            return pd.DataFrame(columns=["label", "dataset"])
        frame = pd.DataFrame(rows)
        fields = [k for k in COST_TITLES if k in frame] + sorted(set(frame) - set(COST_TITLES) - {"label", "dataset"})
        order = {row.label: i for i, row in enumerate(self.table.rows)}
        frame = frame.groupby(["label", "dataset"], sort=False)[fields].mean().reset_index()
        return frame.sort_values("label", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)

    def test_rows(self) -> list[dict]:
        dataset_of = {row.label: row.dataset for row in self.table.rows}
        out = []
        for t in self.tests.itertuples():
            out.append({"dataset": dataset_of[t.a], "a": t.a, "b": t.b, "metric": METRIC_TITLES[t.metric],
                        "level": t.level, "n": t.n, "mean_a": _pct(t.mean_a), "mean_b": _pct(t.mean_b),
                        "diff": signed(t.mean_diff * 100), "ci": _ci(t.ci_low, t.ci_high), "t": _num(t.t),
                        "p_t": _p(t.p_t), "w": _num(t.w), "p_w": _p(t.p_w)})
        return out

    def context(self) -> dict:
        cost = self.cost()
        cost_columns = [c for c in cost.columns if c not in ("label", "dataset")]
        return {
            "title": f"Table {self.table.name}", "table": self.table, "fixed": self.fixed(),
            "protocol_explained": PROTOCOLS.get(self.table.protocol).explain(),
            "metrics": [METRIC_TITLES[m] for m in METRICS], "has_ours": self.has_ours,
            "has_published": self.has_published, "compare": self.has_ours and self.has_published,
            "rows": self.table_rows(reference=False), "reference_rows": self.table_rows(reference=True),
            "reference_notes": self.reference_notes(), "other_protocols": self.other_protocols(),
            "beats": self.beats(), "beat_metrics": [METRIC_TITLES[m] for m in BEAT_METRICS],
            "issues": self.issues, "missing": self.missing_cells(), "budget_rows": self.budget_rows(),
            "data_cards": self.data_cards(),
            "cost_columns": [COST_TITLES.get(c, c) for c in cost_columns],
            "cost_rows": [{"label": r["label"], "values": [_quantity(r[c]) for c in cost_columns]}
                          for _, r in cost.iterrows()],
            "tests": self.test_rows(), "n_boot": self.options.n_boot, "boot_seed": self.options.boot_seed,
        }

    # ----- outputs -----------------------------------------------------------------------------------------

    def xlsx_bytes(self) -> bytes:
        labels = [row.label for row in self.table.rows]
        source = self.main if self.has_ours else self.frame[self.frame["source"] == PUBLISHED]
        groups = xlsx.seed_groups(source, labels)
        sheets = [("summary", self.summary_sheet())]
        if self.has_ours and self.has_published:
            sheets.append(("published_vs_ours", self.comparison_sheet()))
            published = xlsx.seed_groups(self.frame[self.frame["source"] == PUBLISHED], labels)
            if published:
                sheets.append(("published_per_seed", _eval_multi_frame(published)))
        if len(self.summary[(self.summary["source"] == OURS) & (self.summary["protocol"] != self.table.protocol)]):
            sheets.append(("other_protocols", self.summary_sheet(other=True)))
        cost = self.cost()
        if len(cost):
            sheets.append(("cost", cost))
        if len(self.tests):
            sheets.append(("paired_tests", self.tests))
        cards = self.data_cards()
        if cards:
            sheets.append(("data_cards", pd.DataFrame([{"dataset": c["dataset"], "fingerprint": c["fingerprint"],
                                                        "cells": c["cells"], **dict(c["fields"])} for c in cards])))
        if self.issues:
            sheets.append(("mixed_cells", pd.DataFrame({"issue": self.issues})))
        return xlsx.workbook_bytes(groups, sheets)

    def summary_sheet(self, other: bool = False) -> pd.DataFrame:
        s = self.summary
        mask = (s["protocol"] != self.table.protocol) & (s["source"] == OURS) if other else \
            (s["protocol"] == self.table.protocol) | (s["source"] == PUBLISHED)
        columns = ["source", "label", "method", "dataset", "protocol", "metric", "n_seeds", "seeds", "mean_pct",
                   "std_pct", "text"]
        return s.loc[mask, columns].reset_index(drop=True)

    def comparison_sheet(self) -> pd.DataFrame:
        rows = []
        for row in self.table.rows:
            for metric in METRICS:
                ours, theirs = self.stat(OURS, row.label, metric), self.stat(PUBLISHED, row.label, metric)
                if ours is None or theirs is None:
                    continue
                rows.append({"label": row.label, "metric": metric, "ours_mean": ours["mean_pct"],
                             "ours_std": ours["std_pct"], "published_mean": theirs["mean_pct"],
                             "published_std": theirs["std_pct"], "difference": ours["mean_pct"] - theirs["mean_pct"],
                             "ours": ours["text"], "published": theirs["text"]})
        return pd.DataFrame(rows)

    def markdown(self) -> str:
        return _environment().get_template("report.md.j2").render(**self.context())

    def html(self) -> str:
        return _environment().get_template("report.html.j2").render(**self.context(), galleries=self.galleries(),
                                                                    plots=self.plots())

    def galleries(self) -> list[dict]:
        """Per row, the gallery of its first seed that has one (our cells under the table's protocol)."""
        out = []
        for row in self.table.rows:
            items = sorted((e for e in self.evaluated if e.row.label == row.label
                            and e.record["identity"]["protocol"] == self.table.protocol), key=lambda e: e.seed)
            for item in items:
                try:
                    gallery = read_gallery(item.path)
                except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
                    raise ReportError(f"{gallery_path(item.path)}: unreadable mask gallery ({e})") from None
                if gallery is None:
                    continue
                panels = figures.gallery_panels(gallery, segmentation=item.record["identity"].get("mask"),
                                                images=self.options.gallery_images, size=self.options.gallery_size)
                out.append({"label": row.label, "seed": item.seed, **panels})
                break
        return out

    def plots(self) -> list[dict]:
        cost = self.cost()
        out = []
        for axis, title in COMPUTE_AXES.items():
            if axis not in cost:
                continue
            points = []
            for c in cost.itertuples():
                s = self.stat(OURS, c.label, PLOT_METRIC)
                if s is not None:
                    points.append({"dataset": c.dataset, "label": c.label, "x": getattr(c, axis),
                                   "y": s["mean_pct"], "y_err": s["std_pct"]})
            uri = figures.compute_plot(pd.DataFrame(points, columns=["dataset", "label", "x", "y", "y_err"]),
                                       x=axis, x_title=title, y_title=f"{METRIC_TITLES[PLOT_METRIC]} (%)")
            if uri is not None:
                out.append({"title": f"{METRIC_TITLES[PLOT_METRIC]} against {title.split(' (')[0]}", "uri": uri})
        return out


def is_reference(row: Row) -> bool:
    """Reference rows (trivial methods, untrained initialisations) are shown apart from the learned ones."""
    return row.method in REFERENCE_NOTES or row.variant != "trained"


def resolve_pairs(table: Table, compare: list[tuple[str, str]] | None) -> list[tuple[str, str]]:
    """Label pairs on the same dataset. Each side of `compare` is a row label or a method name (then every
    dataset where both methods have a trained row); default: per dataset, the first learned row of the
    table against each later learned row."""
    learned = [r for r in table.rows if not is_reference(r)]
    if compare is None:
        pairs = []
        for dataset in dict.fromkeys(r.dataset for r in learned):
            rows = [r for r in learned if r.dataset == dataset]
            pairs += [(rows[0].label, r.label) for r in rows[1:]]
        return pairs
    pairs = []
    for a, b in compare:
        left, right = _rows_named(table, a), _rows_named(table, b)
        found = [(x.label, y.label) for x in left for y in right if x.dataset == y.dataset and x.label != y.label]
        if not found:
            raise ReportError(f"table {table.name!r}: no dataset where {a!r} and {b!r} both have a row to compare")
        pairs += found
    return list(dict.fromkeys(pairs))


def _rows_named(table: Table, name: str) -> list[Row]:
    rows = [r for r in table.rows if r.label == name] or \
           [r for r in table.rows if r.method == name and r.variant == "trained"]
    if not rows:
        raise ReportError(f"table {table.name!r} has no row or method {name!r}; rows: "
                          f"{', '.join(r.label for r in table.rows)}")
    return rows


def _environment() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html.j2"]),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def _eval_multi_frame(groups) -> pd.DataFrame:
    return pd.DataFrame([{"row": f"{label}-{seed}", **{xlsx.HEADERS[m]: xlsx.csv_value(v.get(m)) for m in METRICS}}
                         for label, seeds in groups for seed, v in seeds])


def _text(stat) -> str:
    return "—" if stat is None else mean_std_text(stat["mean_pct"], stat["std_pct"])


def signed(value) -> str:
    """A difference in points, one decimal, always signed: "+0.3", "-0.3"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    text = display(value)
    return text if text.startswith("-") else f"+{text}"


def _pct(value) -> str:
    return display(value * 100) if value is not None and not math.isnan(value) else "—"


def _ci(low, high) -> str:
    if math.isnan(low) or math.isnan(high):
        return "—"
    return f"[{signed(low * 100)}, {signed(high * 100)}]"


def _num(value) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.3g}"


def _p(value) -> str:
    if value is None or math.isnan(value):
        return "—"
    return f"{value:.2e}" if value < 1e-3 else f"{value:.3f}"


def _quantity(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if float(value).is_integer() and abs(value) >= 1000:
        return f"{int(value):,}"
    return f"{value:,.1f}" if abs(value) >= 1 else f"{value:.3g}"


def _distinct(values: pd.Series) -> str:
    return ", ".join(str(v) for v in dict.fromkeys(values.tolist())) or "—"


def _card_fields(card) -> list[tuple[str, str]]:
    if not isinstance(card, dict):
        return [("card", str(card))]
    return [(k, _short(v)) for k, v in card.items()]


def _short(value) -> str:
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= 120 else text[:117] + "…"


def text_table(frame, table) -> str:
    """The main numbers as a plain-text grid: ours under the table's protocol, else the published ones."""
    summary = summarise(frame)
    ours = summary[(summary["source"] == OURS) & (summary["protocol"] == table.protocol)]
    rows, source = (ours, "ours") if len(ours) else (summary[summary["source"] != OURS], "published")
    grid = rows.pivot_table(index="label", columns="metric", values="text", aggfunc="first", sort=False)
    grid = grid.reindex(columns=list(METRIC_TITLES)).rename(columns=METRIC_TITLES).fillna("—")
    grid.columns.name = None
    return f"{source} ({table.protocol if source == 'ours' else ', '.join(table.published)}):\n{grid.to_string()}"
