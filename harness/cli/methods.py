"""`methods`: the registered methods, reference rows and stages — datasets, slots, steps, batch, parameters (of the
full-size model, built on the meta device), evaluated mask."""

from __future__ import annotations

from harness.tools.method_table import DEFAULT_DATASET, format_table, method_rows


def run(args) -> int:
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
    parser.add_argument("--dataset", default=DEFAULT_DATASET,
                        help=f"dataset whose config each row describes (default {DEFAULT_DATASET}; rows without "
                             f"one use their first full-size dataset)")
    parser.set_defaults(func=run)
