"""`check-drift`: compare a table's fresh results with committed golden values, value by value (cell × seed ×
metric); exit 1 listing every value beyond the measured tolerance or missing on either side."""

from __future__ import annotations

import shlex

from harness.cli.checks import check_table


def register(subparsers) -> None:
    d = subparsers.add_parser("check-drift", help="compare a table's fresh results with committed golden values",
                              description="Exit 1 listing every value (cell, seed, metric) that moved beyond the "
                                          "tolerance the golden file records (the spread measured across kernel "
                                          "libraries and thread counts) or that is missing on either side; 0 "
                                          "otherwise. Rows new to the golden file are listed and pass. Both "
                                          "sides' hardware is printed.")
    d.add_argument("--table", required=True)
    what = d.add_mutually_exclusive_group(required=True)
    what.add_argument("--against", metavar="GOLDEN", help="golden JSON to compare with (results/golden/...)")
    what.add_argument("--write-golden", metavar="GOLDEN", help="write the fresh values as a golden JSON instead")
    d.add_argument("--results", default="runs", help="directory searched recursively for result records")
    d.add_argument("--tol", type=float, default=None,
                   help="tolerance in points per value (default: the golden file's; for --write-golden, the table's)")
    d.add_argument("--allow-mixed", action="store_true")
    d.add_argument("--command", dest="regenerate", default=None,
                   help="with --write-golden: the command that regenerates the results "
                        "(default: python -m harness reproduce --table T)")
    d.set_defaults(func=run, check=lambda args: check_table(args.table))


def run(args) -> int:
    from harness.report import drift
    from harness.tables import TABLES

    table = TABLES.get(args.table)
    fresh = drift.fresh_values(table, args.results, args.allow_mixed)
    if args.write_golden:
        command = args.regenerate or f"python -m harness reproduce --table {table.name}"
        written_by = shlex.join(["python", "-m", "harness", "check-drift", "--table", table.name, "--results",
                                 str(args.results), "--write-golden", str(args.write_golden)])
        document = drift.golden_document(table, fresh, drift.tolerances(table, args.tol), command, written_by)
        drift.write_golden(args.write_golden, document)
        print(f"wrote {args.write_golden} ({len(fresh.values)} values of table {table.name})")
        return 0
    golden = drift.read_golden(args.against, table)
    comparison = drift.compare(golden, fresh, args.tol)
    print("\n".join(drift.report_lines(comparison, table, args.against, golden.get("command", ""))))
    return 1 if comparison.drifts else 0
