"""`python -m harness bench`: how fast each method trains and evaluates on this machine, and how close the frozen
backbone comes to the machine's matmul rate — in the spirit of timm's benchmark.py.

For each method config × amp × feature cache (off, and on for methods with a frozen backbone), random weights:

    train ms/step, img/s   one optimiser step (autocast forward, backward, clip, Adam) on a fixed batch; with the
                           cache on, the batch's backbone features are given (`model(images, features=...)`)
    eval img/s             harness.run.evaluate over the val images: loader, forward, metrics; with the cache on,
                           a second pass reading the features the first pass wrote (harness.run.feature_cache)
    metrics ms/batch       attention → segments → segmentation_metrics for one evaluation batch
    loader samples/s       reading, decoding and transforming the val split (+ the cached features)

Then the loader on ClevrTex-format records (240×320 PNG images, WebP segments and depths → 256², one thread) against
`reference_item`, the authors' reader written plainly (cv2 decode, F.interpolate, F.one_hot: what their torchvision
transforms compute), interleaved record by record, with a check that both give identical tensors.

Then the matmul GFLOP/s of this machine (the fastest of repeated n×n matmuls through `F.linear`, per amp dtype; on
a CPU through oneDNN and, beside it, PyTorch's BLAS: harness.nn.onednn) and a forward-only
evaluation of a full-size DIAS (`--flops-config`, default dias:clevrtex: ViT-S/14 reg4 at 224² from 256² images)
on a few synthetic images: the backbone's FLOPs per image from its spec (DinoV2Spec.forward_flops) beside the
12.7 GFLOP reference, the achieved backbone GFLOP/s and its fraction of the matmul rate, and eval img/s uncached vs
cached. Last, on a CPU, that config's training step and evaluation forward with its linear layers through the BLAS
(the authors' kernels) and through oneDNN (`--kernel-images`).

Times are medians over repeats after a warm-up (the matmul peak: the fastest); CUDA is synchronised around each.
Nothing is asserted: the numbers describe this machine under its current load.
"""

from __future__ import annotations

import contextlib
import itertools
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from harness.compute import device_description, forward_precision, hardware
from harness.config import torch_dtype
from harness.data import DATASETS, collate, open_split, split_path
from harness.data.codec import encode_index_map, encode_png_rgb
from harness.data.datasets import LmdbSplit
from harness.data.lmdb_io import LmdbWriter
from harness.data.synthetic import SynthConfig, generate, write_split
from harness.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from harness.errors import HarnessError
from harness.metrics import DEFAULT_PROTOCOL, attention_to_segments, segmentation_metrics
from harness.nn.dinov2 import DinoV2Backbone
from harness.nn.onednn import BACKENDS, cpu_linear_backend, cpu_linears, onednn_available
from harness.registry import get_config, methods_of_kind
from harness.run.evaluate import evaluate
from harness.run.feature_cache import autocast_in_effect, frozen_backbone, use_feature_cache
from harness.run.step import Stepper
from harness.run.train import build_model

AMPS = {"fp32": "off", "bf16": "bf16", "fp16": "fp16"}  # bench name → config value (run.evaluate.forward_precision)
REFERENCE_VIT_S_GFLOP = 12.7  # ViT-S/14 forward at 224², per image: the figure the issue quotes
MATMUL_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
NOISE_SEED = ("bench",)

LOADER_COLUMNS = ("records", "ours samples/s", "reference samples/s", "speed-up", "identical")
ROW_COLUMNS = ("method", "dataset", "amp", "cache", "train ms/step", "train img/s", "train of peak", "eval img/s",
               "eval vs uncached", "metrics ms/batch", "loader samples/s", "identical metrics")
KERNEL_COLUMNS = ("step", "images", "BLAS ms", "oneDNN ms", "oneDNN speed-up")
BACKBONE_COLUMNS = ("amp", "backbone ms/img", "backbone GFLOP/s", "matmul GFLOP/s", "fraction of peak",
                    "eval img/s uncached", "eval img/s cached", "speed-up", "identical metrics")


class BenchError(HarnessError):
    pass


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn, device: torch.device, repeats: int, warmup: int = 1) -> float:
    """Median wall time of `fn()` over `repeats` calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(repeats, 1)):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_gflops(dtype: torch.dtype, device: torch.device, size: int, min_seconds: float = 1.0,
                  linear_backend: str | None = None) -> float:
    """Peak GFLOP/s of a size×size @ size×size matmul in `dtype`, through `F.linear` with the CPU's linear backend
    (harness.nn.onednn; default: the one the harness uses): the fastest of repeated timings over `min_seconds`
    (at least 5), so that a moment of contention on a shared machine does not lower the peak. On a GPU each timing
    covers 50 calls, or the synchronisation would dominate."""
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=g).to(device, dtype)
    b = torch.randn(size, size, generator=g).to(device, dtype)
    calls = 1 if device.type == "cpu" else 50

    def block() -> None:
        for _ in range(calls):
            F.linear(a, b)  # a @ bᵀ, through the kernels the harness's linear layers use

    with cpu_linears(device, linear_backend):
        block()
        fastest, timings, start = float("inf"), 0, time.perf_counter()
        while timings < 5 or time.perf_counter() - start < min_seconds:
            fastest = min(fastest, median_seconds(block, device, repeats=1, warmup=0))
            timings += 1
    return 2 * size**3 * calls / fastest / 1e9


def _timed_eval(model, dataset, config, device: torch.device, limit: int | None = None) -> tuple[float, dict]:
    """(seconds, per-image ledger) of one evaluation of `dataset`."""
    synchronize(device)
    start = time.perf_counter()
    out = evaluate(model, dataset, mask=config.eval.mask, protocol=DEFAULT_PROTOCOL, noise_seed=NOISE_SEED,
                   device=device, batch_size=config.eval.batch_size, amp=config.eval.amp,
                   resolution=config.eval.resolution, limit=limit)
    synchronize(device)
    return time.perf_counter() - start, out.per_image


def same_ledger(a: dict, b: dict) -> bool:
    """Equal per-image ledgers, NaN equal to NaN."""
    return a.keys() == b.keys() and all(
        len(a[k]) == len(b[k]) and all(x == y or (x != x and y != y) for x, y in zip(a[k], b[k])) for k in a)


def _loader_rate(dataset, batch_size: int) -> float:
    start = time.perf_counter()
    for _ in DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate):
        pass
    return len(dataset) / (time.perf_counter() - start)


def reference_item(record: dict, resolution: int) -> dict:
    """A ClevrTex record as the authors' v3 reader and val transform make it (docs/reference.md#clevrtex,
    docs/reference.md#transforms-and-collate), written plainly: cv2 decodes (IMREAD_UNCHANGED + BGR→RGB,
    IMREAD_GRAYSCALE), centre square, uint8 bilinear-antialias and nearest-exact resizes, (x − mean) / std,
    F.one_hot(...).bool(). The oracle of the loader's exactness test and the reference of its speed."""
    image = cv2.cvtColor(cv2.imdecode(np.frombuffer(record["image"], np.uint8), cv2.IMREAD_UNCHANGED),
                         cv2.COLOR_BGR2RGB)
    segment = cv2.imdecode(record["segment"], cv2.IMREAD_GRAYSCALE)
    h, w = segment.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    image = torch.from_numpy(image).permute(2, 0, 1)[:, top:top + side, left:left + side]
    segment = torch.from_numpy(segment)[top:top + side, left:left + side]
    image = F.interpolate(image[None], size=(resolution, resolution), mode="bilinear", antialias=True)[0]
    segment = F.interpolate(segment[None, None], size=(resolution, resolution), mode="nearest-exact")[0, 0]
    mean = torch.tensor(IMAGENET_MEAN).reshape(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).reshape(3, 1, 1)
    return {"image": (image - mean) / std, "segment": F.one_hot(segment.long()).bool()}


def write_clevrtex_like(path: Path, records: int) -> Path:
    """`records` ClevrTex-format records (240×320 PNG image, v3 WebP segment and depth) of synthetic scenes."""
    config = SynthConfig(resolution=240, width=320, max_objects=6)
    depth = np.tile(np.linspace(0, 255, 320, dtype=np.uint8), (240, 1))
    with LmdbWriter(path) as writer:
        for start in range(0, records, 25):
            for image, index_map in zip(*generate(config, "val", start, min(25, records - start))):
                writer.append({"image": encode_png_rgb(image), "segment": encode_index_map(index_map),
                               "depth": encode_index_map(depth)})
    return path


def loader_vs_reference(work: Path, records: int = 60, repeats: int = 5) -> dict:
    """Samples/s of the harness's ClevrTex loader and of `reference_item` on the same records, one torch thread,
    the two alternating record by record (a shared machine's load hits both alike); medians over `repeats`."""
    path = work / "clevrtex-like" / "clevrtex" / "val.lmdb"
    if not path.is_file():
        write_clevrtex_like(path, records)
    split = LmdbSplit(path, DATASETS.get("clevrtex"), "val")
    raw = [split._reader.get(key) for key in split._reader.keys]
    resolution = split.resolution
    identical = all(torch.equal(split[i][k], reference_item(raw[i], resolution)[k])
                    for i in range(len(raw)) for k in ("image", "segment"))
    ours, reference = [], []
    with torch_threads(1):
        for _ in range(max(repeats, 1)):
            t_ours = t_ref = 0.0
            for i in range(len(raw)):
                start = time.perf_counter()
                split[i]
                middle = time.perf_counter()
                reference_item(split._reader.get(split._reader.keys[i]), resolution)
                t_ours, t_ref = t_ours + middle - start, t_ref + time.perf_counter() - middle
            ours.append(t_ours)
            reference.append(t_ref)
    ours_s, reference_s = statistics.median(ours), statistics.median(reference)
    return {"records": len(raw), "ours samples/s": len(raw) / ours_s, "reference samples/s": len(raw) / reference_s,
            "speed-up": reference_s / ours_s, "identical": identical}


@dataclass
class EvalTimes:
    """Uncached and cached (second pass, reading what the first wrote) evaluations of one model on one split."""

    uncached_images_per_s: float
    cached_images_per_s: float | None
    identical: bool | None
    uncached_loader: float
    cached_loader: float | None


def eval_with_and_without_cache(model, dataset, config, device: torch.device, cache_dir: Path,
                                loader: bool = True) -> EvalTimes:
    n = len(dataset)
    _timed_eval(model, dataset, config, device, limit=config.eval.batch_size)  # warm-up
    seconds, plain = _timed_eval(model, dataset, config, device)
    uncached_loader = _loader_rate(dataset, config.eval.batch_size) if loader else float("nan")
    if frozen_backbone(model) is None:
        return EvalTimes(n / seconds, None, None, uncached_loader, None)
    kw = dict(device=device, amp=config.eval.amp, batch_size=config.eval.batch_size)
    with use_feature_cache(cache_dir, model, dataset, **kw) as (evaluated, use):
        _timed_eval(model, evaluated, config, device)
    if use.status != "written":
        raise BenchError(f"bench: the feature cache was not written ({use.status})")
    with use_feature_cache(cache_dir, model, dataset, **kw) as (evaluated, use):
        cached_seconds, cached = _timed_eval(model, evaluated, config, device)
        cached_loader = _loader_rate(evaluated, config.eval.batch_size) if loader else float("nan")
    return EvalTimes(n / seconds, n / cached_seconds, same_ledger(cached, plain), uncached_loader,
                     cached_loader)


def train_step(model, config, images: torch.Tensor, device: torch.device, cached: bool):
    """Training's own optimiser step (harness.run.step.Stepper: the model's optimiser, hook and clip, the schedule)
    on `images`, as a callable taking steps 0, 1, 2, ... (the model is put in training mode). `cached`: the batch's
    backbone features are computed once here and given to every step, as a feature cache would."""
    images = images.to(device, torch_dtype(config))
    features = None
    if cached:
        with torch.no_grad(), forward_precision(device, config.train.amp):
            features = frozen_backbone(model)(images)
    stepper = Stepper(model, config.train, device, config.train.amp)
    steps = itertools.count()
    model.train()

    def step() -> None:
        stepper(next(steps), lambda: (model(images) if features is None else model(images, features=features)).losses)

    return step


def step_flops(step) -> int:
    """FLOPs of one call of `step` as torch's FLOP counter sees them (matmuls and convolutions, forward + backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def metrics_seconds(model, config, batch: dict, device: torch.device, repeats: int) -> float:
    """Median seconds of turning one evaluation batch's attention into per-image metrics."""
    model.eval()
    with torch.inference_mode(), forward_precision(device, config.eval.amp):
        attention = model(batch["image"].to(device)).masks[config.eval.mask].float()
    gt = batch["segment"].to(device)
    size = config.eval.resolution or gt.shape[1]
    return median_seconds(lambda: segmentation_metrics(attention_to_segments(attention, size), gt.flatten(1, 2),
                                                       protocol=DEFAULT_PROTOCOL), device, repeats)


def bench_method(method: str, dataset: str, amp: str, *, data_dir: Path, cache_dir: Path, device: torch.device,
                 steps: int, batch_size: int | None, peak_gflops: float) -> list[dict]:
    """The table rows of one method config at one amp: cache off, and on where the method has a frozen backbone."""
    overrides = [f"train.amp={AMPS[amp]}", f"eval.amp={AMPS[amp]}"]
    if batch_size is not None:
        overrides += [f"train.batch_size={batch_size}", f"eval.batch_size={batch_size}"]
    config = get_config(method, dataset, overrides)
    torch.manual_seed(0)
    model = build_model(config, device, initial=False).eval()
    val = open_split(data_dir, dataset, "val")
    batch = collate([val[i % len(val)] for i in range(config.train.batch_size)])
    metrics_ms = 1e3 * metrics_seconds(model, config, collate([val[i % len(val)] for i in range(
        config.eval.batch_size)]), device, repeats=max(steps, 1))
    evals = eval_with_and_without_cache(model, val, config, device, cache_dir / f"{method}-{amp}")
    rows = []
    for cached in (False, True):
        if cached and evals.cached_images_per_s is None:
            continue
        one_step = train_step(model, config, batch["image"], device, cached)
        step = median_seconds(one_step, device, steps)
        flops = step_flops(one_step)
        model.eval()
        rows.append({"method": method, "dataset": dataset, "amp": amp, "cache": "on" if cached else "off",
                     "train ms/step": 1e3 * step, "train img/s": config.train.batch_size / step,
                     "train of peak": flops / step / 1e9 / peak_gflops,
                     "eval img/s": evals.cached_images_per_s if cached else evals.uncached_images_per_s,
                     "eval vs uncached": evals.cached_images_per_s / evals.uncached_images_per_s if cached else 1.0,
                     "metrics ms/batch": metrics_ms,
                     "loader samples/s": evals.cached_loader if cached else evals.uncached_loader,
                     "identical metrics": evals.identical if cached else None})
    return rows


def bench_backbone(method: str, dataset: str, amps: list[str], *, images: int, matmul: dict[str, float],
                   device: torch.device, work: Path) -> dict:
    """Forward-only evaluation of a full-size frozen-backbone config on `images` synthetic images (random weights):
    the ViT's achieved GFLOP/s against the matmul rate, and uncached vs cached evaluation."""
    config = get_config(method, dataset, [f"eval.batch_size={images}"])
    torch.manual_seed(0)
    model = build_model(config, device, initial=False).eval()
    backbone = frozen_backbone(model)
    vit = next((m for m in backbone.modules() if isinstance(m, DinoV2Backbone)), None) if backbone else None
    if vit is None:
        raise BenchError(f"bench: {method}/{dataset} has no frozen DINOv2 backbone to measure")
    data_dir = work / f"data-{config.resolution}"
    path = split_path(data_dir, "synthetic", "val")
    if not path.is_file():
        write_split(path, SynthConfig(resolution=config.resolution), "val", images)
    val = open_split(data_dir, "synthetic", "val")
    flops = vit.spec.forward_flops()
    rows = []
    for amp in amps:
        amp_config = get_config(method, dataset, [f"eval.batch_size={images}", f"eval.amp={AMPS[amp]}"])
        evals = eval_with_and_without_cache(model, val, amp_config, device, work / f"cache-{method}-{amp}",
                                            loader=False)
        x = torch.stack([val[i]["image"] for i in range(images)]).to(device)
        with torch.inference_mode(), forward_precision(device, AMPS[amp]):
            resized = vit_input(backbone, vit, x)
            seconds = median_seconds(lambda: vit(resized), device, repeats=3, warmup=0) / images
        achieved = flops / seconds / 1e9
        peak = matmul[matmul_name(device, amp)]
        rows.append({"amp": amp, "backbone ms/img": 1e3 * seconds, "backbone GFLOP/s": achieved,
                     "matmul GFLOP/s": peak, "fraction of peak": achieved / peak,
                     "eval img/s uncached": evals.uncached_images_per_s, "eval img/s cached": evals.cached_images_per_s,
                     "speed-up": evals.cached_images_per_s / evals.uncached_images_per_s,
                     "identical metrics": evals.identical})
    return {"config": f"{method}:{dataset}", "images": images, "resolution": config.resolution,
            "vit": asdict(vit.spec), "gflop_per_image": flops / 1e9, "reference_gflop_per_image":
            REFERENCE_VIT_S_GFLOP, "rows": rows}


def bench_linear_kernels(method: str, dataset: str, *, images: int, device: torch.device, repeats: int) -> list[dict]:
    """A full-size config's training step and masks-only evaluation forward (uncached and cached; random weights,
    a batch of `images` random images) with its linear layers through PyTorch's BLAS — the kernels the authors' code
    runs on — and through oneDNN (harness.nn.onednn), timed alternately."""
    config = get_config(method, dataset, [f"train.batch_size={images}", "train.amp=off"])
    torch.manual_seed(0)
    model = build_model(config, device, initial=False)
    x = torch.randn(images, 3, config.resolution, config.resolution, generator=torch.Generator().manual_seed(0))
    step = train_step(model, config, x, device, cached=False)
    with torch.no_grad(), cpu_linears(device, "blas"):
        features = frozen_backbone(model)(x)

    def forward(cached: bool):
        def run() -> None:
            model.eval()
            with torch.inference_mode(), model.masks_only():
                model(x) if not cached else model(x, features=features)
        return run

    def train() -> None:
        model.train()
        step()

    cases = {"training step": train, "eval forward": forward(False), "eval forward, cached": forward(True)}
    seconds = {(name, backend): [] for name in cases for backend in BACKENDS}
    for name, fn in cases.items():
        for backend in BACKENDS:
            with cpu_linears(device, backend):
                fn()  # warm-up (oneDNN builds its kernels on first use)
        for i in range(max(repeats, 1)):
            for backend in BACKENDS if i % 2 == 0 else BACKENDS[::-1]:
                with cpu_linears(device, backend):
                    seconds[(name, backend)].append(median_seconds(fn, device, repeats=1, warmup=0))
    rows = []
    for name in cases:
        blas, onednn = (statistics.median(seconds[(name, b)]) for b in ("blas", "onednn"))
        rows.append({"step": name, "images": images, "BLAS ms": 1e3 * blas, "oneDNN ms": 1e3 * onednn,
                     "oneDNN speed-up": blas / onednn})
    return rows


def vit_input(backbone: torch.nn.Module, vit: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """What `vit` receives inside `backbone(images)` (after the resize in front of it)."""
    seen = []
    handle = vit.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    try:
        backbone(images)
    finally:
        handle.remove()
    return seen[0]


def matmul_name(device: torch.device, amp: str) -> str:
    """The matmul dtype an amp setting really computes in: "fp32" where its autocast is off."""
    effective = autocast_in_effect(device, AMPS[amp])
    return "fp32" if effective == "off" else {"bfloat16": "bf16", "float16": "fp16"}[effective]


def format_table(columns, rows: list[dict]) -> str:
    """Aligned text: names left, numbers right (3 decimals below 1, 1 below 1000, none above); None as "—"."""

    def cell(value) -> str:
        if value is None:
            return "—"
        if isinstance(value, bool):
            return "yes" if value else "NO"
        if isinstance(value, float):
            if value != value:
                return "—"
            return f"{value:.3f}" if abs(value) < 1 else f"{value:.1f}" if abs(value) < 1000 else f"{value:.0f}"
        return str(value)

    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    numeric = [all(isinstance(row.get(c), (int, float)) and not isinstance(row.get(c), bool) or row.get(c) is None
                   for row in rows) for c in columns]
    lines = ["  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(columns, widths, numeric))]
    lines += ["  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(r, widths, numeric)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def default_methods(dataset: str) -> list[str]:
    """Every learned method with a config for `dataset`, in the registry's table order."""
    return methods_of_kind("learned", dataset)


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """torch's CPU threads set to `threads` (None: unchanged) for the block, restored after."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def run_bench(*, methods: list[str] | None = None, dataset: str = "synthetic", amps: list[str] = ("fp32",),
              steps: int = 3, images: int = 32, batch_size: int | None = None, data_dir: Path | None = None,
              flops_config: str | None = "dias:clevrtex", flops_images: int = 2, kernel_images: int = 8,
              matmul_size: int = 1024, matmul_seconds: float = 0.5, device: str = "cpu", threads: int | None = None,
              loader_records: int = 40, print_fn=print) -> dict:
    """Measure and print everything the module docstring lists; returns the numbers as a dict."""
    device = torch.device(device)
    methods = list(methods or default_methods(dataset))
    for amp in amps:
        if amp not in AMPS:
            raise BenchError(f"bench: unknown amp {amp!r}; valid: {', '.join(AMPS)}")
    with torch_threads(threads), tempfile.TemporaryDirectory(prefix="harness-bench-") as tmp:
        work = Path(tmp)
        if data_dir is None:
            if dataset != "synthetic":
                raise BenchError(f"bench: dataset {dataset!r} needs --data-dir holding {dataset}/val.lmdb")
            data_dir = work / "data"
            write_split(split_path(data_dir, "synthetic", "val"), SynthConfig(), "val", images)
        DATASETS.get(dataset)  # an unknown name stops here, listing the valid ones
        machine = {"device": device_description(device), "torch": torch.__version__,
                   "threads": torch.get_num_threads(), "hardware": hardware(device)}
        print_fn(f"machine: {machine['device']}, torch {machine['torch']}")
        if device.type == "cpu":
            print_fn(f"linear kernels: {machine['hardware']['linear']} — {machine['hardware']['linear_why']}")
        matmul = {}
        for amp in amps:
            name = matmul_name(device, amp)
            if name not in matmul:
                matmul[name] = matmul_gflops(MATMUL_DTYPES[name], device, matmul_size, matmul_seconds)
        if device.type == "cpu" and "fp32" in matmul and onednn_available():
            other = "blas" if cpu_linear_backend() == "onednn" else "onednn"
            matmul[f"fp32 {other}"] = matmul_gflops(torch.float32, device, matmul_size, matmul_seconds, other)
        rates = ", ".join(f"{name} {rate:.1f} GFLOP/s" for name, rate in matmul.items())
        print_fn(f"matmul {matmul_size}×{matmul_size}: {rates}")

        rows = []
        for method in methods:
            for amp in amps:
                rows += bench_method(method, dataset, amp, data_dir=data_dir, cache_dir=work / "cache",
                                     device=device, steps=steps, batch_size=batch_size,
                                     peak_gflops=matmul[matmul_name(device, amp)])
        n_images = len(open_split(data_dir, dataset, "val"))
        print_fn(f"\nmethods on {dataset} ({n_images} val images, random weights; train: {steps} timed steps; "
                 "train of peak = the step's counted FLOPs per second ÷ the matmul rate; eval vs uncached = "
                 "eval img/s ÷ the same evaluation running the backbone):")
        print_fn(format_table(ROW_COLUMNS, rows))

        loader = None
        if loader_records > 0:
            loader = loader_vs_reference(work, loader_records)
            print_fn("\nloader, ClevrTex format (240×320 PNG + WebP → 256²), one thread, against the authors' reader "
                     "written plainly (harness.bench.reference_item):")
            print_fn(format_table(LOADER_COLUMNS, [loader]))

        backbone = None
        if flops_config and flops_images > 0:
            method, _, config_dataset = flops_config.partition(":")
            backbone = bench_backbone(method, config_dataset, list(amps), images=flops_images, matmul=matmul,
                                      device=device, work=work)
            spec = backbone["vit"]
            print_fn(f"\n{backbone['config']} forward-only eval, {flops_images} synthetic {backbone['resolution']}² "
                     f"images, random weights; backbone ViT (hidden {spec['hidden']}, {spec['layers']} layers, "
                     f"patch {spec['patch']}, {spec['registers']} registers) at {spec['image_size']}²: "
                     f"{backbone['gflop_per_image']:.2f} GFLOP/image from its spec (2·params·tokens + attention), "
                     f"{REFERENCE_VIT_S_GFLOP} reference for ViT-S/14 at 224²")
            print_fn(format_table(BACKBONE_COLUMNS, backbone["rows"]))

        kernels = None
        if flops_config and kernel_images > 0 and device.type == "cpu" and onednn_available():
            method, _, config_dataset = flops_config.partition(":")
            kernels = bench_linear_kernels(method, config_dataset, images=kernel_images, device=device, repeats=3)
            print_fn(f"\n{method}:{config_dataset}, fp32, linear layers through PyTorch's BLAS (the authors' kernels) "
                     "and through oneDNN (harness.nn.onednn), random weights, median of 3 alternating timings:")
            print_fn(format_table(KERNEL_COLUMNS, kernels))
    return {"machine": machine, "matmul_size": matmul_size, "matmul_gflops": matmul, "rows": rows,
            "loader": loader, "backbone": backbone, "linear_kernels": kernels}
