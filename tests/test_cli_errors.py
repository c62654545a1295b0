"""Bad input, typed as a user would: each case is one `error:` line on stderr, exit code 2, no traceback, and nothing
runs or is written before the error."""

import pytest
import torch

from harness.cli import main
from harness.data import SynthConfig, write_synthetic
from harness.nn.checkpoint import save_weights


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_synthetic(root, SynthConfig(resolution=32, seed=5), train=4, val=4)
    return root


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error(code, err) -> str:
    lines = err.strip().splitlines()
    assert code == 2, err
    assert lines and lines[0].startswith("error: ") and "Traceback" not in err, err
    return err


SET_CASES = {
    "train.lrr=1": "no field 'lrr'; valid: steps, batch_size, lr",
    "train.lr=abc": "expected a number, got 'abc'",
    "train.lr": "expected PATH=VALUE",
    "train.steps=-5": "train.steps=-5: must be > 0",
    "train.steps=0": "must be > 0",
    "train.batch_size=0": "train.batch_size=0: must be > 0",
    "train.lr=0": "train.lr=0.0: must be > 0",
    "eval.batch_size=-2": "must be > 0",
    "method=slate": "fixed by the registry",
    "train.amp=fp8": "train.amp=fp8: expected one of fp16, bf16, off",
    "train.augment=crop": "expected one of authors, flip, off",
    "train.compile=fast": "train.compile=fast: expected one of off, ",
}


@pytest.mark.parametrize("override", SET_CASES)
def test_every_set_problem_is_one_error_before_anything_runs(override, capsys, tmp_path, data_dir):
    for argv in (("train", "--method", "dias", "--dataset", "synthetic", "--data-dir", data_dir, "--out",
                  tmp_path / "run"),
                 ("reproduce", "--table", "mini", "--results", tmp_path / "res", "--data-dir", tmp_path / "d",
                  "--out", tmp_path / "rep")):
        code, out, err = run(capsys, *argv, "--set", override)
        assert SET_CASES[override] in one_error(code, err) and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # no run directory, no generated data, no report


def test_unknown_names_list_the_valid_ones(capsys, tmp_path, data_dir):
    code, _, err = run(capsys, "train", "--method", "diass", "--dataset", "synthetic", "--data-dir", data_dir,
                       "--out", tmp_path / "r")
    assert "unknown method 'diass'; valid:" in one_error(code, err) and "dias" in err
    code, _, err = run(capsys, "reproduce", "--table", "mimi", "--results", tmp_path)
    assert "unknown table 'mimi'; valid:" in one_error(code, err)
    code, _, err = run(capsys, "metrics", "explain", "dias-v9")
    assert "unknown protocol 'dias-v9'" in one_error(code, err)


def test_a_bad_linear_backend_is_one_error_before_anything_runs(capsys, tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("HARNESS_CPU_LINEAR", "mkl")
    code, _, err = run(capsys, "train", "--method", "dias", "--dataset", "synthetic", "--data-dir", data_dir,
                       "--out", tmp_path / "run")
    assert "$HARNESS_CPU_LINEAR='mkl': expected one of onednn, blas" in one_error(code, err)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content, message", [
    (b"garbage, not a checkpoint", "is not a torch checkpoint"),
    (b"", "is empty (0 bytes)"),
    ("truncated", "is truncated or corrupt"),
])
def test_unreadable_checkpoints_are_named_as_such(content, message, capsys, tmp_path, data_dir):
    path = tmp_path / "weights.pth"
    if content == "truncated":
        save_weights(torch.nn.Linear(64, 64), tmp_path / "whole.pth")
        content = (tmp_path / "whole.pth").read_bytes()[:500]
    path.write_bytes(content)
    code, _, err = run(capsys, "eval", "--method", "dias", "--dataset", "synthetic", "--data-dir", data_dir,
                       "--checkpoint", path, "--output", tmp_path / "out.json")
    assert message in one_error(code, err) and len(err.strip().splitlines()) == 1
    assert "weights_only=False" not in err and not (tmp_path / "out.json").exists()


def test_a_checkpoint_of_another_method_is_summarised_in_at_most_ten_lines(capsys, tmp_path, data_dir):
    from harness.registry import create_model

    save_weights(create_model("dinosaur", "synthetic"), tmp_path / "dinosaur.pth")
    code, _, err = run(capsys, "eval", "--method", "dias", "--dataset", "synthetic", "--data-dir", data_dir,
                       "--checkpoint", tmp_path / "dinosaur.pth", "--output", tmp_path / "out.json")
    lines = one_error(code, err).strip().splitlines()
    assert len(lines) <= 10 and "does not fit dias (synthetic config)" in lines[0]
    assert any(line.startswith("  missing: ") for line in lines) and any("… and" in line for line in lines)


def test_real_data_tables_list_the_missing_files_one_per_line(capsys, tmp_path):
    code, _, err = run(capsys, "reproduce", "--table", "v3", "--results", tmp_path)
    lines = one_error(code, err).strip().splitlines()
    assert lines[0] == "error: table 'v3' needs real data: pass --data-dir DIR holding"
    assert "  <data-dir>/coco/val.lmdb" in lines and "where to get them:" in lines
    assert all(len(line) < 400 for line in lines)
    code, _, err = run(capsys, "reproduce", "--table", "v3", "--results", tmp_path, "--data-dir", tmp_path / "none",
                       "--checkpoints", tmp_path / "ckpt")
    assert "is missing 3 data file(s)" in one_error(code, err)


def test_a_missing_data_dir_is_one_error(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--method", "dias", "--dataset", "synthetic", "--data-dir",
                       tmp_path / "nothing", "--out", tmp_path / "run")
    assert "nothing" in one_error(code, err) and not (tmp_path / "run").exists()


def test_an_output_path_through_a_file_is_one_error_naming_the_file(capsys, tmp_path, data_dir):
    (tmp_path / "afile").write_text("not a directory")
    for argv in (("train", "--method", "dias", "--dataset", "synthetic", "--data-dir", data_dir, "--out",
                  tmp_path / "afile" / "run"),
                 ("eval", "--method", "dias", "--dataset", "synthetic", "--data-dir", data_dir, "--checkpoint",
                  tmp_path / "afile", "--output", tmp_path / "afile" / "out.json"),
                 ("reproduce", "--table", "mini-ci", "--results", tmp_path / "afile" / "runs")):
        code, _, err = run(capsys, *argv)
        assert one_error(code, err).strip().endswith(f"{tmp_path / 'afile'} is a file, not a directory"), err
        assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_a_read_only_or_forbidden_output_directory_is_one_error_before_anything_runs(capsys, tmp_path, data_dir,
                                                                                    monkeypatch):
    import os

    real_statvfs, real_access = os.statvfs, os.access
    monkeypatch.setattr(os, "statvfs", lambda p: type("S", (), {"f_flag": real_statvfs(p).f_flag | os.ST_RDONLY})())
    argv = ("train", "--method", "dias", "--dataset", "synthetic", "--data-dir", data_dir, "--out", tmp_path / "run")
    code, _, err = run(capsys, *argv)
    assert one_error(code, err).strip() == f"error: {tmp_path}: read-only file system"
    monkeypatch.setattr(os, "statvfs", real_statvfs)
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(tmp_path) else real_access(p, mode))
    code, _, err = run(capsys, *argv)
    assert one_error(code, err).strip() == f"error: {tmp_path}: permission denied"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("errno_, message", [(28, "no space left on the device"), (30, "read-only file system"),
                                             (13, "permission denied")])
def test_a_failing_write_is_one_error_naming_the_file_and_leaves_nothing_half_written(errno_, message, capsys,
                                                                                       tmp_path, data_dir,
                                                                                       monkeypatch):
    """The disk fills up (or turns read-only, or permissions change) while the result record is written."""
    import pathlib

    from harness.registry import create_model

    save_weights(create_model("dias", "synthetic"), tmp_path / "w.pth")
    output = tmp_path / "out" / "record.json"
    real = pathlib.Path.write_bytes

    def failing(self, data):
        if self.name.startswith(".record.json."):
            raise OSError(errno_, "simulated", str(self))
        return real(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", failing)
    code, _, err = run(capsys, "eval", "--method", "dias", "--dataset", "synthetic", "--data-dir", data_dir,
                       "--checkpoint", tmp_path / "w.pth", "--output", output, "--gallery", "0")
    assert one_error(code, err).strip() == f"error: {output}: {message}" and len(err.strip().splitlines()) == 1
    assert list((tmp_path / "out").iterdir()) == []  # no record, no temporary
