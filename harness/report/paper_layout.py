"""A table in the paper's layout: a row per method, the data sets as column groups of ARI, ARI-fg, mBO and mIoU,
mean±std in percent; per column the best and second-best trained rows, and every published cell made under the
protocol before v3 marked with its source.

Rows of one method on several data sets (the same variant, checkpoint selection and overrides) make one paper row.
Best and second are the main table's marks (harness.report.verdict.marks: trained rows of one data set and selection
rule); a marked pre-v3 cell is ranked too, as the main table ranks it, and its mark says it is not comparable.

The views: the md/html reports' paper-layout section for tables over several data sets (templates
paper_layout.*.j2; a one-data-set table's main table has this shape already), the xlsx sheets `paper_ours` /
`paper_published`, and the LaTeX table (harness.report.latex) for every table.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.report import verdict
from harness.report.content import LEARNED, Content, Stat, ordered_rows, section
from harness.report.formats import METRIC_TITLES, stat_text
from harness.report.frame import OURS
from harness.report.published import SOURCE as PUBLISHED
from harness.report.published import pre_v3_labels
from harness.results import METRICS
from harness.tables import Row

MARKS = ("†", "‡", "§", "¶")  # one per published source with pre-v3 cells, in order of appearance
DATASET_TITLES = {"clevrtex": "ClevrTex", "coco": "COCO", "voc": "VOC"}
SOURCE_TITLES = {OURS: "ours", PUBLISHED: "published"}


@dataclass(frozen=True)
class Cell:
    stat: Stat
    mark: str  # "" or the mark of the source that made the number under the pre-v3 protocol
    rank: str | None  # verdict.BEST or verdict.SECOND, as the main table marks the row's number, else None


@dataclass(frozen=True)
class PaperRow:
    name: str
    section: str  # harness.report.content.LEARNED, UNTRAINED or REFERENCE
    labels: dict[str, str]  # data set → the label of the table's row
    cells: dict[tuple[str, str], Cell]  # (data set, metric) → its cell, where there is a number


@dataclass(frozen=True)
class Footnote:
    mark: str
    key: str  # the published source (results/published/published.json)
    protocol: str  # as the source's _meta states it
    origins: tuple[str, ...]  # where its marked numbers come from
    labels: tuple[str, ...]  # the marked rows of the table


@dataclass(frozen=True)
class PaperLayout:
    source: str  # OURS or PUBLISHED
    table_name: str
    protocol: str
    datasets: tuple[str, ...]
    metrics: tuple[str, ...]
    rows: list[PaperRow]
    footnotes: list[Footnote]

    def note(self, row: PaperRow, dataset: str) -> str | None:
        """What the mark of `row` on `dataset` means, or None."""
        marks = {c.mark for (d, _), c in row.cells.items() if d == dataset and c.mark}
        return "; ".join(f"{f.mark} pre-v3 protocol ({f.key})" for f in self.footnotes if f.mark in marks) or None


def layouts(content: Content, min_datasets: int = 1) -> list[PaperLayout]:
    """The paper layouts of ours (under the table's protocol) and of the published numbers, those that exist and
    span at least `min_datasets` data sets."""
    found = [build(content, source) for source in (OURS, PUBLISHED)]
    return [layout for layout in found if layout is not None and len(layout.datasets) >= min_datasets]


def build(content: Content, source: str) -> PaperLayout | None:
    """One source's numbers in the paper's layout (None if it has none)."""
    marked = pre_v3_labels(content.frame, content.published_meta) if source == PUBLISHED else {}
    marks = dict(zip(dict.fromkeys(marked.values()), MARKS))
    groups: dict[tuple, list[Row]] = {}
    for row in ordered_rows(content.table):
        if any(content.stat(source, row.label, m) is not None for m in METRICS):
            groups.setdefault((row.method, row.variant, row.selection, row.overrides), []).append(row)
    if not groups:
        return None
    present = {row.dataset for rows in groups.values() for row in rows}
    datasets = tuple(d for d in dict.fromkeys(r.dataset for r in content.table.rows) if d in present)
    names = _names(list(groups.values()))
    paper_rows = []
    for name, rows in zip(names, groups.values()):
        cells = {}
        for row in rows:
            for metric in METRICS:
                stat = content.stat(source, row.label, metric)
                if stat is not None:
                    cells[(row.dataset, metric)] = Cell(stat, marks.get(marked.get(row.label), ""), None)
        paper_rows.append(PaperRow(name, section(rows[0]), {r.dataset: r.label for r in rows}, cells))
    paper_rows = _ranked(paper_rows, content, source)
    footnotes = []
    for key, mark in marks.items():
        labels = tuple(label for label, k in marked.items() if k == key)
        origins = content.frame.loc[content.frame["label"].isin(labels) & (content.frame["source"] == PUBLISHED)
                                    & (content.frame["published_table"] == key), "origin"]
        footnotes.append(Footnote(mark, key, str(content.published_meta.get(key, {}).get("protocol", "?")),
                                  tuple(dict.fromkeys(origins.dropna())), labels))
    return PaperLayout(source, content.table.name, content.table.protocol, datasets, METRICS, paper_rows, footnotes)


def _ranked(rows: list[PaperRow], content: Content, source: str) -> list[PaperRow]:
    marks = verdict.marks(content, of=source)
    return [PaperRow(row.name, row.section, row.labels,
                     {(d, m): Cell(c.stat, c.mark, marks.get((row.labels[d], m))) for (d, m), c in row.cells.items()})
            for row in rows]


def _names(groups: list[list[Row]]) -> list[str]:
    """A paper row's name: its rows' common label, else the method (with its variant and selection); all the labels
    where that would not be unique."""
    names = []
    for rows in groups:
        labels = list(dict.fromkeys(r.label for r in rows))
        first = rows[0]
        names.append(labels[0] if len(labels) == 1 else first.method
                     + ("-untrained" if first.variant == "untrained" else "")
                     + ("" if first.selection == "last" else f"@{first.selection}"))
    return [name if names.count(name) == 1 else " / ".join(dict.fromkeys(r.label for r in rows))
            for name, rows in zip(names, groups)]


def dataset_title(dataset: str) -> str:
    return DATASET_TITLES.get(dataset, dataset)


def views(content: Content) -> list[dict]:
    """The md/html section's context: each layout over several data sets with its numbers written as text."""
    return [view(layout) for layout in layouts(content, min_datasets=2)]


def view(layout: PaperLayout) -> dict:
    return {
        "source": SOURCE_TITLES[layout.source],
        "groups": [dataset_title(d) for d in layout.datasets],
        "metrics": [METRIC_TITLES[m] for m in layout.metrics],
        "rows": [{"name": row.name, "learned": row.section == LEARNED,
                  "cells": [_cell_view(row.cells.get((d, m))) for d in layout.datasets for m in layout.metrics]}
                 for row in layout.rows],
        "footnotes": [{"mark": f.mark, "key": f.key, "protocol": f.protocol, "origins": list(f.origins),
                       "labels": list(f.labels)} for f in layout.footnotes],
    }


def _cell_view(cell: Cell | None) -> dict:
    if cell is None:
        return {"text": stat_text(None), "mark": "", "rank": None}
    return {"text": stat_text(cell.stat), "mark": cell.mark, "rank": cell.rank}
