"""`metrics explain [PROTOCOL]`: what a number computed under a protocol means (segmentation protocols and the
object-recognition probe's)."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("metrics", help="metrics: explain the evaluation protocols")
    verbs = parser.add_subparsers(dest="metrics_verb", required=True, metavar="SUBCOMMAND")
    p = verbs.add_parser("explain", help="list the protocols, or print one protocol's choices in words")
    p.add_argument("protocol", nargs="?", help="protocol name (omit to list them)")
    p.set_defaults(func=run)


def run(args) -> int:
    from harness.metrics.explain import explain

    print(explain(args.protocol))
    return 0
