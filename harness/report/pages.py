"""The markdown and HTML views of a report's content (jinja2 templates in harness/report/templates/).

Both templates get the same context: the content with every number already written as text. The HTML page
adds the mask galleries and the accuracy-against-compute plots, as data URIs (one self-contained file).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from harness.metrics.protocols import PROTOCOLS
from harness.report import figures
from harness.report.content import BEAT_METRICS, LEARNED, Content
from harness.report.formats import (
    COST_TITLES,
    METRIC_TITLES,
    OWN_INITIALISATION,
    beat_text,
    card_fields,
    interval,
    listing,
    number,
    p_value,
    pct,
    quantity,
    signed,
    stat_text,
)
from harness.report.frame import OURS
from harness.results import METRICS

TEMPLATES = Path(__file__).with_name("templates")
COMPUTE_AXES = {"train_seconds": "train seconds (log)", "parameters": "parameters (log)"}
PLOT_METRIC = "ari_fg"


def markdown(content: Content) -> str:
    return _environment().get_template("report.md.j2").render(**context(content))


def html(content: Content) -> str:
    return _environment().get_template("report.html.j2").render(**context(content), galleries=galleries(content),
                                                                plots=plots(content))


def context(content: Content) -> dict:
    table, cost = content.table, content.cost
    cost_columns = [c for c in cost.columns if c not in ("label", "dataset")]
    return {
        "title": f"Table {table.name}", "table": table, "fixed": fixed(content),
        "protocol_explained": PROTOCOLS.get(table.protocol).explain(),
        "metrics": [METRIC_TITLES[m] for m in METRICS], "has_ours": content.has_ours,
        "has_published": content.has_published, "compare": content.has_ours and content.has_published,
        "rows": result_rows(content, reference=False), "reference_rows": result_rows(content, reference=True),
        "reference_notes": [{"name": name, "text": text} for name, text in content.reference_notes],
        "other_protocols": [{"protocol": protocol,
                             "rows": [{"label": label, "cells": [stat_text(stats.get(m)) for m in METRICS]}
                                      for label, stats in rows]}
                            for protocol, rows in content.other_protocols],
        "beats": beats(content), "beat_metrics": [METRIC_TITLES[m] for m in BEAT_METRICS],
        "issues": content.issues, "missing": [f"{label}-{seed}" for label, seed in content.missing],
        "budget_rows": [{"label": b.label, "steps": listing(b.steps), "batch_size": listing(b.batch_size),
                         "config_hash": listing(b.config_hash), "checkpoints": listing(b.checkpoints)}
                        for b in content.budgets],
        "data_cards": [{"dataset": c.dataset, "fingerprint": c.fingerprint, "cells": c.cells,
                        "fields": card_fields(c.card)} for c in content.data_cards],
        "cost_columns": [COST_TITLES.get(c, c) for c in cost_columns],
        "cost_rows": [{"label": r["label"], "values": [quantity(r[c]) for c in cost_columns]}
                      for _, r in cost.iterrows()],
        "tests": test_rows(content), "n_boot": content.options.n_boot, "boot_seed": content.options.boot_seed,
    }


def result_rows(content: Content, reference: bool) -> list[dict]:
    """The main table's learned rows, or its reference rows (untrained, then trivial): per metric ours and, with
    published numbers, theirs and ours − theirs."""
    return [{"label": r.label,
             "cells": [{"ours": stat_text(r.ours[m]), "published": stat_text(r.published[m]),
                        "diff": signed(r.difference(m))} for m in METRICS]}
            for r in content.rows if (r.section != LEARNED) == reference]


def beats(content: Content) -> dict:
    b = content.beats
    if b is None:
        return {}
    return {"columns": ([OWN_INITIALISATION] if b.initialisation else []) + b.trivial,
            "rows": [{"label": label, "cells": [beat_text(c) for c in cells]} for label, cells in b.rows]}


def fixed(content: Content) -> list[tuple[str, str]]:
    """What the table fixes for all its cells, in words."""
    table = content.table
    budget = table.budget
    steps = "each method's own steps" if budget.steps is None else f"{budget.steps} steps"
    batch = "its own batch size" if budget.batch_size is None else f"batch size {budget.batch_size}"
    protocol = PROTOCOLS.get(table.protocol)
    items = [("table", f"{table.name}: {table.description}"), ("protocol", f"{protocol.name} — {protocol.summary}"),
             ("budget", f"{steps}; {batch}"), ("seeds", ", ".join(map(str, table.seeds))), ("data", table.data)]
    if content.has_published:
        items += [("published", f"{key} — {meta.get('protocol', '?')}") for key, meta in content.published_meta.items()]
    return items


def test_rows(content: Content) -> list[dict]:
    dataset_of = {row.label: row.dataset for row in content.table.rows}
    return [{"dataset": dataset_of[t.a], "a": t.a, "b": t.b, "metric": METRIC_TITLES[t.metric], "level": t.level,
             "n": t.n, "mean_a": pct(t.mean_a), "mean_b": pct(t.mean_b), "diff": signed(t.mean_diff * 100),
             "ci": interval(t.ci_low, t.ci_high), "t": number(t.t), "p_t": p_value(t.p_t), "w": number(t.w),
             "p_w": p_value(t.p_w)} for t in content.tests.itertuples()]


def galleries(content: Content) -> list[dict]:
    options = content.options
    return [{"label": g.label, "seed": g.seed,
             **figures.gallery_panels(g.gallery, segmentation=g.segmentation, images=options.gallery_images,
                                      size=options.gallery_size)} for g in content.galleries]


def plots(content: Content) -> list[dict]:
    """Accuracy (PLOT_METRIC) against each compute axis the costs have."""
    out = []
    for axis, title in COMPUTE_AXES.items():
        if axis not in content.cost:
            continue
        points = []
        for c in content.cost.itertuples():
            s = content.stat(OURS, c.label, PLOT_METRIC)
            if s is not None:
                points.append({"dataset": c.dataset, "label": c.label, "x": getattr(c, axis), "y": s.mean_pct,
                               "y_err": s.std_pct})
        uri = figures.compute_plot(pd.DataFrame(points, columns=["dataset", "label", "x", "y", "y_err"]),
                                   x=axis, x_title=title, y_title=f"{METRIC_TITLES[PLOT_METRIC]} (%)")
        if uri is not None:
            out.append({"title": f"{METRIC_TITLES[PLOT_METRIC]} against {title.split(' (')[0]}", "uri": uri})
    return out


def _environment() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html.j2"]),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
