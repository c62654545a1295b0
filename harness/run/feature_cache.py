"""Frozen-backbone feature cache: evaluate DIAS, DINOSAUR, SLATE and SlotDiffusion without re-running DINOv2.

Their DINOv2 (`model.frozen_backbone()`, harness.contract) is frozen, so its output for an image is fixed by the
backbone's weights, the image as the deterministic val transform makes it, and how the forward is computed. The
cache keeps that output per record key in one LMDB file (harness.data.lmdb_io) per identity:

    backbone   sha256 of the backbone's state_dict (names, dtypes, shapes, bytes) and its module repr (the
               architecture and the 256 → 224 resize in front of it)
    data       the split's data-card fingerprint (file and key hashes, not where the file lies)
    transform  the transform's class and fields (ValTransform at resolution R). Random train augmentation is
               refused: its images are not a function of the record. Training without augmentation reads a
               split opened with train=False, which has this same identity.
    compute    device type, the autocast dtype in effect, the batch size, which kernels compute the linear layers
               (harness.nn.onednn), torch and transformers versions: each can change the features' low bits
    storage    "float32" (default, exact) or "float16" (half the size, not exact)

The file is `<dir>/<dataset>-<split>-<sha256 of the identity, 20 hex>.lmdb` and its __meta__ holds the identity: any
change gives another file name, so a stale file is never read, and a file whose meta disagrees with its name is
refused. Released checkpoints of one method carry the same pretrained backbone, so their seeds share one file.

Writing. A cache is written by an ordinary evaluation of the whole split in one process: a forward hook copies
the backbone's output while the evaluation runs exactly as it would uncached, and the file appears (atomically)
only once every record was seen in order. An evaluation of a `limit`ed prefix, or one shared by data-parallel
processes, reads a cache but writes none.

Exactness. A later evaluation gets each item's features with the item and calls `model(images, features=...)`.
With float32 storage these are the very tensors the backbone produced (restored to its output dtype), so the
metrics are identical to an uncached evaluation (tests/run/test_feature_cache.py checks per-image metrics of a
DIAS checkpoint). The batch size is in the identity because GPU kernels may round differently for other batch
shapes; on CPU the ViT's per-image output does not depend on the batch (also tested), so a `limit`ed read, whose
last batch is shorter, stays exact there. float16 storage is not exact: it moves a few argmax pixels and so
per-image metrics (docs/experiments.md#2026-11-24-speed-of-data-metrics-and-the-feature-cache); it is there to halve
the files on request.

SLATE and SlotDiffusion also run a frozen tokenizer on the images; it stays uncached (only DINOv2's output is
stored), so their items still carry images. Size: c·h·w·4 bytes per image in float32 (384·16·16·4 = 393 KB at
256²: COCO val ≈ 2.0 GB, ClevrTex val ≈ 3.9 GB).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import lmdb
import torch
from torch import nn
from torch.utils.data import Dataset

from harness.compute import forward_precision
from harness.contract import SlotModel
from harness.data.card import data_card_fingerprint
from harness.data.lmdb_io import LmdbReader, LmdbWriter
from harness.data.transforms import ValTransform
from harness.errors import HarnessError
from harness.io import exclusive
from harness.nn.checkpoint import module_sha256
from harness.nn.onednn import cpu_linear_backend

FORMAT = "harness.feature-cache/1"
STORAGE = {"float32": torch.float32, "float16": torch.float16}
DEFAULT_STORAGE = "float32"
class FeatureCacheError(HarnessError):
    pass


def frozen_backbone(model: SlotModel) -> nn.Module | None:
    """The backbone the model declares frozen (`SlotModel.frozen_backbone`), or None (e.g. `sa` and the reference
    rows, and models computing in float64: the cache keeps float32 outputs). Refuses a backbone with trainable
    parameters: its output would change."""
    backbone = model.frozen_backbone()
    if backbone is None or any(p.dtype != torch.float32 for p in backbone.parameters()):
        return None
    trainable = [name for name, p in backbone.named_parameters() if p.requires_grad]
    if trainable:
        raise FeatureCacheError(f"{type(model).__name__}: its declared frozen backbone is not frozen ({trainable[0]} "
                                f"and {len(trainable) - 1} more parameters train): its features cannot be cached")
    return backbone


def autocast_in_effect(device: torch.device, amp: str) -> str:
    """The dtype the evaluation's autocast really uses ("off" where it is a no-op, e.g. "fp16" on CPU)."""
    context = forward_precision(device, amp)
    return str(context.fast_dtype).removeprefix("torch.") if isinstance(context, torch.autocast) else "off"


def linear_kernels(device: torch.device, amp: str) -> str:
    """Which kernels compute the fp32 linear layers: "onednn" or "blas" on the CPU (harness.nn.onednn), else
    the device's own ("cuda", or "autocast" where autocast decides)."""
    if autocast_in_effect(device, amp) != "off":
        return "autocast"
    return cpu_linear_backend() if device.type == "cpu" else device.type


def transform_identity(dataset) -> dict:
    transform = getattr(dataset, "transform", None)
    if not isinstance(transform, ValTransform):
        raise FeatureCacheError(f"{getattr(dataset, 'path', dataset)}: its transform {transform!r} is not the "
                                "deterministic val transform, so its images (and their features) are not a function "
                                "of the record; open the split with train=False to cache features")
    return {"name": type(transform).__name__, **asdict(transform)}


def cache_identity(backbone: nn.Module, dataset, *, device: torch.device, amp: str, batch_size: int,
                   storage: str = DEFAULT_STORAGE) -> dict:
    """Everything the cached features depend on, as plain JSON values (see the module docstring)."""
    if storage not in STORAGE:
        raise FeatureCacheError(f"feature cache storage must be one of {sorted(STORAGE)}, got {storage!r}")
    card = dataset.card
    identity = {
        "format": FORMAT,
        "backbone": {"sha256": module_sha256(backbone), "module": repr(backbone)},
        "data": {"dataset": card["dataset"], "split": card["split"], "records": card["records"],
                 "card": data_card_fingerprint(card)},
        "transform": transform_identity(dataset),
        "compute": {"device": device.type, "autocast": autocast_in_effect(device, amp), "batch_size": batch_size,
                    "linear": linear_kernels(device, amp),
                    "torch": torch.__version__, "transformers": metadata.version("transformers")},
        "storage": storage,
    }
    return json.loads(json.dumps(identity, sort_keys=True))


def cache_path(cache_dir: str | Path, identity: dict) -> Path:
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]
    return Path(cache_dir) / f"{identity['data']['dataset']}-{identity['data']['split']}-{digest}.lmdb"


def _record_keys(dataset) -> list[bytes]:
    return [k.encode() if isinstance(k, str) else k for k in dataset.keys]


class CachedFeatures(Dataset):
    """`base`'s items, each with "feature": the cached backbone output for its record key, in the backbone's dtype."""

    def __init__(self, base, path: str | Path, identity: dict):
        self.base, self.path = base, Path(path)
        self._reader = LmdbReader(self.path)
        meta = self._reader.meta or {}
        if meta.get("identity") != identity:
            raise FeatureCacheError(f"{self.path}: this feature cache was made for another backbone, split, "
                                    "transform or compute setting than its name says; delete the file")
        self._keys = _record_keys(base)
        if self._reader.keys != self._keys:
            raise FeatureCacheError(f"{self.path}: its record keys differ from those of {getattr(base, 'path', base)}; "
                                    "delete the file")
        self.keys, self.card = base.keys, base.card
        self.dtype = getattr(torch, meta["feature_dtype"])
        self.shape = tuple(meta["feature_shape"])

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict:
        feature = self._reader.get(self._keys[index]).get("feature")
        if feature is None or tuple(feature.shape) != self.shape:
            raise FeatureCacheError(f"{self.path}: key {self._keys[index]!r}: no feature of shape {self.shape}")
        return {**self.base[index], "feature": torch.from_numpy(feature).to(self.dtype)}


class _Recorder:
    """Forward hook on the backbone: stores each image's output under the next record key, in split order.

    The evaluation must pass the split in order, one process, each image once: the first image of every batch is
    compared with the split's item at that position, so a shuffled, sharded or repeated pass stops with an error
    instead of filing features under the wrong keys."""

    def __init__(self, writer: LmdbWriter, dataset, storage: str):
        self.writer, self.dataset, self.storage = writer, dataset, STORAGE[storage]
        self.keys = _record_keys(dataset)
        self.seen = 0
        self.dtype: torch.dtype | None = None
        self.shape: tuple[int, ...] | None = None

    def __call__(self, module, inputs, output: torch.Tensor) -> None:
        if self.seen + len(output) > len(self.keys):
            raise FeatureCacheError(f"{self.writer.path}: the backbone ran on more images than the split's "
                                    f"{len(self.keys)}; a feature cache is written by one pass over the split")
        if not torch.equal(inputs[0][0].cpu(), self.dataset[self.seen]["image"]):
            raise FeatureCacheError(f"{self.writer.path}: the backbone's input is not item {self.seen} of the split; "
                                    "a feature cache is written by one in-order pass over the split")
        self.dtype, self.shape = output.dtype, tuple(output.shape[1:])
        stored = output.detach().to("cpu", self.storage).numpy()
        for image in stored:
            self.writer.append({"feature": image}, key=self.keys[self.seen])
            self.seen += 1

    def meta(self) -> dict:
        if self.seen != len(self.keys):
            raise FeatureCacheError(f"{self.writer.path}: the evaluation passed {self.seen} of {len(self.keys)} "
                                    "images through the backbone; nothing was written")
        return {"feature_dtype": str(self.dtype).removeprefix("torch."), "feature_shape": list(self.shape)}


@dataclass
class CacheUse:
    """What the cache did for one evaluation (goes into the result record's `cost`)."""

    status: str  # "hit", "written", "not written: ...", "not applicable: ..."
    path: Path | None = None

    def describe(self) -> dict:
        return {"status": self.status, "path": None if self.path is None else str(self.path)}


@contextlib.contextmanager
def use_feature_cache(cache_dir: str | Path | None, model: nn.Module, dataset, *, device: torch.device, amp: str,
                      batch_size: int, limit: int | None = None, storage: str = DEFAULT_STORAGE):
    """Yield (the dataset to evaluate, CacheUse or None) for evaluating `model` on `dataset` with `evaluate(...)`.

    Hit: `dataset` wrapped so that items carry cached features. Miss over the whole split: `dataset` as it is,
    while the backbone's outputs are recorded and written when the block ends without an error. No `cache_dir`,
    methods without a frozen backbone and `limit`ed misses get `dataset` unchanged and nothing is written.
    """
    if cache_dir is None:
        yield dataset, None
        return
    backbone = frozen_backbone(model)
    if backbone is None:
        yield dataset, CacheUse(f"not applicable: {type(model).__name__} has no float32 frozen backbone taking "
                                "features")
        return
    identity = cache_identity(backbone, dataset, device=device, amp=amp, batch_size=batch_size, storage=storage)
    path = cache_path(cache_dir, identity)
    if path.is_file():
        yield CachedFeatures(dataset, path, identity), CacheUse("hit", path)
        return
    if limit is not None and limit < len(dataset):
        yield dataset, CacheUse(f"not written: the evaluation covers {limit} of {len(dataset)} images", path)
        return
    if torch.distributed.is_available() and torch.distributed.is_initialized() \
            and torch.distributed.get_world_size() > 1:
        yield dataset, CacheUse("not written: each process of a data-parallel evaluation sees part of the split",
                                path)
        return
    with contextlib.ExitStack() as stack:
        try:
            writer = stack.enter_context(LmdbWriter(path))
        except (OSError, lmdb.Error) as e:
            raise FeatureCacheError(f"{path}: cannot write a feature cache there ({e})") from None
        recorder = _Recorder(writer, dataset, storage)
        handle = backbone.register_forward_hook(recorder)
        try:
            yield dataset, CacheUse("written", path)
        finally:
            handle.remove()
        writer.meta = {"identity": identity, **recorder.meta()}


def ensure_features(cache_dir: str | Path, backbone: nn.Module, dataset, *, device: torch.device, amp: str,
                    batch_size: int, storage: str = DEFAULT_STORAGE) -> CachedFeatures:
    """`dataset` with its cached backbone features, computing the cache first if it does not exist: one in-order
    pass of the backbone over the whole split, as an evaluation would run it (same autocast and batch size, hence
    the same identity and file). Concurrent callers (cells running at once) wait for one writer."""
    identity = cache_identity(backbone, dataset, device=device, amp=amp, batch_size=batch_size, storage=storage)
    path = cache_path(cache_dir, identity)
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(path.with_name(path.name + ".writing")):
        if not path.is_file():
            _write_features(path, identity, backbone, dataset, device=device, amp=amp, batch_size=batch_size,
                            storage=storage)
    return CachedFeatures(dataset, path, identity)


def _write_features(path: Path, identity: dict, backbone: nn.Module, dataset, *, device: torch.device, amp: str,
                    batch_size: int, storage: str) -> None:
    from torch.utils.data import DataLoader

    from harness.data import collate

    print(f"caching {identity['data']['dataset']}/{identity['data']['split']} backbone features "
          f"({len(dataset)} images) in {path}", flush=True)
    backbone = backbone.eval()
    # a private generator: a DataLoader draws its base seed at every iterator, which would shift the global stream
    # that training's own randomness comes from (a cached run must train as an uncached one)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate,
                        generator=torch.Generator())
    with LmdbWriter(path) as writer:
        recorder = _Recorder(writer, dataset, storage)
        handle = backbone.register_forward_hook(recorder)
        try:
            with torch.inference_mode(), forward_precision(device, amp):
                for batch in loader:
                    backbone(batch["image"].to(device))
        finally:
            handle.remove()
        writer.meta = {"identity": identity, **recorder.meta()}
