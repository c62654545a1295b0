"""The markdown and HTML views of a report's content (jinja2 templates in harness/report/templates/).

Both templates get the same context: the content with every number already written as text, opening with the verdict
(harness.report.verdict). The HTML page adds what markdown cannot hold: the comparison gallery, the plots (accuracy
against trainable parameters and total training time, learning curves), hover texts and links to the run directories.
It is one self-contained file; every distinct picture is stored once (a CSS class per picture), as WebP.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from harness.compute import describe_hardware
from harness.metrics.protocols import PROTOCOLS
from harness.report import figures, paper_layout, stats, verdict
from harness.report.content import BEAT_METRICS, LEARNED, REFERENCE, Content
from harness.report.formats import (
    COST_TITLES,
    METRIC_TITLES,
    NONE,
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
from harness.report.frame import OURS, data_card_fingerprint, display
from harness.report.published import released_checkpoints
from harness.results import METRICS, read_gallery

TEMPLATES = Path(__file__).with_name("templates")
# Compute axes of the accuracy plots: trainable parameters (the frozen backbone is every method's, so counting it
# would pile them up) and the training time including the prerequisite stage (a VQ-VAE is part of SLATE's cost).
COMPUTE_AXES = {"trainable_parameters": "trainable parameters (log)",
                "total_train_seconds": "training seconds, stages included (log)"}
PLOT_METRICS = {m: METRIC_TITLES[m] for m in BEAT_METRICS}
CURVE_LOSS = "train_loss"


def markdown(content: Content, out_dir: str | Path | None = None) -> str:
    return _environment().get_template("report.md.j2").render(**context(content, out_dir))


def html(content: Content, out_dir: str | Path | None = None) -> str:
    pictures = Pictures()
    return _environment().get_template("report.html.j2").render(
        **context(content, out_dir), gallery=gallery(content, pictures), plots=plots(content),
        curve_plots=curve_plots(content), pictures=pictures.styles())


def context(content: Content, out_dir: str | Path | None = None) -> dict:
    table, cost = content.table, content.cost
    cost_columns = [c for c in cost.columns if c not in ("label", "dataset")]
    return {
        "title": f"Table {table.name}", "table": table, "fixed": fixed(content),
        "verdict": verdict.sentences(content),
        "protocol_explained": PROTOCOLS.get(table.protocol).explain(),
        "metrics": [METRIC_TITLES[m] for m in METRICS], "has_ours": content.has_ours,
        "has_published": content.has_published, "compare": content.has_ours and content.has_published,
        "delta_title": f"Δ {METRIC_TITLES[verdict.DELTA_METRIC]} vs best baseline",
        "rows": (rows := result_rows(content, reference=False)),
        "with_delta": any(r["delta"] != NONE for r in rows), "reference_rows": result_rows(content, reference=True),
        "reference_notes": [{"name": name, "text": text} for name, text in content.reference_notes],
        "other_protocols": [{"protocol": protocol,
                             "rows": [{"label": label, "cells": [stat_text(stats.get(m)) for m in METRICS]}
                                      for label, stats in rows]}
                            for protocol, rows in content.other_protocols],
        "beats": beats(content), "beat_metrics": [METRIC_TITLES[m] for m in BEAT_METRICS],
        "issues": content.issues, "missing": [f"{label}-{seed}" for label, seed in content.missing],
        "budget_rows": [{"label": b.label, "steps": listing([quantity(s) for s in b.steps]),
                         "batch_size": listing([quantity(s) for s in b.batch_size]),
                         "config_hash": listing(b.config_hash), "checkpoints": listing(b.checkpoints)}
                        for b in content.budgets],
        "data_cards": [{"dataset": c.dataset, "fingerprint": c.fingerprint, "cells": c.cells,
                        "fields": card_fields(c.card)} for c in content.data_cards],
        "cost_columns": [COST_TITLES.get(c, c) for c in cost_columns],
        "cost_rows": [{"label": r["label"], "values": [quantity(r[c]) for c in cost_columns]}
                      for _, r in cost.iterrows()],
        "tests": test_rows(content), "n_boot": content.options.n_boot, "boot_seed": content.options.boot_seed,
        "selection": selection_rows(content), "first_steps": first_steps(content),
        "provenance": provenance(content), "runs": run_links(content, out_dir),
        "released": [{**r, "cells": [f"{s['seed']}: epoch {s['epoch']} ({'last' if s['last'] else 'not last'})"
                                     for s in r["seeds"]]}
                     for r in released_checkpoints(content.published_meta)] if content.has_published else [],
        "paper": paper_layout.views(content),
    }


def result_rows(content: Content, reference: bool) -> list[dict]:
    """The main table's learned rows, or its reference rows (untrained, then trivial): per metric ours (marked
    best / second among comparable rows) and, with published numbers, theirs and ours − theirs; learned rows carry
    their Δ against the best baseline."""
    marks = verdict.marks(content) if not reference else {}
    deltas = verdict.baseline_deltas(content) if content.has_ours and not reference else {}
    out = []
    for r in content.rows:
        if (r.section != LEARNED) != reference:
            continue
        d = deltas.get(r.label)
        out.append({"label": r.label, "delta": _delta_text(d), "delta_hover": _delta_hover(d),
                    "cells": [{"ours": stat_text(r.ours[m]), "published": stat_text(r.published[m]),
                               "diff": signed(r.difference(m)), "mark": marks.get((r.label, m), "")}
                              for m in METRICS]})
    return out


def _delta_text(d) -> str:
    if d is None:
        return NONE
    if isinstance(d, str):
        return d
    ci = f" {interval(d.image.ci_low, d.image.ci_high)}" if d.image is not None else ""
    return f"{signed(d.diff)}{ci}"


def _delta_hover(d) -> str:
    if d is None or isinstance(d, str):
        return ""
    return f"{d.label} − {d.against}: {verdict.how_sure(d)}"


def beats(content: Content) -> dict:
    """The ✓/✗ grid: a trained row against its initialisation and each trivial row; the numbers on hover (HTML) and
    in footnotes (markdown)."""
    b = content.beats
    if b is None:
        return {}
    columns = ([OWN_INITIALISATION] if b.initialisation else []) + b.trivial
    rows, notes = [], []
    for label, cells in b.rows:
        out = []
        for column, failed in zip(columns, cells):
            if failed is None:
                out.append({"mark": NONE, "hover": "nothing to compare", "note": ""})
            elif not failed:
                out.append({"mark": "✓", "hover": f"{label} beats {column}", "note": ""})
            else:
                notes.append(f"{label} vs {column}: {beat_text(failed)}")
                out.append({"mark": "✗", "hover": beat_text(failed), "note": str(len(notes))})
        if any(cell is not None for cell in cells):  # rows without a result yet say nothing
            rows.append({"label": label, "cells": out})
    return {"columns": columns, "rows": rows, "notes": notes} if rows else {}


def fixed(content: Content) -> list[tuple[str, str]]:
    """What the table fixes for all its cells, in words."""
    table = content.table
    budget = table.budget
    steps = "each method's own steps" if budget.steps is None else f"{budget.steps} steps"
    batch = "its own batch size" if budget.batch_size is None else f"batch size {budget.batch_size}"
    protocol = PROTOCOLS.get(table.protocol)
    data = "generated by the harness (seeded; see the data card)" if table.data == "synthetic" else table.data
    items = [("table", f"{table.name}: {table.description}"), ("protocol", f"{protocol.name} — {protocol.summary}"),
             ("budget", f"{steps}; {batch}"), ("seeds", ", ".join(map(str, table.seeds))), ("data", data)]
    if content.has_published:
        items += [("published", f"{key} — {meta.get('protocol', '?')}") for key, meta in content.published_meta.items()]
    return items


def test_rows(content: Content) -> list[dict]:
    """The paired tests: per image a t-test, Wilcoxon and bootstrap CI; per seed a t-test and t-interval only."""
    dataset_of = {row.label: row.dataset for row in content.table.rows}
    return [{"dataset": dataset_of[t.a], "a": t.a, "b": t.b, "metric": METRIC_TITLES[t.metric], "level": t.level,
             "n": t.n, "mean_a": pct(t.mean_a), "mean_b": pct(t.mean_b), "diff": signed(t.mean_diff * 100),
             "ci": interval(t.ci_low, t.ci_high), "ci_kind": "bootstrap" if t.level == "image" else "t-interval",
             "t": number(t.t), "p_t": p_value(t.p_t), "w": number(t.w) if t.level == "image" else "",
             "p_w": p_value(t.p_w) if t.level == "image" else ""} for t in content.tests.itertuples()]


def selection_rows(content: Content) -> list[dict]:
    """Rule − last (and best-val − best-heldout) per method and metric, image CI and seed t-interval."""
    out = []
    for o in verdict.optimism(content):
        seeds = stats.seed_test(*stats.seed_pairs(content.main, o.delta.label, o.delta.against, o.metric))
        out.append({"method": o.method, "dataset": o.dataset, "comparison": f"{o.rule} − {o.baseline}",
                    "metric": METRIC_TITLES[o.metric], "diff": signed(o.delta.diff),
                    "image_ci": interval(o.delta.image.ci_low, o.delta.image.ci_high) if o.delta.image else NONE,
                    "seed_ci": interval(seeds.ci_low, seeds.ci_high), "seeds": f"{o.delta.seeds_ahead} of "
                                                                              f"{o.delta.n_seeds}"})
    return out


# ----- curves ------------------------------------------------------------------------------------------------


def curve_frame(content: Content) -> pd.DataFrame:
    """Every trained run's curve once (rows sharing a run — selection rules — are one run): label, dataset, seed,
    step, key, value; metrics in percent, loss terms as recorded."""
    rows = []
    for item in content.evaluated:
        if item.row.selection != "last":
            continue
        for point in item.record.get("curve") or []:
            for key, value in point.items():
                if key == "step" or value is None:
                    continue
                scale = 100 if key.removeprefix("heldout_") in METRICS else 1
                rows.append({"label": item.row.label, "dataset": item.row.dataset, "seed": item.seed,
                             "step": point["step"], "key": key, "value": value * scale})
    return pd.DataFrame(rows, columns=["label", "dataset", "seed", "step", "key", "value"])


def reference_lines(content: Content) -> pd.DataFrame:
    """The trivial rows' means (percent), as horizontal lines on the plots."""
    rows = []
    for r in content.rows:
        if r.section != REFERENCE:
            continue
        for metric in BEAT_METRICS:
            s = r.ours[metric]
            if s is not None and not math.isnan(s.mean_pct):
                rows.append({"dataset": r.row.dataset, "label": r.label, "metric": metric, "y": s.mean_pct})
    return pd.DataFrame(rows, columns=["dataset", "label", "metric", "y"])


def first_steps(content: Content) -> dict:
    """Per trained run and trivial row, the first validation step at which the mean over seeds of the run's curve
    exceeds the trivial row's mean, on each headline metric ("never" within the run)."""
    curves, references = curve_frame(content), reference_lines(content)
    if curves.empty or references.empty:
        return {}
    columns = list(dict.fromkeys(references["label"]))
    rows = []
    for (label, dataset), group in curves.groupby(["label", "dataset"], sort=False):
        cells = []
        for reference in columns:
            parts = []
            for metric in BEAT_METRICS:
                ref = references[(references["label"] == reference) & (references["dataset"] == dataset)
                                 & (references["metric"] == metric)]
                mean = group[group["key"] == metric].groupby("step")["value"].mean()
                if ref.empty or mean.empty:
                    parts.append(NONE)
                    continue
                above = mean[mean > ref["y"].iloc[0]]
                parts.append(str(int(above.index[0])) if len(above) else "never")
            cells.append(" / ".join(parts))
        rows.append({"label": label, "cells": cells})
    return {"columns": columns, "rows": rows, "metrics": " / ".join(PLOT_METRICS.values())}


def curve_plots(content: Content) -> list[dict]:
    curves, references = curve_frame(content), reference_lines(content)
    if curves.empty:
        return []
    out = []
    for dataset in dict.fromkeys(curves["dataset"]):
        titles = {**{m: f"validation {t} (%)" for m, t in PLOT_METRICS.items()},
                  **{f"heldout_{m}": f"held-out {t} (%)" for m, t in PLOT_METRICS.items()},
                  CURVE_LOSS: "training loss (mean between validations)"}
        uri = figures.curve_plot(curves[curves["dataset"] == dataset], references[references["dataset"] == dataset],
                                 titles=titles, dataset=dataset)
        if uri is not None:
            out.append({"title": f"Learning curves on {dataset}", "uri": uri})
    return out


def plots(content: Content) -> list[dict]:
    """Accuracy (ARI-fg and mBO) against each compute axis the costs have, the trivial rows as lines."""
    out = []
    references = reference_lines(content)
    for axis, title in COMPUTE_AXES.items():
        if axis not in content.cost:
            continue
        points = []
        for c in content.cost.itertuples():
            for metric in PLOT_METRICS:
                s = content.stat(OURS, c.label, metric)
                if s is not None and c.label in _trained_labels(content):
                    points.append({"dataset": c.dataset, "label": c.label, "metric": metric, "x": getattr(c, axis),
                                   "y": s.mean_pct, "y_err": s.std_pct})
        uri = figures.compute_plot(pd.DataFrame(points, columns=["dataset", "label", "metric", "x", "y", "y_err"]),
                                   references, x_title=title, metrics=PLOT_METRICS)
        if uri is not None:
            out.append({"title": f"Accuracy against {title.split(' (')[0]}", "uri": uri})
    return out


def _trained_labels(content: Content) -> set[str]:
    return {r.label for r in content.rows if r.section == LEARNED and r.row.selection == "last"}


# ----- the comparison gallery --------------------------------------------------------------------------------


class Pictures:
    """Every distinct picture of the page once, as a CSS class whose background is the picture."""

    def __init__(self):
        self.classes: dict[str, str] = {}

    def add(self, rgb) -> str:
        uri = figures.webp_data_uri(rgb)
        digest = hashlib.sha256(uri.encode()).hexdigest()[:12]
        return self.classes.setdefault(uri, f"p{digest}")

    def styles(self) -> list[tuple[str, str]]:
        return [(css, uri) for uri, css in self.classes.items()]


def segmentation_caption(record: dict) -> str:
    """What a row's panels show: the mask its config evaluates (decoder, aggregator, clustering, grid)."""
    return record["identity"].get("mask") or "segmentation"


def gallery(content: Content, pictures: Pictures) -> dict:
    """One comparison gallery: per seed, rows are images (the gallery images every record stored) and columns the
    ground truth and each trained and trivial row's segmentation, each panel with its ARI-fg; each row's best,
    median and worst of the shown images are marked."""
    size, limit = content.options.gallery_size, content.options.gallery_images
    shown = [e for e in content.evaluated if e.row.variant != "untrained" and e.row.selection == "last"]
    columns = list(dict.fromkeys(e.row.label for e in shown))
    seeds = []
    for seed in sorted({e.seed for e in shown}):
        records = {e.row.label: e for e in shown if e.seed == seed}
        galleries = {label: g for label, e in records.items() if (g := read_gallery(e.path)) is not None}
        if not galleries:
            continue
        keys = [str(k) for k in next(iter(galleries.values()))["keys"]][:limit]
        first = next(iter(galleries.values()))
        rows = [{"key": key, "image": "", "gt": "", "panels": {}} for key in keys]
        for i, row in enumerate(rows):
            image = figures.picture(first["image"][i], size)
            row["image"] = pictures.add(image)
            row["gt"] = pictures.add(figures.overlay(image, figures.resize_index(first["gt"][i], len(image))))
        for label, g in galleries.items():
            record = records[label].record
            mask = record["identity"].get("mask")
            masks = g["masks"].get(mask) if mask in g["masks"] else next(iter(g["masks"].values()))
            where = {str(k): j for j, k in enumerate(g["keys"])}
            per_image = record["per_image"]
            scores = {str(k): v if valid else None  # no foreground: ARI-fg undefined, no score and no rank
                      for k, v, valid in zip(per_image["keys"], per_image["ari_fg"], per_image["valid_fg"])}
            tags = rank_tags({key: scores.get(key) for key in keys if key in where})
            for row in rows:
                j = where.get(row["key"])
                if j is None:
                    continue
                image = figures.picture(g["image"][j], size)
                score = scores.get(row["key"])
                row["panels"][label] = {"css": pictures.add(figures.overlay(image, figures.resize_index(masks[j],
                                                                                                        len(image)))),
                                        "score": NONE if score is None else display(score * 100),
                                        "tag": tags.get(row["key"], "")}
        captions = {label: segmentation_caption(records[label].record) for label in galleries}
        seeds.append({"seed": seed, "rows": [{**r, "panels": [r["panels"].get(c) for c in columns]} for r in rows],
                      "captions": [captions.get(c, "") for c in columns]})
    return {"columns": columns, "seeds": seeds, "size": size} if seeds else {}


def rank_tags(scores: dict[str, float | None]) -> dict[str, str]:
    """best / median / worst of the images with a score (the median: the middle one, the lower of two)."""
    valid = sorted((s, k) for k, s in scores.items() if s is not None and s == s)
    if len(valid) < 3:
        return {}
    return {valid[-1][1]: "best", valid[(len(valid) - 1) // 2][1]: "median", valid[0][1]: "worst"}


# ----- provenance and links ----------------------------------------------------------------------------------


def provenance(content: Content) -> list[tuple[str, str]]:
    """Where the numbers come from, each fact with how many cells share it."""
    facts: dict[str, dict[str, int]] = {}

    def note(name: str, value) -> None:
        if value:
            facts.setdefault(name, {}).setdefault(str(value), 0)
            facts[name][str(value)] += 1

    for item in content.evaluated:
        identity = item.record["identity"]
        hardware = identity.get("hardware")
        note("commit", identity.get("versions", {}).get("git"))
        note("hardware", describe_hardware(hardware) if hardware else identity.get("device"))
        note("kernel library", hardware and f"linear layers: {hardware.get('linear')} — {hardware.get('linear_why')}")
        note("torch", identity.get("versions", {}).get("torch"))
        note("data card", f"{identity['dataset']}: {data_card_fingerprint(identity.get('data_card'))}")
        backbone = identity.get("backbone") or {}
        note("backbone weights", backbone.get("source") and f"{backbone.get('source')} "
                                                             f"sha256 {str(backbone.get('weights_sha256'))[:16]}")
    total = len(content.evaluated)
    return [(name, "; ".join(v if n == total else f"{v} ({n} of {total} cells)" for v, n in values.items()))
            for name, values in facts.items()]


def run_links(content: Content, out_dir: str | Path | None) -> list[dict]:
    """Per row and seed, links (relative to the report) to its record and, for trained cells, its run directory:
    config and logs (run.json, train.csv, val.csv, tensorboard/) and the evaluated checkpoint."""
    if out_dir is None:
        return []
    out = []
    for item in content.evaluated:
        links = [("record", _relative(item.path, out_dir))]
        checkpoint = (item.record["identity"].get("checkpoint") or {}).get("path")
        if checkpoint and item.row.variant == "trained":
            run_dir = Path(checkpoint).parent
            if run_dir.name == "checkpoints":
                run_dir = run_dir.parent
            links += [("run", _relative(run_dir, out_dir)), ("checkpoint", _relative(checkpoint, out_dir))]
            links += [(name, _relative(run_dir / name, out_dir)) for name in ("run.json", "train.csv")
                      if (run_dir / name).exists()]
        out.append({"cell": item.name, "links": links})
    return out


def _relative(path, out_dir) -> str:
    return Path(os.path.relpath(Path(path).resolve(), Path(out_dir).resolve())).as_posix()


def _environment() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html.j2"]),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
