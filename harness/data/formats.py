"""Which version of the authors' converters wrote a file, and refusal of the layouts the v3 loader misreads.

v3 (06e8039) and v4 (cc1d545) differ only in the index-map encoding (WebP vs PNG, docs/reference.md#what-v4-changed);
both read identically. Older files share the container but not the content (docs/reference.md#coco-panoptic,
docs/reference.md#pascal-voc):
* COCO before v3 merged stuff into index 0 at conversion and has no `isthing` → detected by key presence.
* VOC before v3 (and VVO's VOC) painted boundary pixels black, so index 0 is the large background instead
  of thin boundary outlines → detected by the area of index 0 in a few records.
VVO-era COCO files (extra `bbox` key) and ClevrTex files of every era have v3 content and are accepted;
index-format VVO files are otherwise byte-for-byte the same layout, so nothing more can be told apart.
"""

from __future__ import annotations

import numpy as np

from harness.data.codec import decode_index_map, index_map_version
from harness.data.errors import CorruptDataError, UnsupportedFormatError
from harness.data.lmdb_io import LmdbReader
from harness.data.specs import DATASETS

# In a v3 VOC file index 0 is the thin boundary outlines (a few % of an image); in a pre-v3 one it is the
# background (typically well over half). The median over a few records separates the two with a wide margin.
VOC_PROBE_RECORDS = 8
VOC_INDEX0_MAX_FRACTION = 0.3


def segment_version(reader: LmdbReader, key: bytes, record: dict) -> str:
    """"v3" (WebP) or "v4" (PNG) from the magic bytes of the record's segment buffer."""
    if "segment" not in record:
        raise CorruptDataError(f"{reader.path}: key {key!r}: record has no 'segment' (fields: {sorted(record)})")
    version = index_map_version(record["segment"])
    if version is None:
        raise CorruptDataError(f"{reader.path}: key {key!r}: 'segment' is neither WebP (v3) nor PNG (v4)")
    return version


def pre_v3_refusal(reader: LmdbReader, dataset: str, reason: str) -> UnsupportedFormatError:
    spec = DATASETS.get(dataset)
    return UnsupportedFormatError(
        f"{reader.path}: pre-v3 {dataset} file: {reason}. The v3 loader would misread it; re-convert it from "
        f"the raw data ({spec.raw_source}) with `{spec.make_command}`")


def pre_v3_reason(reader: LmdbReader, dataset: str) -> str | None:
    """Why the file holds pre-v3 content for `dataset`, or None if it does not."""
    if not reader.keys:
        return None
    if dataset == "coco":
        key = reader.keys[0]
        if "isthing" not in reader.get(key):
            return (f"record {key!r} has no 'isthing' (DIAS files before v3 merged stuff into index 0 at "
                    "conversion)")
    if dataset == "voc":
        picks = np.unique(np.linspace(0, len(reader.keys) - 1, VOC_PROBE_RECORDS).round().astype(int))
        fractions = []
        for i in picks:
            key = reader.keys[i]
            index_map = decode_index_map(reader.get(key).get("segment"))
            if index_map is None:
                raise CorruptDataError(f"{reader.path}: key {key!r}: 'segment' does not decode")
            fractions.append(float((index_map == 0).mean()))
        median = float(np.median(fractions))
        if median > VOC_INDEX0_MAX_FRACTION:
            return (f"index 0 covers a median {median:.0%} of the pixels of {len(picks)} records, so it is the "
                    "background with the boundary outlines merged in (VVO / DIAS before v3), not the thin "
                    "boundary outlines of a v3 file")
    return None


def detect_format(reader: LmdbReader, dataset: str) -> tuple[str, str | None]:
    """(version, reason): "v3"/"v4" from the first record's segment encoding ("empty" for a file without
    records), and why the content is pre-v3 for `dataset` (None if it is not)."""
    if not reader.keys:
        return "empty", None
    key = reader.keys[0]
    return segment_version(reader, key, reader.get(key)), pre_v3_reason(reader, dataset)


def check_supported(reader: LmdbReader, dataset: str) -> str:
    """The file's version; raises UnsupportedFormatError for pre-v3 content."""
    version, reason = detect_format(reader, dataset)
    if reason:
        raise pre_v3_refusal(reader, dataset, reason)
    return version
