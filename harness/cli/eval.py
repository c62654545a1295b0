"""`eval`: a checkpoint (ours or the authors' released .pth, loaded strictly) → a result record (JSON)."""

from __future__ import annotations

import json
from pathlib import Path

from harness.cli.checks import DEFAULT_FEATURE_STORAGE, FEATURE_STORAGE, check_cell, check_protocol
from harness.cli.common import add_cell_args, cell_config
from harness.io import check_output_dir


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint (ours or the authors' released .pth) into a result JSON",
                       description=__doc__)
    add_cell_args(p)
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--output", required=True, type=Path, help="result JSON (identity, per-image metrics, means)")
    p.add_argument("--split", default="val")
    p.add_argument("--protocol", default="dias-v3", help="see `python -m harness metrics explain`")
    p.add_argument("--noise", choices=["sample", "mean"],
                   help="slot-initialisation noise at evaluation (default: the config's; the authors sample)")
    p.add_argument("--limit", type=int, help="evaluate only the first N images")
    p.add_argument("--gallery", type=int, default=8, help="images kept for the report's mask gallery")
    p.add_argument("--feature-cache", type=Path, metavar="DIR",
                   help="reuse (or, evaluating the whole split, write) the frozen backbone's features in DIR; "
                        "metrics are identical to an uncached evaluation")
    p.add_argument("--feature-cache-storage", default=DEFAULT_FEATURE_STORAGE, choices=FEATURE_STORAGE,
                   help="float32 (default) is exact; float16 halves the files and rounds the features")
    p.set_defaults(func=run, check=check)


def check(args) -> None:
    check_protocol(args.protocol)
    check_cell(args, (args.split,), {"--checkpoint": args.checkpoint})


def run(args) -> int:
    from harness.run.cell import evaluate_cell, with_eval_noise
    from harness.run.distributed import current, process_group

    config = with_eval_noise(cell_config(args), args.noise)
    check_output_dir(args.output.parent)
    with process_group(args.device, args.ddp) as device:
        record = evaluate_cell(config, data_dir=args.data_dir, checkpoint=args.checkpoint, seed=args.seed,
                               output=args.output, protocol=args.protocol, device=device, split=args.split,
                               gallery=args.gallery, limit=args.limit, feature_cache=args.feature_cache,
                               feature_storage=args.feature_cache_storage)
        if current().main:
            summary = {"output": str(args.output), "unit": record["unit"], "means": record["means"],
                       "n_valid": record["n_valid"]}
            if "feature_cache" in record["cost"]:
                summary["feature_cache"] = record["cost"]["feature_cache"]
            print(json.dumps(summary))
    return 0
