"""CLI verbs `report` (a table → reports/acc-<T>.xlsx/.md/.html) and `check-drift` (fresh vs golden values)."""

from __future__ import annotations

import argparse
import shlex

from harness.report.published import PUBLISHED_FILE


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
    p.add_argument("--gallery-images", type=int, default=4, help="images per mask gallery")
    p.add_argument("--bootstrap", type=int, default=10_000, help="bootstrap resamples for the paired tests")
    p.set_defaults(func=report)

    d = subparsers.add_parser("check-drift", help="compare a table's fresh results with committed golden values",
                              description="Exit 1 listing every metric whose mean moved beyond tolerance "
                                          "(default max(0.5 point, 2 × golden seed std)) or that is missing on "
                                          "either side; 0 otherwise.")
    d.add_argument("--table", required=True)
    what = d.add_mutually_exclusive_group(required=True)
    what.add_argument("--against", metavar="GOLDEN", help="golden JSON to compare with (results/golden/...)")
    what.add_argument("--write-golden", metavar="GOLDEN", help="write the fresh values as a golden JSON instead")
    d.add_argument("--results", default="runs", help="directory searched recursively for result records")
    d.add_argument("--tol", type=float, default=None, help="fixed tolerance in points (overrides the default rule)")
    d.add_argument("--allow-mixed", action="store_true")
    d.add_argument("--command", dest="regenerate", default=None,
                   help="with --write-golden: the command that regenerates the results "
                        "(default: python -m harness reproduce --table T)")
    d.set_defaults(func=check_drift)


def report(args: argparse.Namespace) -> int:
    from harness.report.render import render_table
    from harness.report.text import text_table
    from harness.tables import TABLES

    result = render_table(args.table, args.results, args.out, published=args.published is not None,
                          published_path=args.published or PUBLISHED_FILE, allow_mixed=args.allow_mixed,
                          compare=[tuple(pair) for pair in args.compare] if args.compare else None,
                          gallery_images=args.gallery_images, n_boot=args.bootstrap)
    print(text_table(result.frame, TABLES.get(args.table)))
    for path in result.paths.values():
        print(f"wrote {path}")
    return 0


def check_drift(args: argparse.Namespace) -> int:
    from harness.report import drift
    from harness.tables import TABLES

    table = TABLES.get(args.table)
    fresh = drift.fresh_values(table, args.results, args.allow_mixed)
    if args.write_golden:
        command = args.regenerate or f"python -m harness reproduce --table {table.name}"
        written_by = shlex.join(["python", "-m", "harness", "check-drift", "--table", table.name, "--results",
                                 str(args.results), "--write-golden", str(args.write_golden)])
        drift.write_golden(args.write_golden, drift.golden_document(table, fresh, command, written_by))
        print(f"wrote {args.write_golden} ({len(fresh)} values of table {table.name})")
        return 0
    golden = drift.read_golden(args.against, table)
    drifts = drift.compare(golden, fresh, args.tol)
    if drifts:
        print(f"{len(drifts)} metric(s) of table {table.name} drifted from {args.against}:")
        for d in drifts:
            print(f"  {d}")
        return 1
    print(f"table {table.name}: {len(fresh)} values within tolerance of {args.against}")
    return 0
