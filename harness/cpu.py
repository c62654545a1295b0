"""What CPU this process runs on, and which instruction sets its kernel libraries are allowed to use.

The same fp32 training gives other numbers on another CPU because the kernels that compute it differ: MKL picks its
code path by vendor (AVX-512 on Intel, AVX2 on AMD), oneDNN JIT-compiles for the instructions it finds, ATen
dispatches its vectorised loops by ISA, and every reduction depends on the thread count. Records name these facts
(harness.compute.hardware) so that a difference between two machines can be told from a difference of code.
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass
from pathlib import Path

# Environment variables that change which kernels compute a result (recorded with it when set).
KERNEL_ENV = ("HARNESS_CPU_LINEAR", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA",
              "ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
# ONEDNN_MAX_CPU_ISA values below AVX-512 (oneDNN's names), and MKL_ENABLE_INSTRUCTIONS values below it.
_ONEDNN_BELOW_AVX512 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2")
_MKL_BELOW_AVX512 = ("SSE4_2", "AVX", "AVX2", "AVX2_E1")


@dataclass(frozen=True)
class CpuInfo:
    model: str
    vendor: str  # "GenuineIntel", "AuthenticAMD", ... ("" where the OS does not say)
    avx512: bool  # the CPU has AVX-512F

    @property
    def short_vendor(self) -> str:
        return {"GenuineIntel": "Intel", "AuthenticAMD": "AMD"}.get(self.vendor, self.vendor or "unknown vendor")


@functools.cache
def cpu_info() -> CpuInfo:
    """The CPU's model name, vendor and AVX-512 support, from /proc/cpuinfo on Linux (else what `platform` knows)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip() not in fields:
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    model = fields.get("model name") or platform.processor() or platform.machine() or "unknown CPU"
    return CpuInfo(model=model, vendor=fields.get("vendor_id", ""), avx512="avx512f" in fields.get("flags", "").split())


def onednn_may_use_avx512() -> bool:
    """Whether oneDNN's JIT may use AVX-512 here: the CPU has it and ONEDNN_MAX_CPU_ISA (DNNL_MAX_CPU_ISA) allows it."""
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").upper()
    return cpu_info().avx512 and cap not in _ONEDNN_BELOW_AVX512


def mkl_uses_avx512() -> bool:
    """Whether MKL's fp32 GEMM runs AVX-512 kernels here: only on Intel CPUs that have it (MKL runs AVX2 on other
    vendors), and not when MKL_ENABLE_INSTRUCTIONS caps it lower."""
    cap = os.environ.get("MKL_ENABLE_INSTRUCTIONS", "").upper()
    return cpu_info().vendor == "GenuineIntel" and cpu_info().avx512 and cap not in _MKL_BELOW_AVX512


def kernel_environment() -> dict[str, str]:
    """The kernel-selecting environment variables that are set, by name."""
    return {name: os.environ[name] for name in KERNEL_ENV if name in os.environ}
