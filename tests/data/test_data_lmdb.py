"""LMDB container: round trips both ways with the authors' reading/writing procedure, atomic writes, and a
clear error (file + key) for every kind of broken file."""

import os
import pickle

import lmdb
import numpy as np
import pytest
import torch
from data_helpers import index_buf, png, random_image, read_authors_way, write_authors_lmdb

from harness.data.codec import decode_image, decode_index_map, encode_index_map
from harness.data.errors import CorruptDataError, DataFileMissingError
from harness.data.lmdb_io import COMMIT_EVERY, LmdbReader, LmdbWriter


def _records(n, rng, version="v3"):
    out = []
    for _ in range(n):
        image = random_image(rng, 6, 8)
        index_map = rng.integers(0, 5, (6, 8)).astype(np.uint8)
        out.append(({"image": png(image), "segment": encode_index_map(index_map, version)}, image, index_map))
    return out


def test_writer_output_reads_the_authors_way(tmp_path):
    rng = np.random.default_rng(0)
    items = _records(COMMIT_EVERY * 2 + 5, rng)  # spans several commits
    path = tmp_path / "clevrtex" / "train.lmdb"
    with LmdbWriter(path, meta={"dataset": "clevrtex"}) as w:
        for record, _, _ in items:
            w.append(record)
    keys, records = read_authors_way(path)
    assert keys == [f"{i:06d}".encode("ascii") for i in range(len(items))]
    assert all(type(k) is bytes for k in keys)
    for record, (_, image, index_map) in zip(records, items):
        assert set(record) == {"image", "segment"}
        assert type(record["image"]) is bytes
        seg = record["segment"]
        assert isinstance(seg, np.ndarray) and seg.dtype == np.uint8 and seg.ndim == 1
        assert bytes(seg[:4]) == b"RIFF" and bytes(seg[8:12]) == b"WEBP"
        np.testing.assert_array_equal(decode_index_map(seg), index_map)
        np.testing.assert_array_equal(decode_image(record["image"]), image)
    assert not (tmp_path / "clevrtex" / "train.lmdb-lock").exists()
    assert [p.name for p in path.parent.iterdir()] == ["train.lmdb"]  # no temporary left behind


def test_reader_reads_a_file_written_the_authors_way(tmp_path):
    rng = np.random.default_rng(1)
    items = _records(3, rng)
    path = write_authors_lmdb(tmp_path / "a.lmdb", [r for r, _, _ in items])
    reader = LmdbReader(path)
    assert reader.keys == [b"000000", b"000001", b"000002"]
    assert reader.meta is None
    for key, (record, _, index_map) in zip(reader.keys, items):
        got = reader.get(key)
        assert got["image"] == record["image"]
        np.testing.assert_array_equal(decode_index_map(got["segment"]), index_map)


def test_interrupted_write_leaves_no_file(tmp_path):
    path = tmp_path / "voc" / "val.lmdb"
    with pytest.raises(RuntimeError, match="boom"):
        with LmdbWriter(path) as w:
            w.append({"image": b"x", "segment": np.zeros(3, np.uint8)})
            raise RuntimeError("boom")
    assert list(path.parent.iterdir()) == []


def test_writer_is_deterministic(tmp_path):
    rng = np.random.default_rng(2)
    items = [r for r, _, _ in _records(70, rng)]
    for name in ("a.lmdb", "b.lmdb"):
        with LmdbWriter(tmp_path / name, meta={"k": 1}) as w:
            for record in items:
                w.append(record)
    assert (tmp_path / "a.lmdb").read_bytes() == (tmp_path / "b.lmdb").read_bytes()


def test_meta_record_is_json(tmp_path):
    with LmdbWriter(tmp_path / "m.lmdb", meta={"dataset": "synthetic", "n": [1, 2]}) as w:
        w.append({"image": b"", "segment": np.zeros(1, np.uint8)})
    assert LmdbReader(tmp_path / "m.lmdb").meta == {"dataset": "synthetic", "n": [1, 2]}


def test_reader_pickles_without_its_env_and_reopens(tmp_path):
    rng = np.random.default_rng(3)
    path = write_authors_lmdb(tmp_path / "a.lmdb", [r for r, _, _ in _records(2, rng)])
    reader = LmdbReader(path)
    reader.get(b"000000")
    assert reader._env is not None
    clone = pickle.loads(pickle.dumps(reader))
    assert clone._env is None
    assert clone.get(b"000001")["image"] == reader.get(b"000001")["image"]


def test_dataloader_workers_open_their_own_env(tmp_path):
    from harness.data import collate, open_split
    from harness.data.synthetic import SynthConfig, write_split

    write_split(tmp_path / "synthetic" / "val.lmdb", SynthConfig(resolution=8), "val", 6)
    ds = open_split(tmp_path, "synthetic", "val")
    ds[0]  # the main process opens an env first, as a training loop's sanity check would
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2, collate_fn=collate)
    batches = list(loader)
    assert [b["image"].shape[0] for b in batches] == [3, 3]
    torch.testing.assert_close(batches[0]["image"][0], ds[0]["image"])


# ---- broken files: each error names the file, and the key where one is at fault ----

def test_missing_file(tmp_path):
    with pytest.raises(DataFileMissingError, match=str(tmp_path / "nope.lmdb")):
        LmdbReader(tmp_path / "nope.lmdb")


def test_not_an_lmdb_file(tmp_path):
    path = tmp_path / "x.lmdb"
    path.write_bytes(b"hello" * 10)
    with pytest.raises(CorruptDataError, match=f"{path}: not a readable LMDB"):
        LmdbReader(path)


def test_truncated_file_is_refused_before_any_read(tmp_path):
    rng = np.random.default_rng(4)
    records = [{"image": rng.bytes(20_000), "segment": index_buf(np.zeros((4, 4), np.uint8))} for _ in range(20)]
    path = write_authors_lmdb(tmp_path / "t.lmdb", records)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    # Reading pages past the end would kill the process with SIGBUS; the reader must refuse first.
    with pytest.raises(CorruptDataError, match=f"{path}: truncated LMDB file"):
        LmdbReader(path)


def test_missing_keys_record(tmp_path):
    path = write_authors_lmdb(tmp_path / "k.lmdb", [{"image": b"", "segment": b""}], with_keys=False)
    with pytest.raises(CorruptDataError, match=rf"{path}: key b'__keys__' is missing"):
        LmdbReader(path)


def test_keys_record_of_wrong_type(tmp_path):
    path = write_authors_lmdb(tmp_path / "k.lmdb", [{"image": b""}], keys=["000000"])
    with pytest.raises(CorruptDataError, match=rf"{path}: key b'__keys__': expected a list of bytes"):
        LmdbReader(path)


def test_listed_key_absent(tmp_path):
    path = write_authors_lmdb(tmp_path / "k.lmdb", [{"image": b""}], keys=[b"000000", b"000007"])
    reader = LmdbReader(path)
    with pytest.raises(CorruptDataError, match=rf"{path}: key b'000007' is listed .* but absent"):
        reader.get(b"000007")


def test_corrupt_record(tmp_path):
    path = write_authors_lmdb(tmp_path / "c.lmdb", [b"\x80\x05not a pickle"])
    with pytest.raises(CorruptDataError, match=rf"{path}: key b'000000': cannot unpickle"):
        LmdbReader(path).get(b"000000")


def test_env_open_uses_the_authors_read_flags(tmp_path, monkeypatch):
    path = write_authors_lmdb(tmp_path / "f.lmdb", [{"image": b""}])
    seen = []
    real_open = lmdb.open

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return real_open(*args, **kwargs)

    monkeypatch.setattr(lmdb, "open", spy)
    LmdbReader(path).get(b"000000")
    assert seen and all(kw == {"subdir": False, "readonly": True, "lock": False, "readahead": False,
                               "meminit": False, "max_spare_txns": 4} for kw in seen)
    assert not os.path.exists(str(path) + "-lock")
