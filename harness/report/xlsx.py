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

openpyxl writes formulas without cached results: a viewer that does not recalculate (or a reader using
openpyxl's `data_only=True`) sees empty cells. Excel and LibreOffice recalculate on opening; to store cached
values, recalculate headless, e.g. `soffice --headless --convert-to xlsx --outdir OUT reports/acc-v3.xlsx`.
"""

from __future__ import annotations

import io

import pandas as pd
from openpyxl import Workbook
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.dimensions import ColumnDimension

from harness.report.content import Content
from harness.report.formats import card_fields, stat_text
from harness.report.frame import OURS
from harness.report.published import SOURCE as PUBLISHED
from harness.results import METRICS

SHEET = "eval_multi"
HEADERS = {"ari": "ari", "ari_fg": "arifg", "mbo": "mbo", "miou": "miou"}  # the authors' column names
STAT_FORMAT = "0.0_ "
LABEL_WIDTH, VALUE_WIDTH = 17.1111111111111, 11.7777777777778  # their column widths, as stored
STAT_WIDTH, NAME_WIDTH = 12.8888888888889, 14.1111111111111
DEFAULT_COL_WIDTH, DEFAULT_ROW_HEIGHT = 10, 14.4


def csv_value(value: float | None) -> float | None:
    """A 0–1 value as their eval_multi.csv stores it: 8 decimals."""
    return None if value is None or pd.isna(value) else float(f"{value:.8f}")


def write_eval_multi(ws, groups: list[tuple[str, list[tuple[int, dict]]]], metrics=METRICS) -> None:
    """Fill `ws` with `groups` = [(label, [(seed, {metric: 0–1 value or None})])] in the authors' layout."""
    k = len(metrics)
    value_col, tag_col, stat_col, name_col = 2, k + 3, k + 4, 2 * k + 5
    text_col = name_col + 1
    for j, metric in enumerate(metrics):
        for first in (value_col, stat_col, text_col):
            ws.cell(1, first + j, HEADERS.get(metric, metric))
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
        for j in range(k):
            data = get_column_letter(value_col + j)
            stat = get_column_letter(stat_col + j)
            span = f"{data}{top}:{data}{max(bottom, top)}"
            ws.cell(top, stat_col + j, f"=AVERAGE({span})*100")
            ws.cell(top + 1, stat_col + j, f"=STDEV({span})*100")
            ws.cell(top, text_col + j, f'=TEXT({stat}{top},"0.0")&"±"&TEXT({stat}{top + 1},"0.0")')
        suffix = len(str(seeds[0][0])) + 1 if seeds else 0
        ws.cell(top, name_col, f"=LEFT(A{top},LEN(A{top})-{suffix})")
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


def _widths(ws, spans) -> None:
    for first, last, width in spans:
        letter = get_column_letter(first)
        ws.column_dimensions[letter] = ColumnDimension(ws, index=letter, min=first, max=last, width=width)


def write_frame(wb: Workbook, title: str, frame: pd.DataFrame) -> None:
    """A plain sheet: header row, then the frame's rows (for everything beyond the authors' layout)."""
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


def workbook_bytes(groups, sheets: list[tuple[str, pd.DataFrame]]) -> bytes:
    """The whole workbook in memory (written to disk atomically by the caller)."""
    wb = Workbook()
    ws = wb.active
    ws.title = SHEET
    write_eval_multi(ws, groups)
    for title, frame in sheets:
        write_frame(wb, title, frame)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


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
        sheets.append(("paired_tests", content.tests))
    if content.data_cards:
        sheets.append(("data_cards", pd.DataFrame([{"dataset": c.dataset, "fingerprint": c.fingerprint,
                                                    "cells": c.cells, **dict(card_fields(c.card))}
                                                   for c in content.data_cards])))
    if content.issues:
        sheets.append(("mixed_cells", pd.DataFrame({"issue": content.issues})))
    return workbook_bytes(content.seeds_ours if content.has_ours else content.seeds_published, sheets)


def summary_sheet(content: Content, other: bool = False) -> pd.DataFrame:
    """The seed statistics of the table (ours under its protocol, and the published), or with `other` ours under
    other protocols."""
    s, protocol = content.summary, content.table.protocol
    mask = (s["protocol"] != protocol) & (s["source"] == OURS) if other else \
        (s["protocol"] == protocol) | (s["source"] == PUBLISHED)
    columns = ["source", "label", "method", "dataset", "protocol", "metric", "n_seeds", "seeds", "mean_pct",
               "std_pct", "text"]
    return s.loc[mask, columns].reset_index(drop=True)


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
                         "published": stat_text(theirs)})
    return pd.DataFrame(rows)


def _eval_multi_frame(groups) -> pd.DataFrame:
    return pd.DataFrame([{"row": f"{label}-{seed}", **{HEADERS[m]: csv_value(v.get(m)) for m in METRICS}}
                         for label, seeds in groups for seed, v in seeds])
