"""`methods`: the registered methods, reference rows and stages — datasets, slots, steps, batch, parameters (of the
full-size model, built on the meta device), evaluated mask."""

from __future__ import annotations

from harness.cli.checks import METHODS_TABLE_DATASET, check_dataset


def run(args) -> int:
    from harness.tools.method_table import format_table, method_rows

    rows = method_rows(args.dataset)
    print(format_table(rows))
    described = sorted({r["described"] for r in rows if r.get("described")})
    print(f"\nslots per dataset in the order of `datasets`; steps, batch, params, trainable, mask and stage of "
          f"the {'/'.join(described)} config; params = elements of its checkpoint, trainable = parameters not "
          f"frozen by the config")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("methods", help="list the registered methods, reference rows and stages",
                                   description=__doc__)
    parser.add_argument("--dataset", default=METHODS_TABLE_DATASET,
                        help=f"dataset whose config each row describes (default {METHODS_TABLE_DATASET}; rows without "
                             f"one use their first full-size dataset)")
    parser.set_defaults(func=run, check=lambda args: check_dataset(args.dataset))
