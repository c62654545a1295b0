"""Data cards: what a result was computed on, so that two numbers are compared only on the same data.

    {"dataset", "split", "format" (v3 | v4 | pre-v3 | synthetic-v3 | textured-v3 ...), "records", "file_sha256",
     "file_bytes", "keys_sha256", "fields", "path", "generator" (generated data only), "problem" (pre-v3 only)}

`keys_sha256` is the sha256 of the record keys joined by b"\\n" (independent of the pickle protocol that
stored them). Hashing a 20 GB COCO file takes minutes, so the file hash is cached beside the file in
`<file>.sha256.json`, keyed by its size and mtime; where that cannot be written it is recomputed each time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

from harness.data.formats import detect_format
from harness.data.lmdb_io import LmdbReader
from harness.io import atomic_write_text

CACHE_SUFFIX = ".sha256.json"
_CHUNK = 1 << 22


def _cache_path(path: Path) -> Path:
    return path.with_name(path.name + CACHE_SUFFIX)


def file_sha256(path: str | os.PathLike) -> str:
    path = Path(path)
    stat = path.stat()
    stamp = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    cache = _cache_path(path)
    with contextlib.suppress(OSError, ValueError):
        cached = json.loads(cache.read_text())
        if {k: cached.get(k) for k in stamp} == stamp and isinstance(cached.get("sha256"), str):
            return cached["sha256"]
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    sha = digest.hexdigest()
    with contextlib.suppress(OSError):
        atomic_write_text(cache, json.dumps({**stamp, "sha256": sha}) + "\n")
    return sha


def data_card_fingerprint(card) -> str:
    """Two results (or caches) used the same split iff their data cards agree except for where the file lies
    (`path`). A string is taken to be a fingerprint already."""
    if isinstance(card, str):
        return card
    if isinstance(card, dict):
        card = {k: v for k, v in card.items() if k != "path"}
    return hashlib.sha256(json.dumps(card, sort_keys=True, default=str).encode()).hexdigest()[:16]


def keys_sha256(keys: list[bytes]) -> str:
    return hashlib.sha256(b"\n".join(keys)).hexdigest()


def data_card(path: str | os.PathLike, dataset: str | None = None, split: str | None = None,
              reader: LmdbReader | None = None) -> dict:
    """The card of one split file. `dataset`/`split` default to the file's `__meta__`, else its path
    (`<data_dir>/<dataset>/<split>.lmdb`)."""
    path = Path(path)
    reader = reader or LmdbReader(path)
    meta = reader.meta or {}
    dataset = dataset or meta.get("dataset") or path.parent.name
    split = split or meta.get("split") or path.stem
    version, problem = detect_format(reader, dataset)
    # A generated file's format names its generator's dataset (synthetic-v3, textured-v3).
    fmt = "pre-v3" if problem else (f"{dataset}-{version}" if "generator" in meta else version)
    card = {
        "dataset": dataset,
        "split": split,
        "format": fmt,
        "records": len(reader.keys),
        "file_sha256": file_sha256(path),
        "file_bytes": path.stat().st_size,
        "keys_sha256": keys_sha256(reader.keys),
        "fields": sorted(reader.get(reader.keys[0])) if reader.keys else [],
        "path": str(path.resolve()),
    }
    if "generator" in meta:
        card["generator"] = meta["generator"]
    if problem:
        card["problem"] = problem
    return card
