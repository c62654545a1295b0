"""Reports: result records (and the authors' published numbers) → one tidy frame (frame) → what the report says
(content) → its views: the table in the authors' xlsx layout (xlsx), markdown and a self-contained HTML page with
mask galleries, accuracy against compute and paired tests (pages), the printed text table (text); and the drift
check against committed golden values (drift).

    from harness.report import render_table
    frame, paths = render_table("v3", "runs", "reports", published=True)
"""

from harness.report.frame import check_uniform, find_records, summarise, tidy_frame
from harness.report.render import RenderResult, render_table
from harness.report.stats import paired_test
from harness.report.text import text_table

__all__ = ["render_table", "RenderResult", "text_table", "find_records", "tidy_frame", "check_uniform", "summarise",
"paired_test"]
