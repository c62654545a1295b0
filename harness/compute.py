"""How this process computes, in one place: the precision of every forward, the CPU's linear kernels and threads,
deterministic mode, and the description of all of it that result records and reports carry.

Every forward the harness makes (training step, evaluation, feature extraction, recognition probe, bench) runs inside
`forward_precision(device, amp)`: the authors' AMP (fp16 autocast on CUDA, or bf16), else full precision, where on the
CPU the linear layers run through the kernels `harness.nn.onednn.cpu_linear_choice` picks for this machine.
"""

from __future__ import annotations

import contextlib
import os
import re

import torch

from harness.cpu import cpu_info, kernel_environment
from harness.nn.onednn import ENV as LINEAR_ENV
from harness.nn.onednn import cpu_linear_choice, cpu_linears


def forward_precision(device: torch.device, amp: str):
    """How a forward computes: the authors' AMP — fp16 autocast on CUDA, "bf16" autocast anywhere — or else full
    precision, where on the CPU the linear layers run through this machine's kernels (harness.nn.onednn)."""
    if amp == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if amp == "fp16" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return cpu_linears(device) if device.type == "cpu" else contextlib.nullcontext()


DETERMINISTIC_ENV = "HARNESS_DETERMINISTIC"


def set_deterministic(threads: int | None = None) -> None:
    """`--deterministic`: bit-identical reruns on one machine — deterministic algorithms (cuDNN and cuBLAS included),
    PyTorch's BLAS for the linear layers unless $HARNESS_CPU_LINEAR names a library, and a fixed number of threads
    (`threads`, else the current count; a worker pool's cells keep their fixed share). Set in the environment too, so
    that worker processes and cluster jobs inherit it (`apply_deterministic`). Records say so (`hardware`)."""
    os.environ[DETERMINISTIC_ENV] = "1"
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    os.environ.setdefault(LINEAR_ENV, "blas")
    if threads is not None:
        torch.set_num_threads(threads)
    apply_deterministic()


def apply_deterministic() -> None:
    """Deterministic mode in this process if its environment asks for it (`set_deterministic`)."""
    if os.environ.get(DETERMINISTIC_ENV) != "1":
        return
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def device_description(device: torch.device) -> str:
    """One line: the GPU's name, or the CPU with its threads and linear kernels."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({cpu_info().model}, {torch.get_num_threads()} threads, linear layers: {cpu_linear_choice()[0]})"


def _library_version(pattern: str) -> str | None:
    match = re.search(pattern, torch.__config__.show())
    return match.group(1) if match else None


def hardware(device: torch.device) -> dict:
    """What computed a result, for its record: device, CPU model and vendor, the ISA ATen dispatches to, the linear
    kernels and why, threads, deterministic mode, torch and its MKL / oneDNN versions, kernel-selecting variables."""
    device = torch.device(device)
    cpu = cpu_info()
    linear, why = cpu_linear_choice() if device.type == "cpu" else (device.type, "the device's own kernels")
    return {
        "device": device_description(device), "cpu": cpu.model, "vendor": cpu.vendor,
        "isa": torch.backends.cpu.get_cpu_capability(), "linear": linear, "linear_why": why,
        "threads": torch.get_num_threads(), "deterministic": torch.are_deterministic_algorithms_enabled(),
        "torch": str(torch.__version__), "mkl": _library_version(r"Math Kernel Library Version ([\w.\-]+)"),
        "onednn": _library_version(r"MKL-DNN (v[\d.]+)"), "env": kernel_environment(),
    }


def describe_hardware(h: dict | None) -> str:
    """A record's `hardware` in one line, e.g. "AMD EPYC (AVX512), linear layers onednn, 1 thread, torch 2.13.0"."""
    if not h:
        return "unknown hardware (records from before the harness named it)"
    threads = h.get("threads")
    parts = [f"{h.get('cpu', '?')} ({h.get('isa', '?')})", f"linear layers {h.get('linear', '?')}",
             f"{threads} thread{'s' if threads != 1 else ''}", f"torch {h.get('torch', '?')}"]
    if h.get("device") and not h["device"].startswith("cpu"):
        parts.insert(0, h["device"])
    if h.get("deterministic"):
        parts.append("deterministic")
    if h.get("env"):
        parts.append(" ".join(f"{k}={v}" for k, v in sorted(h["env"].items())))
    return ", ".join(parts)


# The parts of `hardware` that change which kernels compute a number (the device line and the reasons do not).
KERNEL_FIELDS = ("cpu", "vendor", "isa", "linear", "threads", "deterministic", "torch", "mkl", "onednn", "env")


def same_kernels(a: dict | None, b: dict | None) -> bool:
    return bool(a) and bool(b) and all(a.get(k) == b.get(k) for k in KERNEL_FIELDS)
