"""`train`: one cell (method × dataset × seed); a run directory with a train_state.pt resumes bit-identically.

Runs data-parallel when started by torchrun (`torchrun --nproc_per_node=K -m harness train ...`): every process joins
the group the launcher describes (harness.run.distributed) and rank 0 prints and writes.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.cli.checks import check_cell
from harness.cli.common import add_cell_args, cell_config
from harness.errors import HarnessError
from harness.io import check_output_dir


def register(sub) -> None:
    p = sub.add_parser("train", help="train one method on one dataset with one seed (resumes if the run dir has state)",
                       description=__doc__.split("\n\n")[0])
    add_cell_args(p)
    p.add_argument("--out", required=True, type=Path, help="run directory (checkpoints, logs, weights.pth)")
    p.add_argument("--worker-seeding", default="per-sample", choices=["per-sample", "faithful"],
                   help="faithful: every data-loader worker gets the same seed, as the authors' code does")
    p.add_argument("--stage-weights", type=Path, help="weights of the method's prerequisite stage (e.g. VQ-VAE)")
    p.add_argument("--keep-state", action="store_true",
                   help="keep train_state.pt once the run is complete (by default only an unfinished run keeps it)")
    p.set_defaults(func=run, check=check)


def check(args) -> None:
    check_cell(args, ("train", "val"), {} if args.stage_weights is None else {"--stage-weights": args.stage_weights})


def run(args) -> int:
    from harness.run.distributed import current, process_group
    from harness.run.train import train

    config = cell_config(args)
    if config.stage is not None and args.stage_weights is None:
        raise HarnessError(f"--stage-weights: {config.method} needs the weights of its stage {config.stage!r}")
    check_output_dir(args.out)
    with process_group(args.device, args.ddp) as device:
        summary = train(config, data_dir=args.data_dir, run_dir=args.out, seed=args.seed, device=device,
                        worker_seeding=args.worker_seeding, stage_weights=args.stage_weights,
                        keep_state=args.keep_state)
        if current().main:
            print(json.dumps({"steps": summary.steps, "seconds": round(summary.seconds, 2),
                              "images_per_second": round(summary.images_per_second, 2),
                              "peak_memory_mb": round(summary.peak_memory_mb, 1),
                              "resumed_from": summary.resumed_from, "processes": current().size,
                              "weights": str(summary.weights)}))
    return 0
