"""`render_table`: a table's results (and/or the published numbers) → reports/acc-<T>.xlsx, .md and .html.

harness.report.content decides what the report says; the views (harness.report.xlsx, harness.report.pages)
write it. Everything is rendered in memory first and only then written, each file atomically: a failure anywhere
(a bad record, a corrupt gallery, a template error) leaves the previous reports as they were.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pandas as pd

from harness.io import atomic_write_bytes
from harness.report import pages, xlsx
from harness.report.content import Options, build
from harness.report.published import PUBLISHED_FILE
from harness.tables import TABLES, Table


class RenderResult(NamedTuple):
    frame: pd.DataFrame  # the tidy frame (ours and published)
    paths: dict  # {"xlsx" | "md" | "html": Path}


def render_table(table: str | Table, results_dir: str | Path | None = None, out_dir: str | Path = "reports",
                 published: bool = False, *, published_path: str | Path = PUBLISHED_FILE, allow_mixed: bool = False,
                 compare: list[tuple[str, str]] | None = None, gallery_images: int = 8, gallery_size: int = 112,
                 n_boot: int = 10_000, boot_seed: int = 0) -> RenderResult:
    """Aggregate `table` from the records under `results_dir` (and the published numbers if `published`) and
    write out_dir/acc-<T>.{xlsx,md,html}. With `published` and no records the published per-seed values alone
    are rendered in the authors' layout (the v3 case). `compare`: pairs of row labels or method names for
    the paired tests (default: per dataset, the table's first learned row against each other learned row)."""
    table = TABLES.get(table) if isinstance(table, str) else table
    options = Options(allow_mixed, compare, gallery_images, gallery_size, n_boot, boot_seed)
    content = build(table, results_dir, published, published_path, options)
    out_dir = Path(out_dir)
    paths = {kind: out_dir / f"acc-{table.name}.{kind}" for kind in ("xlsx", "md", "html")}
    rendered = {"xlsx": xlsx.report_bytes(content), "md": pages.markdown(content, out_dir).encode(),
                "html": pages.html(content, out_dir).encode()}
    for kind, data in rendered.items():
        atomic_write_bytes(paths[kind], data)
    return RenderResult(content.frame, paths)
