"""The LaTeX view: a table in the paper's layout (harness.report.paper_layout), ready to `\\input` into a paper.

Methods as rows, the data sets as `\\multicolumn` groups of ARI, ARI-fg, mBO and mIoU; each cell mean±std in percent
with the std in \\scriptsize; per column the best trained row in bold and the second best underlined; a published
cell made under the pre-v3 protocol carries its source's mark, explained in the caption; booktabs rules, a
`\\midrule` before the untrained and reference rows. Needs `\\usepackage{booktabs}`. One table per source of numbers
(ours under the table's protocol, then the published), in one file.
"""

from __future__ import annotations

import math
import re

from harness.report.content import LEARNED, Content
from harness.report.formats import NONE
from harness.report.frame import OURS, display
from harness.report.paper_layout import PaperLayout, dataset_title, layouts
from harness.report.verdict import BEST, SECOND

METRIC_HEADERS = {"ari": "ARI", "ari_fg": r"ARI\textsubscript{fg}", "mbo": "mBO", "miou": "mIoU"}
MARK_COMMANDS = {"†": r"\dagger", "‡": r"\ddagger", "§": r"\S", "¶": r"\P"}
_SPECIAL = re.compile(r"([\\&%$#_{}~^])")
_REPLACEMENTS = {"\\": r"\textbackslash{}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_TEXT = str.maketrans({"±": r"$\pm$", "×": r"$\times$", "–": "--", "—": "---", "→": r"$\rightarrow$",
                       "≤": r"$\leq$", "≥": r"$\geq$", "²": r"\textsuperscript{2}"})


def escape(text: str) -> str:
    """`text` as LaTeX prints it: its special characters escaped, a few non-ASCII signs as commands."""
    escaped = _SPECIAL.sub(lambda m: _REPLACEMENTS.get(m.group(1), "\\" + m.group(1)), text)
    return escaped.translate(_TEXT)


def document(content: Content) -> str:
    """Every paper-layout table of the report, one after the other."""
    tables = [table(layout) for layout in layouts(content)]
    header = [f"% Table {content.table.name} in the paper's layout, written by `python -m harness report`.",
              r"% Needs \usepackage{booktabs}. Values: percent, mean and sample std over seeds."]
    return "\n".join(header + tables)


def table(layout: PaperLayout) -> str:
    k = len(layout.metrics)
    columns = "l" + " ".join("c" * k for _ in layout.datasets)
    groups = " & ".join(rf"\multicolumn{{{k}}}{{c}}{{{escape(dataset_title(d))}}}" for d in layout.datasets)
    rules = " ".join(rf"\cmidrule(lr){{{2 + i * k}-{1 + (i + 1) * k}}}" for i in range(len(layout.datasets)))
    metrics = " & ".join(METRIC_HEADERS.get(m, escape(m)) for _ in layout.datasets for m in layout.metrics)
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{caption(layout)}}}",
             rf"\label{{tab:acc-{escape(layout.table_name)}-{layout.source}}}", r"\setlength{\tabcolsep}{3pt}",
             rf"\begin{{tabular}}{{{columns}}}", r"\toprule", rf" & {groups} \\", rules,
             rf"Method & {metrics} \\", r"\midrule"]
    previous = None
    for row in layout.rows:
        if previous == LEARNED and row.section != LEARNED:
            lines.append(r"\midrule")
        previous = row.section
        cells = [cell(row.cells.get((d, m))) for d in layout.datasets for m in layout.metrics]
        lines.append(f"{escape(row.name)} & " + " & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def cell(entry) -> str:
    """mean{\\scriptsize±std} (the mean alone for one seed), bold or underlined by rank, then the mark of a pre-v3
    source."""
    if entry is None:
        return escape(NONE)
    stat = entry.stat
    text = escape(display(stat.mean_pct))
    if not math.isnan(stat.std_pct):  # one seed: no std
        text += rf"{{\scriptsize$\pm${escape(display(stat.std_pct))}}}"
    if entry.rank == BEST:
        text = rf"\textbf{{{text}}}"
    elif entry.rank == SECOND:
        text = rf"\underline{{{text}}}"
    if entry.mark:
        text += rf"$^{{{MARK_COMMANDS[entry.mark]}}}$"
    return text


def caption(layout: PaperLayout) -> str:
    whose = (f"Our results of table {escape(layout.table_name)} ({escape(layout.protocol)} protocol)"
             if layout.source == OURS else f"The published numbers of table {escape(layout.table_name)}")
    parts = [(f"{whose}, in percent (\\%): mean$\\pm$sample std over seeds. Among the trained methods of each "
              "column, \\textbf{bold}: best, \\underline{underlined}: second best; reference rows are not ranked.")]
    for f in layout.footnotes:
        parts.append(rf"$^{{{MARK_COMMANDS[f.mark]}}}$Pre-v3 protocol, not comparable ({escape(f.protocol)}); "
                     rf"source: {escape('; '.join(f.origins))}.")
    return " ".join(parts)
