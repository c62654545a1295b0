"""`python -m harness gpu-check` (run by scripts/gpu-check.sh): is this accelerator ready for the harness?

On one device, in minutes: a few hundred AMP steps of every registered learned method on its synthetic config (losses
finite and falling), `torch.compile` against eager on one evaluation batch of DIAS, the full-size DIAS evaluation
cached vs uncached with the backbone's fraction of the matmul peak (harness.tools.bench), and peak memory of each phase.
Writes results/bench/<device>.json. `--device cpu --steps 3 --compile-backend eager` runs the same code on a CPU in
seconds (tests/test_gpu_check.py), so the script cannot rot between GPU sessions.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
import time
from pathlib import Path

import torch

from harness.compute import device_description
from harness.data.synthetic import SynthConfig, generate
from harness.data.transforms import normalize
from harness.io import atomic_write_text
from harness.registry import get_config
from harness.run.step import Stepper
from harness.run.train import build_model
from harness.tools.bench import AMPS, MATMUL_DTYPES, bench_backbone, default_methods, matmul_gflops, matmul_name


def device_slug(device: torch.device) -> str:
    """"nvidia-h200" for an NVIDIA H200, "cpu" for a CPU: the results file's name."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def peak_memory(device: torch.device) -> int | None:
    return torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def synthetic_batch(config, device: torch.device, size: int) -> torch.Tensor:
    """A fixed batch of synthetic scenes, normalised like the loader's output (ImageNet statistics)."""
    images, _ = generate(SynthConfig(resolution=config.resolution), "train", 0, size)
    return torch.stack([normalize(torch.from_numpy(image).permute(2, 0, 1)) for image in images]).to(device)


def train_method(method: str, device: torch.device, steps: int, amp: str, batch_size: int) -> dict:
    """`steps` of training's own optimiser step (harness.run.step.Stepper, with the schedule of a `steps`-step run) on
    one fixed batch under `amp` autocast with a grad scaler for fp16: the losses must stay finite and, over a few
    hundred steps, fall."""
    config = get_config(method, "synthetic", [f"train.amp={AMPS[amp]}", f"train.batch_size={batch_size}",
                                              f"train.steps={steps}"])
    torch.manual_seed(0)
    model = build_model(config, device, initial=False).train()  # random weights: no hub, no stage needed
    stepper = Stepper(model, config.train, device, config.train.amp)
    images = synthetic_batch(config, device, batch_size)
    reset_peak(device)
    losses, start = [], time.perf_counter()
    for step in range(steps):
        losses.append(stepper(step, lambda: model(images).losses)["loss"].detach())
    losses = torch.stack(losses).tolist()  # one host sync, after the timed steps
    seconds = time.perf_counter() - start
    window = max(1, min(10, steps // 4))
    first, last = sum(losses[:window]) / window, sum(losses[-window:]) / window
    return {"method": method, "amp": amp, "steps": steps, "ms/step": 1e3 * seconds / max(steps, 1),
            "first loss": first, "last loss": last, "finite": all(math.isfinite(v) for v in losses),
            "falling": last < first, "peak memory bytes": peak_memory(device)}


def compile_parity(device: torch.device, backend: str) -> dict:
    """Masks of a torch.compile'd DIAS (synthetic config, random weights) against eager on one batch, same noise."""
    config = get_config("dias", "synthetic")
    torch.manual_seed(0)
    model = build_model(config, device, initial=False).eval()
    images = synthetic_batch(config, device, 8)
    compiled = torch.compile(model, backend=backend)
    with torch.inference_mode():
        torch.manual_seed(1)
        eager = model(images).masks[config.eval.mask].float()
        start = time.perf_counter()
        torch.manual_seed(1)
        first = compiled(images).masks[config.eval.mask].float()
        compile_seconds = time.perf_counter() - start
    diff = (first - eager).abs().max().item()
    same_argmax = (first.argmax(1) == eager.argmax(1)).float().mean().item()
    return {"backend": backend, "max abs diff": diff, "argmax agreement": same_argmax,
            "compile seconds": compile_seconds, "ok": diff < 1e-3}


def run_gpu_check(device: str = "cuda", steps: int = 300, amp: str = "fp16", eval_images: int = 64,
                  compile_backend: str = "inductor", matmul_size: int = 8192, batch_size: int = 32,
                  output: Path | None = None, print_fn=print) -> dict:
    device = torch.device(device)
    result = {"device": device_description(device), "torch": torch.__version__, "amp": amp}
    print_fn(f"gpu-check on {result['device']}, torch {result['torch']}")
    name = matmul_name(device, amp)
    result["matmul_gflops"] = {name: matmul_gflops(MATMUL_DTYPES[name], device, matmul_size, 1.0)}
    if name != "fp32":
        result["matmul_gflops"]["fp32"] = matmul_gflops(torch.float32, device, matmul_size, 1.0)
    result["training"] = []
    for method in default_methods("synthetic"):
        row = train_method(method, device, steps, amp, batch_size)
        result["training"].append(row)
        print_fn(f"  train {method:14s} {amp}: {row['ms/step']:.1f} ms/step, loss {row['first loss']:.4g} → "
                 f"{row['last loss']:.4g}, finite {row['finite']}, falling {row['falling']}")
    result["compile"] = compile_parity(device, compile_backend)
    print_fn(f"  torch.compile ({compile_backend}) vs eager: max |Δmask| {result['compile']['max abs diff']:.2e}")
    reset_peak(device)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        result["eval"] = bench_backbone("dias", "clevrtex", sorted({"fp32", amp}), images=eval_images,
                                        matmul=result["matmul_gflops"], device=device, work=Path(tmp))
    result["eval"]["peak memory bytes"] = peak_memory(device)
    for row in result["eval"]["rows"]:
        print_fn(f"  eval dias:clevrtex {row['amp']}: {row['eval img/s uncached']:.1f} img/s uncached, "
                 f"{row['eval img/s cached']:.1f} cached ({row['speed-up']:.2f}×), backbone at "
                 f"{row['fraction of peak']:.2f} of the matmul peak")
    result["ok"] = (all(r["finite"] for r in result["training"]) and result["compile"]["ok"]
                    and all(r["identical metrics"] for r in result["eval"]["rows"]))
    output = output or Path("results") / "bench" / f"{device_slug(device)}.json"
    atomic_write_text(output, json.dumps(result, indent=1, default=str) + "\n")
    print_fn(f"wrote {output}")
    return result
