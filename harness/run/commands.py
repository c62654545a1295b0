"""`train` and `eval` verbs: one cell at a time (the `reproduce` verb runs whole tables).

Both run data-parallel when started by torchrun (`torchrun --nproc_per_node=K -m harness train ...`): every
process joins the group the launcher describes (harness.run.distributed) and rank 0 prints and writes.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.registry import get_config


def add_config_args(p) -> None:
    p.add_argument("--method", required=True, help="registered method name (see `python -m harness methods`)")
    p.add_argument("--dataset", required=True, help="clevrtex, coco, voc or synthetic")
    p.add_argument("--data-dir", required=True, type=Path, help="holds <dataset>/{train,val}.lmdb")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                   help="override a config field, e.g. --set train.steps=200 (repeatable)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (under torchrun: cpu or cuda, one GPU "
                                                   "per process)")
    # Not "--nproc": torchrun's parser claims any later flag that abbreviates one of its own options.
    p.add_argument("--ddp", type=int, metavar="K",
                   help="the number of data-parallel processes this run must have: checked against torchrun's "
                        "WORLD_SIZE, so that a run meant for K processes never trains alone (default: as launched)")


def register(sub) -> None:
    from harness.run.feature_cache import DEFAULT_STORAGE, STORAGE

    p = sub.add_parser("train", help="train one method on one dataset with one seed (resumes if the run dir has state)")
    add_config_args(p)
    p.add_argument("--out", required=True, type=Path, help="run directory (checkpoints, logs, weights.pth)")
    p.add_argument("--worker-seeding", default="per-sample", choices=["per-sample", "faithful"],
                   help="faithful: every data-loader worker gets the same seed, as the authors' code does")
    p.add_argument("--stage-weights", type=Path, help="weights of the method's prerequisite stage (e.g. VQ-VAE)")
    p.set_defaults(func=run_train)

    p = sub.add_parser("eval", help="evaluate a checkpoint (ours or the authors' released .pth) into a result JSON")
    add_config_args(p)
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
    p.add_argument("--feature-cache-storage", default=DEFAULT_STORAGE, choices=sorted(STORAGE),
                   help="float32 (default) is exact; float16 halves the files and rounds the features")
    p.set_defaults(func=run_eval)


def run_train(args) -> int:
    from harness.run.distributed import current, process_group
    from harness.run.train import train

    config = get_config(args.method, args.dataset, args.overrides)
    with process_group(args.device, args.ddp) as device:
        summary = train(config, data_dir=args.data_dir, run_dir=args.out, seed=args.seed, device=device,
                        worker_seeding=args.worker_seeding, stage_weights=args.stage_weights)
        if current().main:
            print(json.dumps({"steps": summary.steps, "seconds": round(summary.seconds, 2),
                              "images_per_second": round(summary.images_per_second, 2),
                              "peak_memory_mb": round(summary.peak_memory_mb, 1),
                              "resumed_from": summary.resumed_from, "processes": current().size,
                              "weights": str(summary.weights)}))
    return 0


def run_eval(args) -> int:
    from harness.run.cell import evaluate_cell, with_eval_noise
    from harness.run.distributed import current, process_group

    config = with_eval_noise(get_config(args.method, args.dataset, args.overrides), args.noise)
    with process_group(args.device, args.ddp) as device:
        record = evaluate_cell(config, data_dir=args.data_dir, checkpoint=args.checkpoint, seed=args.seed,
                               output=args.output, protocol=args.protocol, device=device, split=args.split,
                               gallery=args.gallery, limit=args.limit, feature_cache=args.feature_cache,
                               feature_storage=args.feature_cache_storage)
        if current().main:
            summary = {"output": str(args.output), "means": record["means"], "n_valid": record["n_valid"]}
            if "feature_cache" in record["cost"]:
                summary["feature_cache"] = record["cost"]["feature_cache"]
            print(json.dumps(summary))
    return 0
