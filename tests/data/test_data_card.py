"""Data cards: hashes against hashlib, the size+mtime keyed cache, and the format each kind of file shows."""

import hashlib
import json
import os

import numpy as np
from data_helpers import index_buf, jpeg, png, write_authors_lmdb

from harness.data import data_card, open_split
from harness.data.card import CACHE_SUFFIX


def _clevrtex_file(tmp_path, ext=".webp", n=3):
    records = [{"image": png(np.full((8, 8, 3), i, np.uint8)), "segment": index_buf(np.zeros((8, 8), np.uint8), ext),
                "depth": index_buf(np.zeros((8, 8), np.uint8), ext)} for i in range(n)]
    return write_authors_lmdb(tmp_path / "clevrtex" / "val.lmdb", records)


def test_card_of_an_authors_file(tmp_path):
    path = _clevrtex_file(tmp_path)
    card = data_card(path)
    assert card == {
        "dataset": "clevrtex", "split": "val", "format": "v3", "records": 3,
        "file_sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "file_bytes": path.stat().st_size,
        "keys_sha256": hashlib.sha256(b"000000\n000001\n000002").hexdigest(),
        "fields": ["depth", "image", "segment"], "path": str(path.resolve()),
    }


def test_card_format_v4(tmp_path):
    assert data_card(_clevrtex_file(tmp_path, ".png"))["format"] == "v4"


def test_card_of_a_pre_v3_voc_file_says_why(tmp_path):
    background_as_0 = np.pad(np.ones((2, 2), np.uint8), 3)  # index 0 = 88 % of the pixels
    records = [{"image": jpeg(np.zeros((8, 8, 3), np.uint8)), "segment": index_buf(background_as_0)}]
    path = write_authors_lmdb(tmp_path / "voc" / "train.lmdb", records)
    card = data_card(path)
    assert card["format"] == "pre-v3" and "background" in card["problem"]


def test_file_hash_is_cached_by_size_and_mtime(tmp_path):
    path = _clevrtex_file(tmp_path)
    true_sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert data_card(path)["file_sha256"] == true_sha
    cache = path.with_name(path.name + CACHE_SUFFIX)
    stamp = json.loads(cache.read_text())
    assert stamp == {"size": path.stat().st_size, "mtime_ns": path.stat().st_mtime_ns, "sha256": true_sha}
    # A matching stamp is trusted (that is what saves minutes on COCO) ...
    cache.write_text(json.dumps({**stamp, "sha256": "f" * 64}))
    assert data_card(path)["file_sha256"] == "f" * 64
    # ... and a touched file is hashed again.
    os.utime(path, ns=(stamp["mtime_ns"] + 10**9, stamp["mtime_ns"] + 10**9))
    assert data_card(path)["file_sha256"] == true_sha


def test_split_exposes_its_card(tmp_path):
    path = _clevrtex_file(tmp_path)
    ds = open_split(tmp_path, "clevrtex", "val")
    assert ds.card == data_card(path) and ds.card["records"] == len(ds)
