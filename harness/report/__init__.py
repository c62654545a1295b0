"""Reports: result records (and the authors' published numbers) → one tidy frame → the table in the authors'
xlsx layout, markdown and a self-contained HTML page (mask galleries, accuracy against compute, paired tests),
and the drift check against committed golden values.

    from harness.report import render_table
    frame, paths = render_table("v3", "runs", "reports", published=True)
"""

from harness.report.frame import check_uniform, find_records, summarise, tidy_frame
from harness.report.render import RenderResult, render_table, text_table
from harness.report.stats import paired_test

__all__ = ["render_table", "RenderResult", "text_table", "find_records", "tidy_frame", "check_uniform", "summarise", "paired_test"]
