"""The xlsx view of a report's content: the authors' layout (their acc-v3.xlsx, sheet `eval_multi`), plus further
sheets (summary, published against ours, other protocols, cost, paired tests, data cards, mixed cells).

`eval_multi`, for k metrics and groups of seeds (one group per table row), row 1 = headers (letters for k = 4,
as theirs):

    A            B..(1+k)    G     H..(3+2k)              M                    N..(5+3k)
    dias_r-x-42  0.80945343  mean  =AVERAGE(B2:B4)*100  =LEFT(A2,LEN(A2)-3)  =TEXT(H2,"0.0")&"±"&TEXT(H3,"0.0")
    dias_r-x-43  …           std   =STDEV(B2:B4)*100
    dias_r-x-44  …

(columns F and L stay empty; the mean, name and text cells sit on the first row of a group).

Values are written as the authors' eval_multi.csv holds them (`f"{x:.8f}"`, parsed back by the spreadsheet).
The statistics columns carry the number format '0.0_ ' from the first mean row to the last std row (in their
file the third row of every group but the last is formatted too). A group with a single seed still gets its
std row (Excel answers #DIV/0!, as it would for them). Column widths are theirs.

Every formula cell also holds its cached result, as the authors' file does (harness.report.xlsx_cache: openpyxl
cannot write one), so pandas and openpyxl's `data_only=True` read numbers; Excel and LibreOffice recalculate anyway.
A note on A1 (a cell comment: no cell changes) states the units.

Units: `eval_multi`'s per-seed values stay 0–1 (the authors' layout); every other metric value of the workbook is in
percent (points for differences), and each sheet holding them says so in its `unit` column (`cost` names its units
in its headers; the tests' statistics and p-values have none). Headers are unique in
every sheet but `eval_multi`, whose header row repeats the metric names three times, as theirs does.
"""

from __future__ import annotations

import io

import pandas as pd
from openpyxl import Workbook
from openpyxl.comments import Comment
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.dimensions import ColumnDimension

from harness.metrics.aggregate import format_mean_std, seed_mean_std
from harness.report import paper_layout
from harness.report.content import Content
from harness.report.formats import card_fields, stat_text
from harness.report.frame import OURS
from harness.report.published import SOURCE as PUBLISHED
from harness.report.published import pre_v3_labels
from harness.report.xlsx_cache import ExcelError, with_cached_values
from harness.results import METRICS

SHEET = "eval_multi"
HEADERS = {"ari": "ari", "ari_fg": "arifg", "mbo": "mbo", "miou": "miou"}  # the authors' column names
STAT_FORMAT = "0.0_ "
LABEL_WIDTH, VALUE_WIDTH = 17.1111111111111, 11.7777777777778  # their column widths, as stored
STAT_WIDTH, NAME_WIDTH = 12.8888888888889, 14.1111111111111
DEFAULT_COL_WIDTH, DEFAULT_ROW_HEIGHT = 10, 14.4
PERCENT = "%"  # the unit column of every sheet but eval_multi
DIV0 = ExcelError("#DIV/0!")  # what AVERAGE of no value and STDEV of fewer than two give


def csv_value(value: float | None) -> float | None:
    """A 0–1 value as their eval_multi.csv stores it: 8 decimals."""
    return None if value is None or pd.isna(value) else float(f"{value:.8f}")


def percent(value: float | None) -> float | None:
    """A 0–1 value in percent, for every view but eval_multi (rounded to 10 decimals: ×100 adds binary noise)."""
    return None if value is None or pd.isna(value) else round(float(value) * 100, 10)


def write_eval_multi(ws, groups: list[tuple[str, list[tuple[int, dict]]]], metrics=METRICS) -> dict[str, object]:
    """Fill `ws` with `groups` = [(label, [(seed, {metric: 0–1 value or None})])] in the authors' layout; returns
    the formulas' results {coordinate: value} for harness.report.xlsx_cache, computed as the spreadsheet does
    from the values the cells hold (AVERAGE and STDEV skip empty cells)."""
    k = len(metrics)
    value_col, tag_col, stat_col, name_col = 2, k + 3, k + 4, 2 * k + 5
    text_col = name_col + 1
    for j, metric in enumerate(metrics):
        for first in (value_col, stat_col, text_col):
            ws.cell(1, first + j, HEADERS.get(metric, metric))
    ws["A1"].comment = Comment(unit_note(metrics), "harness")
    cached: dict[str, object] = {}
    row = 2
    stat_rows = []
    for label, seeds in groups:
        top, bottom = row, row + len(seeds) - 1
        for i, (seed, values) in enumerate(seeds):
            ws.cell(row + i, 1, f"{label}-{seed}")
            for j, metric in enumerate(metrics):
                ws.cell(row + i, value_col + j, csv_value(values.get(metric)))
        ws.cell(top, tag_col, "mean")
        ws.cell(top + 1, tag_col, "std")
        for j, metric in enumerate(metrics):
            data = get_column_letter(value_col + j)
            stat = get_column_letter(stat_col + j)
            span = f"{data}{top}:{data}{max(bottom, top)}"
            mean, std = ws.cell(top, stat_col + j), ws.cell(top + 1, stat_col + j)
            text = ws.cell(top, text_col + j)
            mean.value, std.value = f"=AVERAGE({span})*100", f"=STDEV({span})*100"
            text.value = f'=TEXT({stat}{top},"0.0")&"±"&TEXT({stat}{top + 1},"0.0")'
            cached[mean.coordinate], cached[std.coordinate] = _statistics([csv_value(v.get(metric))
                                                                           for _, v in seeds])
            cached[text.coordinate] = _text(cached[mean.coordinate], cached[std.coordinate])
        suffix = len(str(seeds[0][0])) + 1 if seeds else 0
        name = ws.cell(top, name_col, f"=LEFT(A{top},LEN(A{top})-{suffix})")
        cached[name.coordinate] = label if seeds else ""
        stat_rows.append(top)
        row += max(len(seeds), 2)
    if stat_rows:
        for r in range(stat_rows[0], stat_rows[-1] + 2):
            for j in range(k):
                ws.cell(r, stat_col + j).number_format = STAT_FORMAT
    _widths(ws, [(1, 1, LABEL_WIDTH), (value_col, value_col + k - 1, VALUE_WIDTH),
                 (stat_col, stat_col + k - 1, STAT_WIDTH), (name_col, name_col, NAME_WIDTH)])
    ws.sheet_format.defaultColWidth = DEFAULT_COL_WIDTH
    ws.sheet_format.defaultRowHeight = DEFAULT_ROW_HEIGHT
    return cached


def unit_note(metrics=METRICS) -> str:
    """The units of eval_multi's columns, for its note."""
    k = len(metrics)

    def span(first: int) -> str:
        return f"{get_column_letter(first)}–{get_column_letter(first + k - 1)}"

    return (f"Units: {span(2)} per-seed values as 0–1 fractions (the authors' layout); {span(k + 4)} mean and "
            f"sample std over the seeds ×100, in percent; {span(2 * k + 6)} the same as text, one decimal.")


def _statistics(values: list[float | None]) -> tuple[object, object]:
    """AVERAGE(...)*100 and STDEV(...)*100 of a column's cells, errors as the spreadsheet gives them."""
    present = [v for v in values if v is not None]
    if not present:
        return DIV0, DIV0
    mean, std = seed_mean_std(present)
    return mean, DIV0 if pd.isna(std) else std


def _text(mean, std) -> object:
    """TEXT(mean,"0.0")&"±"&TEXT(std,"0.0"): the first error operand, else the text."""
    for operand in (mean, std):
        if isinstance(operand, ExcelError):
            return operand
    return format_mean_std(mean, std)


def _widths(ws, spans) -> None:
    for first, last, width in spans:
        letter = get_column_letter(first)
        ws.column_dimensions[letter] = ColumnDimension(ws, index=letter, min=first, max=last, width=width)


def write_frame(wb: Workbook, title: str, frame: pd.DataFrame) -> None:
    """A plain sheet: header row, then the frame's rows (for everything beyond the authors' layout)."""
    repeated = frame.columns[frame.columns.duplicated()].tolist()
    if repeated:
        raise ValueError(f"sheet {title!r}: repeated headers {repeated}")
    ws = wb.create_sheet(title)
    ws.append([str(c) for c in frame.columns])
    for values in frame.itertuples(index=False):
        ws.append([_cell(v) for v in values])
    for j, column in enumerate(frame.columns, start=1):
        longest = max([len(str(column)), *(len(str(_cell(v) or "")) for v in frame[column])])
        ws.column_dimensions[get_column_letter(j)].width = min(max(10, longest + 2), 60)
    ws.freeze_panes = "A2"


def _cell(value):
    if isinstance(value, (list, tuple, dict)):
        return ", ".join(map(str, value)) if not isinstance(value, dict) else str(value)
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if hasattr(value, "item"):  # numpy / pandas scalars
        return value.item()
    return value


def save(wb: Workbook, cached: dict[str, dict[str, object]]) -> bytes:
    """The workbook in memory with the formulas' results `cached` ({sheet: {coordinate: value}}) stored."""
    buf = io.BytesIO()
    wb.save(buf)
    return with_cached_values(buf.getvalue(), cached)


def workbook_bytes(groups, sheets: list[tuple[str, pd.DataFrame]]) -> bytes:
    """The whole workbook in memory (written to disk atomically by the caller)."""
    wb = Workbook()
    ws = wb.active
    ws.title = SHEET
    cached = write_eval_multi(ws, groups)
    for title, frame in sheets:
        write_frame(wb, title, frame)
    return save(wb, {SHEET: cached})


def report_bytes(content: Content) -> bytes:
    """The report's workbook: `eval_multi` holds our per-seed values under the table's protocol (the published
    ones when there are none of ours), in report row order; a sheet per further part the content has."""
    sheets = [("summary", summary_sheet(content))]
    if content.has_ours and content.has_published:
        sheets.append(("published_vs_ours", comparison_sheet(content)))
        if content.seeds_published:
            sheets.append(("published_per_seed", _eval_multi_frame(content.seeds_published)))
    other = summary_sheet(content, other=True)
    if len(other):
        sheets.append(("other_protocols", other))
    if len(content.cost):
        sheets.append(("cost", content.cost))
    if len(content.tests):
        sheets.append(("paired_tests", tests_sheet(content.tests)))
    if content.data_cards:
        sheets.append(("data_cards", pd.DataFrame([{"dataset": c.dataset, "fingerprint": c.fingerprint,
                                                    "cells": c.cells, **dict(card_fields(c.card))}
                                                   for c in content.data_cards])))
    if content.issues:
        sheets.append(("mixed_cells", pd.DataFrame({"issue": content.issues})))
    for layout in paper_layout.layouts(content):
        sheets.append((f"paper_{layout.source}", paper_sheet(layout)))
    return workbook_bytes(content.seeds_ours if content.has_ours else content.seeds_published, sheets)


def summary_sheet(content: Content, other: bool = False) -> pd.DataFrame:
    """The seed statistics of the table (ours under its protocol, and the published), or with `other` ours under
    other protocols; `pre_v3` marks the published rows made under the protocol before v3."""
    s, protocol = content.summary, content.table.protocol
    mask = (s["protocol"] != protocol) & (s["source"] == OURS) if other else \
        (s["protocol"] == protocol) | (s["source"] == PUBLISHED)
    columns = ["source", "label", "method", "dataset", "protocol", "metric", "n_seeds", "seeds", "mean_pct",
               "std_pct", "text"]
    sheet = s.loc[mask, columns].reset_index(drop=True)
    pre_v3 = pre_v3_labels(content.frame, content.published_meta)
    sheet["pre_v3"] = [label in pre_v3 if source == PUBLISHED else None
                       for source, label in zip(sheet["source"], sheet["label"])]
    sheet["unit"] = PERCENT
    return sheet


def comparison_sheet(content: Content) -> pd.DataFrame:
    rows = []
    for row in content.rows:
        for metric in METRICS:
            ours, theirs = row.ours[metric], row.published[metric]
            if ours is None or theirs is None:
                continue
            rows.append({"label": row.label, "metric": metric, "ours_mean": ours.mean_pct, "ours_std": ours.std_pct,
                         "published_mean": theirs.mean_pct, "published_std": theirs.std_pct,
                         "difference": row.difference(metric), "ours": stat_text(ours),
                         "published": stat_text(theirs), "unit": PERCENT})
    return pd.DataFrame(rows)


def tests_sheet(tests: pd.DataFrame) -> pd.DataFrame:
    """The paired tests with their means, difference and interval in percent (points), the statistics as they are."""
    scaled = {c: f"{c}_pct" for c in ("mean_a", "mean_b", "mean_diff", "ci_low", "ci_high")}
    sheet = tests.assign(**{c: tests[c].map(percent) for c in scaled}).rename(columns=scaled)
    return sheet.assign(unit=PERCENT)


def paper_sheet(layout: paper_layout.PaperLayout) -> pd.DataFrame:
    """The paper's layout as numbers: a row per method, per data set and metric its mean and std (percent) and
    mark (best / second, as the main table marks it), per data set the note of a cell made under another protocol."""
    rows = []
    for row in layout.rows:
        out = {"row": row.name, "section": row.section}
        for dataset in layout.datasets:
            for metric in layout.metrics:
                cell = row.cells.get((dataset, metric))
                stat = cell.stat if cell else None
                out[f"{dataset} {metric} mean"] = stat.mean_pct if stat else None
                out[f"{dataset} {metric} std"] = stat.std_pct if stat else None
                out[f"{dataset} {metric} mark"] = cell.rank if cell else None
            out[f"{dataset} note"] = layout.note(row, dataset)
        rows.append({**out, "unit": PERCENT})
    return pd.DataFrame(rows)


def _eval_multi_frame(groups) -> pd.DataFrame:
    return pd.DataFrame([{"row": f"{label}-{seed}", **{HEADERS[m]: percent(csv_value(v.get(m))) for m in METRICS},
                          "unit": PERCENT} for label, seeds in groups for seed, v in seeds])
