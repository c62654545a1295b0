"""`render_table`: a table's results (and/or the published numbers) → reports/acc-<T>.<format> for each format asked.

harness.report.content decides what the report says; the views write it: xlsx (harness.report.xlsx), md and html
(harness.report.pages), csv and json (harness.report.exports), latex (harness.report.latex). Everything is rendered
in memory first and only then written, each file atomically: a failure anywhere (a bad record, a corrupt gallery, a
template error) leaves the previous reports as they were.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from harness.io import atomic_write_bytes
from harness.report import exports, latex, pages, xlsx
from harness.report.content import Content, Options, ReportError, build
from harness.report.published import PUBLISHED_FILE
from harness.tables import TABLES, Table

# format → {key of RenderResult.paths: (file name suffix after "acc-<T>", what writes it from the content and the
# output directory)}
FORMATS = {
    "md": {"md": (".md", lambda c, out: pages.markdown(c, out).encode())},
    "html": {"html": (".html", lambda c, out: pages.html(c, out).encode())},
    "xlsx": {"xlsx": (".xlsx", lambda c, out: xlsx.report_bytes(c))},
    "csv": {"csv": (".csv", lambda c, out: exports.csv_bytes(exports.results_frame(c))),
            "seeds.csv": ("-seeds.csv", lambda c, out: exports.csv_bytes(exports.seeds_frame(c)))},
    "json": {"json": (".json", lambda c, out: exports.json_bytes(c))},
    "latex": {"tex": (".tex", lambda c, out: latex.document(c).encode())},
}
DEFAULT_FORMATS = ("xlsx", "md", "html")


class RenderResult(NamedTuple):
    frame: pd.DataFrame  # the tidy frame (ours and published)
    paths: dict  # {"xlsx" | "md" | "html" | "csv" | "seeds.csv" | "json" | "tex": Path}, the files written


def parse_formats(values: Iterable[str] | None) -> tuple[str, ...]:
    """Format names given repeatedly and/or comma-separated ("md,latex"), in order, each once; None: the default."""
    if not values:
        return DEFAULT_FORMATS
    names = [name.strip().lower() for value in values for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in FORMATS]
    if unknown or not names:
        problem = f"unknown report format {', '.join(map(repr, unknown))}" if unknown else "no report format given"
        raise ReportError(f"--format: {problem}; formats: {', '.join(FORMATS)}")
    return tuple(dict.fromkeys(names))


def render_table(table: str | Table, results_dir: str | Path | None = None, out_dir: str | Path = "reports",
                 published: bool = False, *, published_path: str | Path = PUBLISHED_FILE, allow_mixed: bool = False,
                 compare: list[tuple[str, str]] | None = None, gallery_images: int = 8, gallery_size: int = 112,
                 n_boot: int = 10_000, boot_seed: int = 0, formats: Iterable[str] | None = None) -> RenderResult:
    """Aggregate `table` from the records under `results_dir` (and the published numbers if `published`) and
    write out_dir/acc-<T>.<format> for each of `formats` (FORMATS; None: xlsx, md, html). With `published` and no
    records the published per-seed values alone are rendered in the authors' layout (the v3 case). `compare`: pairs
    of row labels or method names for the paired tests (default: per dataset, the table's first learned row against
    each other learned row)."""
    table = TABLES.get(table) if isinstance(table, str) else table
    formats = parse_formats(formats)
    options = Options(allow_mixed, compare, gallery_images, gallery_size, n_boot, boot_seed)
    content = build(table, results_dir, published, published_path, options)
    out_dir = Path(out_dir)
    rendered = render(content, formats, out_dir)
    paths = {key: out_dir / f"acc-{table.name}{FORMATS[fmt][key][0]}" for fmt in formats
             for key in FORMATS[fmt]}
    for key, data in rendered.items():
        atomic_write_bytes(paths[key], data)
    return RenderResult(content.frame, paths)


def render(content: Content, formats: Iterable[str], out_dir: str | Path) -> dict[str, bytes]:
    """{path key: file contents} of every file of `formats` (to be written to `out_dir`), all in memory."""
    return {key: write(content, out_dir) for fmt in formats for key, (_, write) in FORMATS[fmt].items()}
