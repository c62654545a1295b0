"""`report`: a table's result records → reports/acc-<T>.xlsx (the authors' layout), .md and .html (mask galleries,
plots), and on request .csv / -seeds.csv / .json (tidy tables) and .tex (the paper's layout); `--published` shows the
authors' published numbers."""

from __future__ import annotations

from harness.cli.checks import PUBLISHED_FILE, check_table
from harness.cli.common import add_format_args


def register(subparsers) -> None:
    p = subparsers.add_parser("report", help="render a table's results (and/or the published numbers)",
                              description="Aggregate a table's result records into reports/acc-<T>.xlsx (the authors' "
                                          "layout), .md and .html (with mask galleries and plots).")
    p.add_argument("--table", required=True, help="table name (v3, mini, synthetic-long, ...)")
    p.add_argument("--results", default="runs", help="directory searched recursively for result records")
    p.add_argument("--out", default="reports", help="output directory")
    p.add_argument("--published", nargs="?", const=str(PUBLISHED_FILE), default=None, metavar="FILE",
                   help=f"show the authors' published numbers (default file: {PUBLISHED_FILE})")
    p.add_argument("--allow-mixed", action="store_true",
                   help="aggregate cells that differ in protocol, data card or budget (listed in the report)")
    p.add_argument("--compare", nargs=2, action="append", metavar=("A", "B"),
                   help="paired tests between two rows (labels) or methods; repeatable")
    p.add_argument("--gallery-images", type=int, default=8,
                   help="images per seed in the comparison gallery (at most the 8 each record keeps)")
    p.add_argument("--bootstrap", type=int, default=10_000, help="bootstrap resamples for the paired tests")
    add_format_args(p)
    p.set_defaults(func=run, check=lambda args: check_table(args.table))



def run(args) -> int:
    from harness.report.render import parse_formats, render_table
    from harness.report.text import text_table
    from harness.tables import TABLES

    formats = parse_formats(args.formats)
    if TABLES.get(args.table).task == "recognition":
        from harness.report.recognition import render_recognition, text_recognition

        report = render_recognition(TABLES.get(args.table), args.results, args.out,
                                    published=args.published is not None,
                                    published_path=args.published or PUBLISHED_FILE, formats=formats)
        print(text_recognition(report.content))
        for path in report.paths.values():
            print(f"wrote {path}")
        return 0
    result = render_table(args.table, args.results, args.out, published=args.published is not None,
                          published_path=args.published or PUBLISHED_FILE, allow_mixed=args.allow_mixed,
                          compare=[tuple(pair) for pair in args.compare] if args.compare else None,
                          gallery_images=args.gallery_images, n_boot=args.bootstrap, formats=formats)
    print(text_table(result.frame, TABLES.get(args.table)))
    for path in result.paths.values():
        print(f"wrote {path}")
    return 0


