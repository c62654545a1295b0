"""`gpu-check`: is this accelerator ready for the harness? (harness.tools.gpu_check; scripts/gpu-check.sh runs the
CUDA-marked tests first, then this.) Exit status 1 if a check fails."""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("gpu-check", help="is this GPU ready: AMP steps of every method, compile parity, evaluation "
                                         "speed, peak memory → results/bench/<device>.json", description=__doc__)
    p.add_argument("--device", default="cuda")
    p.add_argument("--steps", type=int, default=300, help="AMP training steps per method")
    p.add_argument("--amp", default="fp16", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--eval-images", type=int, default=64, help="synthetic 256² images for the full-size evaluation")
    p.add_argument("--compile-backend", default="inductor", help="torch.compile backend (eager: tracing only)")
    p.add_argument("--matmul-size", type=int, default=8192)
    p.add_argument("--batch-size", type=int, default=32, help="training batch of each method")
    p.add_argument("--output", type=Path, help="default results/bench/<device>.json")
    p.set_defaults(func=run)


def run(args) -> int:
    from harness.tools.gpu_check import run_gpu_check

    result = run_gpu_check(args.device, args.steps, args.amp, args.eval_images, args.compile_backend,
                           args.matmul_size, args.batch_size, args.output)
    return 0 if result["ok"] else 1
