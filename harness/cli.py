"""`python -m harness VERB ...`: the command line. Each verb lives beside the code it drives and
registers itself here through `register(subparsers)`; this module only dispatches and reports errors."""

from __future__ import annotations

import argparse
import importlib
import sys

from harness.errors import HarnessError
from harness.registry import UnknownNameError

# Modules that contribute verbs, in the order `--help` lists them.
COMMAND_MODULES = [
    "harness.reproduce",
    "harness.run.commands",
    "harness.report.commands",
    "harness.methods_command",
    "harness.data.commands",
    "harness.metrics.commands",
    "harness.bench",
    "harness.weights_command",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__)
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (HarnessError, UnknownNameError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
