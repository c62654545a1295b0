"""The plain-text view printed after `report` and `reproduce`: the main numbers, learned rows first, the
reference rows (untrained initialisations, trivial methods) under their own heading."""

from __future__ import annotations

import pandas as pd

from harness.report.content import LEARNED, result_rows
from harness.report.formats import METRIC_TITLES, stat_text
from harness.report.frame import summarise
from harness.tables import Table

REFERENCE_HEADING = "reference rows (untrained and trivial):"


def text_table(frame: pd.DataFrame, table: Table) -> str:
    """Ours under the table's protocol, else the published numbers, as an aligned grid in report row order."""
    rows = result_rows(table, summarise(frame))
    ours = [r for r in rows if any(s is not None for s in r.ours.values())]
    if ours:
        rows, title, shown = ours, f"ours ({table.protocol}):", [r.ours for r in ours]
    else:
        title, shown = f"published ({', '.join(table.published)}):", [r.published for r in rows]
    grid = pd.DataFrame([[stat_text(stats[m]) for m in METRIC_TITLES] for stats in shown],
                        index=[r.label for r in rows], columns=list(METRIC_TITLES.values()))
    lines = grid.to_string().splitlines() if rows else []
    first_reference = next((i for i, r in enumerate(rows) if r.section != LEARNED), None)
    if first_reference is not None:
        lines.insert(first_reference + 1, REFERENCE_HEADING)  # + 1: the header line
    return "\n".join([title, *lines])
