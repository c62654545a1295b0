"""`python -m harness metrics explain [PROTOCOL]`: what a number computed under a protocol means."""

from __future__ import annotations

from harness.metrics.protocols import DEFAULT_PROTOCOL, PROTOCOLS


def register(subparsers) -> None:
    parser = subparsers.add_parser("metrics", help="segmentation metrics: explain the evaluation protocols")
    verbs = parser.add_subparsers(dest="metrics_verb", required=True, metavar="SUBCOMMAND")
    explain = verbs.add_parser("explain", help="list the protocols, or print one protocol's choices in words")
    explain.add_argument("protocol", nargs="?", help="protocol name (omit to list them)")
    explain.set_defaults(func=explain_protocol)


def explain_protocol(args) -> int:
    if args.protocol is None:
        width = max(map(len, PROTOCOLS.names()))
        for name in PROTOCOLS.names():
            mark = " (default)" if name == DEFAULT_PROTOCOL else ""
            print(f"{name:<{width}}  {PROTOCOLS.get(name).summary}{mark}")
        print("\n`python -m harness metrics explain NAME` prints a protocol's choices.")
    else:
        print(PROTOCOLS.get(args.protocol).explain())
    return 0
