"""`python -m harness data ...`: cards as JSON, and one-line errors with exit code 2 for broken files."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from data_helpers import index_buf, png, voc_palette_png, write_authors_lmdb

import harness.cli
from harness.data import data_card

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli(monkeypatch, capsys):
    """The real entry point with only the data verbs registered (other verbs are other modules' tests)."""
    monkeypatch.setattr(harness.cli, "VERBS", ("data",))

    def run(*argv):
        code = harness.cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_synth_then_info(cli, tmp_path):
    code, out, _ = cli("data", "synth", "--out", tmp_path, "--train", 12, "--val", 4, "--resolution", 16, "--seed", 3)
    assert code == 0
    cards = json.loads(out)
    assert cards["train"]["records"] == 12 and cards["val"]["records"] == 4
    assert cards["val"]["generator"]["resolution"] == 16 and cards["val"]["generator"]["seed"] == 3
    code, out, _ = cli("data", "info", tmp_path / "synthetic" / "val.lmdb", "--verify")
    assert code == 0 and json.loads(out) == cards["val"]


def test_convert_voc(cli, tmp_path):
    indices = np.zeros((8, 8))
    indices[2:6, 2:6] = 255  # a thin outline ...
    indices[3:5, 3:5] = 1  # ... around an object
    for year in ("VOC2012", "VOC2007"):
        voc_palette_png(tmp_path / "raw" / year / "SegmentationObject" / "a.png", indices)
        (tmp_path / "raw" / year / "JPEGImages").mkdir()
        (tmp_path / "raw" / year / "JPEGImages" / "a.jpg").write_bytes(b"jpeg")
    code, out, _ = cli("data", "convert", "voc", "--src", tmp_path / "raw", "--out", tmp_path / "data")
    assert code == 0
    cards = json.loads(out)
    assert {s: (c["dataset"], c["split"], c["records"], c["format"]) for s, c in cards.items()} == {
        "train": ("voc", "train", 1, "v3"), "val": ("voc", "val", 1, "v3")}
    # Without the boundary colour the converter refuses: exit 2, one line naming the file.
    voc_palette_png(tmp_path / "raw" / "VOC2007" / "SegmentationObject" / "a.png", np.ones((2, 2)))
    code, _, err = cli("data", "convert", "voc", "--src", tmp_path / "raw", "--out", tmp_path / "data2")
    assert code == 2 and "a.png: no boundary pixels" in err and err.count("\n") == 1


def test_info_on_a_truncated_file(cli, tmp_path):
    path = write_authors_lmdb(tmp_path / "clevrtex" / "val.lmdb",
                              [{"image": os.urandom(30_000), "segment": index_buf(np.zeros((2, 2), np.uint8))}])
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - 8192)
    code, out, err = cli("data", "info", path)
    assert code == 2 and out == ""
    assert err.startswith(f"error: {path}: truncated LMDB file") and err.count("\n") == 1


def test_info_without_keys(cli, tmp_path):
    path = write_authors_lmdb(tmp_path / "x.lmdb", [{"image": b""}], with_keys=False)
    code, _, err = cli("data", "info", path)
    assert code == 2 and f"{path}: key b'__keys__' is missing" in err


def test_verify_finds_a_corrupt_record(cli, tmp_path):
    good = {"image": png(np.zeros((4, 4, 3), np.uint8)), "segment": index_buf(np.zeros((4, 4), np.uint8))}
    path = write_authors_lmdb(tmp_path / "clevrtex" / "val.lmdb", [good, good, b"garbage"])
    code, out, _ = cli("data", "info", path)
    assert code == 0 and json.loads(out)["records"] == 3  # the card alone reads only the first record
    code, _, err = cli("data", "info", path, "--verify")
    assert code == 2 and f"{path}: key b'000002': cannot unpickle" in err


def test_verify_refuses_pre_v3(cli, tmp_path):
    record = {"image": png(np.zeros((4, 4, 3), np.uint8)), "segment": index_buf(np.ones((4, 4), np.uint8)),
              "clazz": np.array([1], np.uint8)}
    path = write_authors_lmdb(tmp_path / "coco" / "val.lmdb", [record])
    code, out, _ = cli("data", "info", path)
    assert code == 0 and json.loads(out)["format"] == "pre-v3"
    code, _, err = cli("data", "info", path, "--verify")
    assert code == 2 and "pre-v3 coco file" in err and "python -m harness data convert coco" in err


def test_missing_file(cli, tmp_path):
    code, _, err = cli("data", "info", tmp_path / "nope.lmdb")
    assert code == 2 and "nope.lmdb: no such LMDB file" in err


def test_module_entry_point_end_to_end(tmp_path):
    """`python -m harness data synth` as a user runs it (`data info` runs in-process above)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    synth = subprocess.run([sys.executable, "-m", "harness", "data", "synth", "--out", str(tmp_path),
                            "--train", "20", "--val", "5"], cwd=REPO, env=env, capture_output=True, text=True)
    assert synth.returncode == 0, synth.stderr
    assert json.loads(synth.stdout)["val"] == data_card(tmp_path / "synthetic" / "val.lmdb")


def test_synthetic_resolution_is_validated(cli, tmp_path):
    code, _, err = cli("data", "synth", "--out", tmp_path, "--resolution", "2")
    assert code == 2 and "at least 4 pixels" in err
