"""`check-drift`: compare a table's fresh results with committed golden values; exit 1 listing every metric whose
mean moved beyond tolerance (default max(0.5 point, 2 × golden seed std)) or that is missing on either side."""

from __future__ import annotations

import shlex


def register(subparsers) -> None:
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
    d.set_defaults(func=run)



def run(args) -> int:
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
