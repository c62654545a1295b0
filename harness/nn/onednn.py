"""fp32 linear layers through oneDNN on the CPU, forward and backward.

PyTorch computes an fp32 `F.linear` on the CPU with its BLAS (MKL in the x86 wheels). MKL picks its code path by
CPU vendor, and on AMD processors with AVX-512 it runs its AVX2 kernels: half the machine's rate. oneDNN, which
PyTorch ships for convolutions, JIT-compiles GEMMs for the instructions the CPU has. Every linear layer of every
method (the frozen DINOv2, slot attention, the decoders, transformers' and `nn.MultiheadAttention`'s projections)
goes through `F.linear`, so `cpu_linears()` swaps that one function for `linear` below while a forward runs.

The numbers change only by float reassociation (another blocking of the same fp32 sums). The backward is oneDNN
too: d input = grad · W, d W = gradᵀ · input, d bias = Σ grad. What is not fp32 on the CPU (bf16 autocast,
float64, CUDA) and what is compiled goes to `F.linear` unchanged.

Which one runs by default follows a rule (`cpu_linear_choice`): oneDNN only where it is faster, i.e. where the CPU
has AVX-512, oneDNN may use it and MKL does not (any non-Intel CPU, or MKL_ENABLE_INSTRUCTIONS below AVX512); BLAS
everywhere else — on an Intel CPU with AVX-512, MKL's own kernels are as fast (measured in
docs/experiments.md#2026-12-01-linear-layers-through-onednn and
docs/experiments.md#2026-12-06-the-cpu-kernel-default). A rule rather than a timing: the same machine always picks the
same kernels, so its numbers repeat. `HARNESS_CPU_LINEAR=blas|onednn` forces either. Results record which one
computed them and why (harness.compute.hardware).
"""

from __future__ import annotations

import contextlib
import functools
import os

import torch
import torch.nn.functional as F

from harness.cpu import cpu_info, mkl_uses_avx512, onednn_may_use_avx512
from harness.errors import HarnessError

ENV = "HARNESS_CPU_LINEAR"
BACKENDS = ("onednn", "blas")
_BLAS_LINEAR = F.linear
_ACTIVE: list[str] = []  # backends of the cpu_linears contexts now open, innermost last


@functools.cache
def onednn_available() -> bool:
    """Whether this PyTorch build has oneDNN's linear (CPU builds with mkldnn; the op inductor uses) and it computes
    a small product as `F.linear` does: the op is internal to PyTorch, so its signature is checked, not assumed."""
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")):
        return False
    x, w, b = torch.arange(6.0).view(2, 3), torch.arange(12.0).view(4, 3), torch.arange(4.0)
    try:
        with torch.no_grad():
            return torch.equal(_onednn(x, w, b), _BLAS_LINEAR(x, w, b))
    except (RuntimeError, TypeError):
        return False


def cpu_linear_choice() -> tuple[str, str]:
    """("onednn" | "blas", why): what `cpu_linears()` uses on this machine — $HARNESS_CPU_LINEAR if set, else oneDNN
    exactly where the CPU has AVX-512 that oneDNN may use and MKL does not."""
    asked = os.environ.get(ENV)
    if asked is not None:
        if asked not in BACKENDS:
            raise HarnessError(f"${ENV}={asked!r}: expected one of {', '.join(BACKENDS)}")
        if asked == "onednn" and not onednn_available():
            return "blas", f"${ENV}=onednn, but this PyTorch build has no working oneDNN linear"
        return asked, f"${ENV}={asked}"
    cpu = cpu_info()
    if not onednn_available():
        return "blas", "this PyTorch build has no working oneDNN linear"
    if not onednn_may_use_avx512():
        return "blas", (f"oneDNN may not use AVX-512 here ({cpu.model}{'' if cpu.avx512 else ' has none'}), so it "
                        "would not be faster than MKL")
    if mkl_uses_avx512():
        return "blas", f"MKL runs its AVX-512 kernels on this {cpu.short_vendor} CPU ({cpu.model}): oneDNN is no faster"
    return "onednn", (f"MKL runs AVX2 kernels on this {cpu.short_vendor} CPU ({cpu.model}), oneDNN its AVX-512 ones: "
                      "about twice the matmul rate")


def cpu_linear_backend() -> str:
    """"onednn" or "blas": what `cpu_linears()` uses here (`cpu_linear_choice`)."""
    return cpu_linear_choice()[0]


def _onednn(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(input, weight, bias, "none", [], "")


class _OneDnnLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, weight, bias):
        ctx.save_for_backward(input, weight)
        ctx.has_bias = bias is not None
        return _onednn(input, weight, bias)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        input, weight = ctx.saved_tensors
        grad = grad.contiguous()
        rows = grad.reshape(-1, grad.shape[-1])
        grad_input = _onednn(grad, weight.t(), None) if ctx.needs_input_grad[0] else None
        grad_weight = None
        if ctx.needs_input_grad[1]:
            grad_weight = _onednn(rows.t().contiguous(), input.reshape(-1, input.shape[-1]).t(), None)
        grad_bias = rows.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_input, grad_weight, grad_bias


def _applies(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    tensors = (input, weight) if bias is None else (input, weight, bias)
    return (all(t.device.type == "cpu" and t.dtype == torch.float32 and t.layout == torch.strided for t in tensors)
            and input.dim() >= 2 and weight.dim() == 2 and input.numel() > 0
            and not torch.is_autocast_enabled("cpu") and not torch.compiler.is_compiling())


def linear(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """`F.linear`, computed by oneDNN when input, weight and bias are fp32 CPU tensors (else `F.linear` itself)."""
    if not _applies(input, weight, bias):
        return _BLAS_LINEAR(input, weight, bias)
    input = input.contiguous()
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (input, weight, bias)):
        return _OneDnnLinear.apply(input, weight, bias)
    return _onednn(input, weight, bias)


@contextlib.contextmanager
def cpu_linears(device: torch.device, backend: str | None = None):
    """While active on a CPU device with the oneDNN backend, `torch.nn.functional.linear` is `linear`: every
    `nn.Linear` and every `nn.MultiheadAttention` projection runs through oneDNN; with "blas" it is PyTorch's own.
    `backend` None: the enclosing `cpu_linears`' backend, else `cpu_linear_backend()`. Elsewhere a no-op."""
    if torch.device(device).type != "cpu":
        yield
        return
    backend = backend or (_ACTIVE[-1] if _ACTIVE else cpu_linear_backend())
    if backend not in BACKENDS:
        raise HarnessError(f"unknown CPU linear backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    use_onednn = backend == "onednn" and onednn_available()
    previous = F.linear
    F.linear = linear if use_onednn else _BLAS_LINEAR
    _ACTIVE.append(backend)
    try:
        yield
    finally:
        _ACTIVE.pop()
        F.linear = previous
