"""harness.nn.onednn: fp32 linear layers through oneDNN, checked against float64 and PyTorch's own F.linear."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness import cpu
from harness.compute import device_description, hardware
from harness.errors import HarnessError
from harness.nn import onednn
from harness.nn.onednn import ENV, cpu_linear_backend, cpu_linears, linear

pytestmark = pytest.mark.skipif(not onednn.onednn_available(), reason="this PyTorch build has no oneDNN linear")
SHAPES = [((2088, 384), 1536), ((8, 261, 384), 1152), ((3, 5, 7, 33), 17), ((1, 1), 1)]


def _tensors(shape, out, bias=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g)
    w = torch.randn(out, shape[-1], generator=g) / shape[-1] ** 0.5
    b = torch.randn(out, generator=g) if bias else None
    return x, w, b


def _float64(*tensors):
    return [None if t is None else t.double() for t in tensors]


@pytest.mark.parametrize("shape,out", SHAPES)
@pytest.mark.parametrize("bias", [True, False])
def test_forward_matches_float64_as_closely_as_blas(shape, out, bias):
    x, w, b = _tensors(shape, out, bias)
    exact = F.linear(*_float64(x, w, b))
    ours, blas = linear(x, w, b), F.linear(x, w, b)
    assert ours.shape == blas.shape and ours.dtype == torch.float32
    # fp32 sums in another order: both within a few ulps of the float64 result, and of each other
    scale = exact.abs().max().item() + 1
    assert (ours.double() - exact).abs().max().item() < 4e-6 * scale
    assert (ours.double() - exact).abs().max().item() < 4 * (blas.double() - exact).abs().max().item() + 1e-7 * scale


def test_non_contiguous_input_is_read_by_value():
    x, w, b = _tensors((40, 30), 20)
    strided = x.t().contiguous().t()
    assert not strided.is_contiguous()
    torch.testing.assert_close(linear(strided, w, b), linear(x, w, b), rtol=0, atol=0)


@pytest.mark.parametrize("shape,out", SHAPES[:3])
@pytest.mark.parametrize("bias", [True, False])
def test_gradients_match_float64_autograd(shape, out, bias):
    x, w, b = _tensors(shape, out, bias)
    grad = torch.randn(*shape[:-1], out, generator=torch.Generator().manual_seed(1))
    leaves = [t.clone().requires_grad_() for t in (x, w, b) if t is not None]
    linear(*leaves, *([None] if not bias else [])).backward(grad)
    exact = [t.clone().requires_grad_() for t in _float64(x, w, b) if t is not None]
    F.linear(*exact, *([None] if not bias else [])).backward(grad.double())
    for ours, oracle in zip(leaves, exact, strict=True):
        scale = oracle.grad.abs().max().item() + 1
        assert ours.grad.shape == oracle.grad.shape
        assert (ours.grad.double() - oracle.grad).abs().max().item() < 4e-6 * scale


def test_gradient_only_where_asked():
    x, w, b = _tensors((6, 5), 4)
    w.requires_grad_()
    linear(x, w, b).sum().backward()
    assert x.grad is None and w.grad is not None
    torch.testing.assert_close(w.grad, torch.ones(6, 4).t() @ x)


@pytest.mark.parametrize("case", ["float64", "1-d input", "empty", "bf16 autocast"])
def test_other_inputs_go_to_f_linear_unchanged(case):
    x, w, b = _tensors((7, 9), 5)
    if case == "float64":
        x, w, b = _float64(x, w, b)
    elif case == "1-d input":
        x = x[0]
    elif case == "empty":
        x = x[:0]
    if case == "bf16 autocast":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            ours, theirs = linear(x, w, b), F.linear(x, w, b)
        assert ours.dtype == torch.bfloat16
    else:
        ours, theirs = linear(x, w, b), F.linear(x, w, b)
    assert torch.equal(ours, theirs)


def test_repeatable_to_the_bit():
    x, w, b = _tensors((8, 261, 384), 1536)
    assert torch.equal(linear(x, w, b), linear(x, w, b))


def _counting(monkeypatch):
    calls = []
    real = onednn._onednn

    def counted(input, weight, bias):
        calls.append(tuple(weight.shape))
        return real(input, weight, bias)

    monkeypatch.setattr(onednn, "_onednn", counted)
    return calls


def test_cpu_linears_routes_linear_and_multihead_attention_projections(monkeypatch):
    calls = _counting(monkeypatch)
    torch.manual_seed(0)
    layer = nn.TransformerDecoderLayer(32, 4, 64, dropout=0.0, batch_first=True, norm_first=True, bias=False)
    x, memory = torch.randn(2, 10, 32), torch.randn(2, 3, 32)
    reference = layer(x, memory)
    with cpu_linears(torch.device("cpu"), "onednn"):
        assert F.linear is linear
        out = layer(x, memory)
        out.sum().backward()
    assert F.linear is onednn._BLAS_LINEAR
    # forward: self-attention's packed q,k,v and output; cross-attention's q, packed k,v and output; the feed-forward
    assert calls[:7] == [(96, 32), (32, 32), (32, 32), (64, 32), (32, 32), (64, 32), (32, 64)]
    # backward: every weight's gradient, and every input's but the memory's (it needs none)
    assert len(calls) == 7 + 7 + 6
    torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-6)


def test_cpu_linears_restores_on_error_and_nests():
    with pytest.raises(RuntimeError, match="boom"), cpu_linears(torch.device("cpu")):
        raise RuntimeError("boom")
    assert F.linear is onednn._BLAS_LINEAR
    with cpu_linears(torch.device("cpu"), "onednn"):
        with cpu_linears(torch.device("cpu"), "blas"):
            assert F.linear is onednn._BLAS_LINEAR
            with cpu_linears(torch.device("cpu")):  # no backend named: the enclosing one's
                assert F.linear is onednn._BLAS_LINEAR
        assert F.linear is linear
    assert F.linear is onednn._BLAS_LINEAR


def test_cpu_linears_is_a_no_op_off_the_cpu_and_with_blas(monkeypatch):
    with cpu_linears(torch.device("meta")):
        assert F.linear is onednn._BLAS_LINEAR
    monkeypatch.setenv(ENV, "blas")
    assert cpu_linear_backend() == "blas"
    with cpu_linears(torch.device("cpu")):
        assert F.linear is onednn._BLAS_LINEAR


def test_unknown_backend_is_one_clear_error(monkeypatch):
    monkeypatch.setenv(ENV, "mkl")
    with pytest.raises(HarnessError, match=r"\$HARNESS_CPU_LINEAR='mkl': expected one of onednn, blas"):
        cpu_linear_backend()
    with pytest.raises(HarnessError, match="unknown CPU linear backend 'mkl'"), cpu_linears(torch.device("cpu"), "mkl"):
        pass


def test_records_name_the_linear_backend(monkeypatch):
    monkeypatch.setenv(ENV, "onednn")
    assert device_description(torch.device("cpu")).endswith("linear layers: onednn)")
    assert hardware(torch.device("cpu"))["linear_why"] == "$HARNESS_CPU_LINEAR=onednn"
    monkeypatch.setenv(ENV, "blas")
    assert device_description(torch.device("cpu")).endswith("linear layers: blas)")
    h = hardware(torch.device("cpu"))
    assert (h["linear"], h["env"][ENV], h["threads"]) == ("blas", "blas", torch.get_num_threads())
    assert h["cpu"] == cpu.cpu_info().model and h["isa"] == torch.backends.cpu.get_cpu_capability()


@pytest.mark.parametrize("vendor,avx512,env,expected", [
    ("AuthenticAMD", True, {}, "onednn"),  # MKL runs AVX2 on AMD: oneDNN's AVX-512 is about twice as fast
    ("GenuineIntel", True, {}, "blas"),  # MKL runs AVX-512 on Intel: oneDNN is no faster (measured 1.01×)
    ("GenuineIntel", True, {"MKL_ENABLE_INSTRUCTIONS": "AVX2"}, "onednn"),  # MKL capped below AVX-512
    ("AuthenticAMD", True, {"ONEDNN_MAX_CPU_ISA": "AVX2"}, "blas"),  # oneDNN capped: no gain left
    ("AuthenticAMD", True, {"DNNL_MAX_CPU_ISA": "avx2"}, "blas"),  # oneDNN's older variable name
    ("AuthenticAMD", False, {}, "blas"),  # no AVX-512: both libraries run AVX2
    ("GenuineIntel", False, {}, "blas"),
    ("AuthenticAMD", True, {ENV: "blas"}, "blas"),  # forced either way
    ("GenuineIntel", True, {ENV: "onednn"}, "onednn"),
])
def test_the_kernel_default_follows_the_machine(monkeypatch, vendor, avx512, env, expected):
    fake = cpu.CpuInfo(model="a CPU", vendor=vendor, avx512=avx512)
    monkeypatch.setattr(cpu, "cpu_info", lambda: fake)
    monkeypatch.setattr(onednn, "cpu_info", lambda: fake)
    for name in (ENV, *cpu.KERNEL_ENV):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    backend, why = onednn.cpu_linear_choice()
    assert backend == expected and why
