"""`python -m harness metrics explain [PROTOCOL]`: what a number computed under a protocol means (segmentation
protocols and the object-recognition probe's)."""

from __future__ import annotations

from harness.metrics.protocols import DEFAULT_PROTOCOL, PROTOCOLS
from harness.metrics.recognition import DEFAULT_RECOGNITION_PROTOCOL, RECOGNITION_PROTOCOLS
from harness.registry import UnknownNameError


def register(subparsers) -> None:
    parser = subparsers.add_parser("metrics", help="metrics: explain the evaluation protocols")
    verbs = parser.add_subparsers(dest="metrics_verb", required=True, metavar="SUBCOMMAND")
    explain = verbs.add_parser("explain", help="list the protocols, or print one protocol's choices in words")
    explain.add_argument("protocol", nargs="?", help="protocol name (omit to list them)")
    explain.set_defaults(func=explain_protocol)


def explain_protocol(args) -> int:
    groups = (("segmentation", PROTOCOLS, DEFAULT_PROTOCOL),
              ("object recognition (slot probe)", RECOGNITION_PROTOCOLS, DEFAULT_RECOGNITION_PROTOCOL))
    if args.protocol is None:
        width = max(len(name) for _, registry, _ in groups for name in registry.names())
        for title, registry, default in groups:
            print(f"{title}:")
            for name in registry.names():
                mark = " (default)" if name == default else ""
                print(f"  {name:<{width}}  {registry.get(name).summary}{mark}")
        print("\n`python -m harness metrics explain NAME` prints a protocol's choices.")
        return 0
    for _, registry, _ in groups:
        if args.protocol in registry:
            print(registry.get(args.protocol).explain())
            return 0
    valid = sorted(name for _, registry, _ in groups for name in registry.names())
    raise UnknownNameError(f"unknown protocol {args.protocol!r}; valid: {', '.join(valid)}")
