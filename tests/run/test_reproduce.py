"""`reproduce`: runs only missing cells, survives interruption without half-written results, refuses to mix
budgets, and says which real data files are missing and where to get them."""


import harness.engine.discovery as rep
from harness.cli import main
from harness.data import SynthConfig
from harness.results import read_record
from harness.tables import TABLES, Budget, Row, SynthData, Table

TINY = ["train.warmup_steps=1", "train.val_interval=4", "train.checkpoint_interval=2", "train.num_workers=0",
        "train.val_limit=4", "eval.batch_size=8"]

TOY = TABLES.register("test-toy", Table(
    name="test-toy", description="a tiny table for the runner tests",
    rows=(Row("dias", "synthetic", "dias-syn"), Row("dias", "synthetic", "dias-syn-untrained", "untrained"),
          Row("grid", "synthetic", "grid-syn"), Row("single-segment", "synthetic", "single-syn")),
    seeds=(0, 1), budget=Budget(steps=4, batch_size=4), data="synthetic",
    synth=SynthData(SynthConfig(resolution=32, seed=5), train=16, val=8),
))


def run(tmp_path, *extra):
    """The CLI with the cells in this process (`--jobs 1`), where the tests can count and interrupt them."""
    return main(["reproduce", "--table", "test-toy", "--data-dir", str(tmp_path / "data"), "--results",
                 str(tmp_path / "runs"), "--out", str(tmp_path / "reports"), "--jobs", "1"]
                + [a for o in TINY for a in ("--set", o)] + list(extra))


def count_runs(monkeypatch):
    ran = []
    real = rep.Runner.run

    def counting(self, cell):
        ran.append(cell.name)
        return real(self, cell)

    monkeypatch.setattr(rep.Runner, "run", counting)
    return ran


def test_reproduce_runs_missing_cells_only_and_survives_interruption(tmp_path, monkeypatch, capsys):
    real = rep.Runner.run
    calls = {"n": 0}

    def interrupted(self, cell):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # as if the run were killed while the third cell trained
        return real(self, cell)

    monkeypatch.setattr(rep.Runner, "run", interrupted)
    assert run(tmp_path) == 130
    records = sorted((tmp_path / "runs" / "test-toy").rglob("seed*.json"))
    assert len(records) == 2 and all(read_record(p) for p in records)
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]  # nothing half-written

    ran = count_runs(monkeypatch)
    assert run(tmp_path) == 0
    assert len(ran) == 6 and not {p.parent.name + "-" + p.stem[4:] for p in records} & set(ran)
    out = capsys.readouterr().out
    assert "8 cells, 2 done, 6 to run" in out and "dias-syn" in out
    assert {p.name for p in (tmp_path / "reports").iterdir()} == {"acc-test-toy.xlsx", "acc-test-toy.md",
                                                                  "acc-test-toy.html"}
    trained = read_record(tmp_path / "runs" / "test-toy" / "dias-syn" / "seed0.json")
    untrained = read_record(tmp_path / "runs" / "test-toy" / "dias-syn-untrained" / "seed0.json")
    assert trained["identity"]["steps"] == 4 and untrained["identity"]["steps"] == 0
    assert trained["identity"]["checkpoint"]["sha256"] and untrained["identity"]["checkpoint"]["kind"] == "untrained"

    ran.clear()
    assert run(tmp_path) == 0 and ran == []  # everything done: only the report is rendered again


def test_unequal_budgets_are_refused_unless_allowed(tmp_path, capsys):
    assert run(tmp_path, "--seeds", "0") == 0
    assert run(tmp_path, "--seeds", "1", "--set", "train.steps=5") == 2
    assert "refuses to aggregate mixed cells" in capsys.readouterr().err
    assert run(tmp_path, "--seeds", "1", "--allow-mixed") == 0


def test_records_of_another_config_are_refused_not_reused(tmp_path, monkeypatch, capsys):
    """A changed recipe (here an override; in practice changed code) must not silently reuse the old records."""
    assert run(tmp_path, "--seeds", "0") == 0
    record = tmp_path / "runs" / "test-toy" / "dias-syn" / "seed0.json"
    before = record.read_bytes()
    capsys.readouterr()
    ran = count_runs(monkeypatch)
    assert run(tmp_path, "--seeds", "0", "--set", "train.lr=1e-3") == 2
    err = capsys.readouterr().err
    assert "4 record(s) were made with another config" in err and str(record) in err and "--allow-mixed" in err
    assert ran == [] and record.read_bytes() == before
    assert run(tmp_path, "--seeds", "0", "--set", "train.lr=1e-3", "--allow-mixed") == 0
    assert "reusing 4 record(s) made with another config" in capsys.readouterr().out and ran == []
    assert run(tmp_path, "--seeds", "0") == 0 and ran == []  # the config they were made with: reused silently

    record.write_text("{not json")
    assert run(tmp_path, "--seeds", "0") == 2
    assert f"{record}: not a readable result record" in capsys.readouterr().err


def test_real_data_tables_name_missing_files_and_where_to_get_them(tmp_path, capsys):
    assert main(["reproduce", "--table", "v3", "--checkpoints", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "needs real data: pass --data-dir" in err and "dataset-coco" in err
    (tmp_path / "data" / "coco").mkdir(parents=True)
    assert main(["reproduce", "--table", "v3", "--checkpoints", str(tmp_path), "--data-dir",
                 str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert "missing 3 data file(s)" in err
    assert f"{tmp_path / 'data' / 'voc' / 'val.lmdb'}" in err and "releases/tag/dataset-voc" in err
