"""`export --authors-layout SOURCE OUTPUT`: a harness weights file (compact: its frozen backbone named, not stored) →
the authors' full checkpoint, a plain state_dict in their key order that loads strictly into their code and ours."""

from __future__ import annotations

import json
from pathlib import Path

from harness.cli.common import add_overrides
from harness.errors import HarnessError
from harness.io import check_output_dir


def register(sub) -> None:
    p = sub.add_parser("export", help="write a run's weights as the authors' full checkpoint (.pth state_dict)",
                       description=__doc__)
    p.add_argument("--authors-layout", action="store_true", required=True,
                   help="the authors' layout: every tensor, frozen backbone included, \"m.\"-prefixed keys in their "
                        "order (the one layout written; named so that a command line says what it gets)")
    p.add_argument("source", type=Path, help="a run directory (its weights.pth) or a weights file (e.g. "
                                             "RUN/checkpoints/best-val.pth, or the authors' own)")
    p.add_argument("output", type=Path,
                   help="the .pth to write (atomically); named <label>/<seed>-<epoch>.pth, `reproduce --checkpoints` "
                        "finds it")
    p.add_argument("--method", help="default: the run's (its run.json)")
    p.add_argument("--dataset", help="default: the run's (its run.json)")
    add_overrides(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from harness.registry import get_config
    from harness.run.export import export_authors_layout, run_of

    weights, record = run_of(args.source)
    chosen = {}
    for field in ("method", "dataset"):
        given, known = getattr(args, field), (record or {}).get(field)
        if given is not None and known is not None and given != known:
            raise HarnessError(f"--{field} {given}: the run {args.source} trained {field} {known}")
        chosen[field] = given or known
        if chosen[field] is None:
            raise HarnessError(f"{args.source} is not in a run directory: name its --method and --dataset")
    config = get_config(chosen["method"], chosen["dataset"], args.overrides)
    if args.output.exists() and args.output.resolve() == weights.resolve():
        raise HarnessError(f"{args.output} is the file being exported; write it elsewhere")
    if args.output.is_dir():
        raise HarnessError(f"{args.output} is a directory; name the .pth file to write")
    check_output_dir(args.output.parent)
    exported = export_authors_layout(weights, config, args.output)
    print(json.dumps({"source": str(weights), "output": str(exported.path), "keys": exported.keys,
                      "bytes": exported.bytes}))
    return 0
