"""`bench`: time training, evaluation, metrics and loading per method, and this machine's matmul peak
(harness.tools.bench)."""

from __future__ import annotations

import json
from pathlib import Path

from harness.cli.checks import BENCH_AMPS, check_dataset, check_method, check_splits
from harness.errors import HarnessError
from harness.io import atomic_write_text


def register(sub) -> None:
    p = sub.add_parser("bench", help="time training, evaluation, metrics and loading per method; matmul peak",
                       description=__doc__)
    p.add_argument("--method", nargs="+", dest="methods", help="methods (default: every learned method with a "
                                                                "config for the dataset)")
    p.add_argument("--dataset", default="synthetic", help="synthetic (generated) or a dataset under --data-dir")
    p.add_argument("--data-dir", type=Path, help="holds <dataset>/val.lmdb (default: generate synthetic data)")
    p.add_argument("--amp", nargs="+", dest="amps", default=["fp32"], choices=BENCH_AMPS)
    p.add_argument("--steps", type=int, default=3, help="timed training steps (after one warm-up step)")
    p.add_argument("--images", type=int, default=32,
                   help="synthetic val images to generate and evaluate (a --data-dir split is evaluated whole)")
    p.add_argument("--batch-size", type=int, help="train and eval batch size (default: each config's)")
    p.add_argument("--flops-config", default="dias:clevrtex", metavar="METHOD:DATASET",
                   help="the full-size config whose backbone GFLOP/s is measured (default dias:clevrtex)")
    p.add_argument("--flops-images", type=int, default=2,
                   help="synthetic images for that measurement (0 skips it)")
    p.add_argument("--kernel-images", type=int, default=8,
                   help="batch of the --flops-config step timed with BLAS vs oneDNN linear layers on a CPU (0 skips it)")
    p.add_argument("--matmul-size", type=int, default=1024, help="side of the square matmul timed for the peak")
    p.add_argument("--matmul-seconds", type=float, default=0.5, help="how long the matmul is repeated")
    p.add_argument("--loader-records", type=int, default=40,
                   help="ClevrTex-format records for the loader comparison (0 skips it)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's); 1 gives steadier numbers "
                                              "on a machine that other jobs share")
    p.add_argument("--output", type=Path, help="also write the numbers as JSON")
    p.set_defaults(func=run, check=check)


def check(args) -> None:
    check_dataset(args.dataset)
    for method in args.methods or ():
        check_method(method, args.dataset)
    if args.flops_config and (args.flops_images > 0 or args.kernel_images > 0):
        method, colon, dataset = args.flops_config.partition(":")
        if not colon:
            raise HarnessError(f"--flops-config {args.flops_config!r}: expected METHOD:DATASET, e.g. dias:clevrtex")
        check_method(method, dataset)
    if args.data_dir is not None:  # without one, run_bench generates synthetic data or refuses a real dataset
        check_splits(args.data_dir, args.dataset, ("val",))


def run(args) -> int:
    from harness.tools.bench import run_bench

    result = run_bench(methods=args.methods, dataset=args.dataset, amps=args.amps, steps=args.steps,
                       images=args.images, batch_size=args.batch_size, data_dir=args.data_dir,
                       flops_config=args.flops_config, flops_images=args.flops_images,
                       kernel_images=args.kernel_images,
                       matmul_size=args.matmul_size, matmul_seconds=args.matmul_seconds, device=args.device,
                       threads=args.threads, loader_records=args.loader_records)
    if args.output is not None:
        atomic_write_text(args.output, json.dumps(result, indent=1, default=str) + "\n")
    return 0
