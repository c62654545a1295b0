"""`python -m harness VERB ...`: the command line, one module per verb in this package.

Each verb module has `register(subparsers)` (its arguments) and a `run(args)` that turns the parsed arguments into
typed values and calls one library function; no library function sees an argparse namespace. Input errors (a
`HarnessError`, an unknown registry name) and file-system errors (an OSError: the path and what is wrong with it) are
printed as one `error:` line with exit code 2; anything else is a bug and keeps its traceback. A verb's `check(args)`
(harness.cli.checks) runs first: every argument is checked before anything is built or downloaded, and
building the argument tree imports none of torch, pandas or matplotlib, so `--help` and usage errors answer at once.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from harness.errors import HarnessError, os_error_line
from harness.names import UnknownNameError

# Verb modules of this package, in the order `--help` lists them.
VERBS = ("reproduce", "train", "eval", "export", "report", "check_drift", "methods", "metrics", "data", "weights",
         "bench", "gpu_check")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name in VERBS:
        importlib.import_module(f"harness.cli.{name}").register(sub)
    return parser


def apply_compute_args(args) -> None:
    """--threads and --deterministic, for this process and the workers it starts."""
    if args.threads is not None and args.threads < 1:
        raise HarnessError(f"--threads {args.threads}: need at least 1")
    if args.deterministic:
        from harness.compute import set_deterministic

        set_deterministic(args.threads)
    elif args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if hasattr(args, "check"):
            args.check(args)
        if hasattr(args, "deterministic"):  # the verbs that compute (harness.cli.common.add_compute_args)
            apply_compute_args(args)
        from harness.nn.onednn import cpu_linear_backend

        cpu_linear_backend()  # a bad $HARNESS_CPU_LINEAR stops here, before anything runs or is written
        return int(args.func(args) or 0)
    except (HarnessError, UnknownNameError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the machine's file system: a path that is a file, no permission, a read-only or full disk
        print(f"error: {os_error_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`... | head`): not an error of ours
        sys.stdout = open(os.devnull, "w")
        return 0
