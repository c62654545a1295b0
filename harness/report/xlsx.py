"""The xlsx report in the authors' layout (their acc-v3.xlsx, sheet `eval_multi`), plus further sheets.

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


def seed_groups(frame: pd.DataFrame, labels: list[str]) -> list[tuple[str, list[tuple[int, dict]]]]:
    """The per-seed rows of a tidy frame (one source, one protocol) grouped by label in table order."""
    groups = []
    for label in labels:
        rows = frame[(frame["label"] == label) & frame["seed"].notna()]
        if rows.empty:
            continue
        seeds = []
        for seed in sorted(rows["seed"].unique()):
            cell = rows[rows["seed"] == seed]
            seeds.append((int(seed), dict(zip(cell["metric"], cell["value"]))))
        groups.append((label, seeds))
    return groups


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
