"""Drift check: passes on identical values, fails on planted drift and missing cells, tolerance rule by hand."""

import json

import pandas as pd
import pytest
from report_records import CARDS, uniform, write_cell

from harness.cli import main
from harness.report.drift import GoldenError, compare, read_golden, tolerance
from harness.tables import TABLES

V3 = TABLES.get("v3")
# percent: clevrtex 80/81/82 (std 1.0 → tolerance 2.0), coco 25.0/25.1/25.2 (std 0.1 → 0.5), voc 30 (std 0 → 0.5)
LEVELS = {"dias_r-clevrtex": (0.80, 0.81, 0.82), "dias_r-coco": (0.250, 0.251, 0.252), "dias_r-voc": (0.3, 0.3, 0.3)}


def write_v3(root, levels=LEVELS):
    for dataset in ("clevrtex", "coco", "voc"):
        CARDS.setdefault(dataset, {**CARDS["synthetic"], "dataset": dataset})
    for label, values in levels.items():
        for seed, level in zip((42, 43, 44), values):
            write_cell(root, V3, label, seed, uniform(level), steps=50_000, batch_size=32)


def test_golden_round_trip_passes_and_planted_drift_fails(tmp_path, capsys):
    results, golden = tmp_path / "results", tmp_path / "golden" / "v3.json"
    write_v3(results)
    assert main(["check-drift", "--table", "v3", "--results", str(results), "--write-golden", str(golden)]) == 0
    document = json.loads(golden.read_text())
    assert document["command"] == "python -m harness reproduce --table v3"
    assert document["written_by"].startswith("python -m harness check-drift --table v3 --results ")
    values = {(v["label"], v["metric"]): v for v in document["values"]}
    assert len(values) == 12
    assert values[("dias_r-clevrtex", "ari")]["mean"] == pytest.approx(81.0)
    assert values[("dias_r-clevrtex", "ari")]["std"] == pytest.approx(1.0)
    assert values[("dias_r-coco", "mbo")]["std"] == pytest.approx(0.1, abs=1e-5)  # float32 dataset means
    assert values[("dias_r-voc", "miou")]["seeds"] == [42, 43, 44]

    assert main(["check-drift", "--table", "v3", "--results", str(results), "--against", str(golden)]) == 0
    assert "12 values within tolerance" in capsys.readouterr().out

    # planted: coco seed 43 +3 points → mean +1.0 > 0.5; clevrtex seed 43 +2 points → mean +0.667 < 2.0
    write_v3(results, {**LEVELS, "dias_r-coco": (0.250, 0.281, 0.252), "dias_r-clevrtex": (0.80, 0.83, 0.82)})
    assert main(["check-drift", "--table", "v3", "--results", str(results), "--against", str(golden)]) == 1
    out = capsys.readouterr().out
    assert "4 metric(s) of table v3 drifted" in out
    assert "dias_r-coco ari: old 25.100 new 26.100 delta +1.000 tolerance 0.500" in out
    assert "clevrtex" not in out
    # a fixed tolerance overrides the rule
    assert main(["check-drift", "--table", "v3", "--results", str(results), "--against", str(golden),
                 "--tol", "1.5"]) == 0


def test_missing_cells_on_either_side_are_drift(tmp_path, capsys):
    results, golden = tmp_path / "results", tmp_path / "v3.json"
    write_v3(results, {k: v for k, v in LEVELS.items() if k != "dias_r-voc"})
    assert main(["check-drift", "--table", "v3", "--results", str(results), "--write-golden", str(golden)]) == 0
    write_v3(results)  # voc appears
    for path in (results / "v3" / "dias_r-coco").glob("*.json"):
        path.unlink()  # coco vanishes
    assert main(["check-drift", "--table", "v3", "--results", str(results), "--against", str(golden)]) == 1
    out = capsys.readouterr().out
    assert "dias_r-coco ari: missing from the fresh results (old 25.100, new —)" in out
    assert "dias_r-voc miou: not in the golden file (old —, new 30.000)" in out
    assert "8 metric(s)" in out


def test_tolerance_rule_by_hand():
    assert tolerance(0.4) == pytest.approx(0.8)  # 2 × std
    assert tolerance(0.1) == 0.5  # the 0.5-point floor
    assert tolerance(None) == 0.5 and tolerance(float("nan")) == 0.5
    assert tolerance(0.4, tol=0.1) == 0.1
    golden = {"values": [{"label": "x", "dataset": "d", "metric": "ari", "mean": 50.0, "std": 0.4},
                         {"label": "y", "dataset": "d", "metric": "ari", "mean": 50.0, "std": 0.1}]}

    def fresh(x, y):
        return pd.DataFrame({"label": ["x", "y"], "dataset": "d", "metric": "ari", "mean_pct": [x, y]})

    assert compare(golden, fresh(50.79, 49.51)) == []  # within 0.8 and 0.5
    drifts = compare(golden, fresh(50.81, 49.49))
    assert [(d.label, round(d.delta, 2), d.tolerance) for d in drifts] == [("x", 0.81, 0.8), ("y", -0.51, 0.5)]
    assert compare(golden, fresh(51.5, 48.6), tol=1.5) == []


def test_golden_of_another_table_or_protocol_is_refused(tmp_path, capsys):
    golden = tmp_path / "g.json"
    golden.write_text(json.dumps({"schema": "harness.golden/1", "table": "mini", "protocol": "dias-v3", "values": []}))
    with pytest.raises(GoldenError, match="golden values of table 'mini', not 'v3'"):
        read_golden(golden, V3)
    golden.write_text(json.dumps({"schema": "harness.golden/1", "table": "v3", "protocol": "exact", "values": []}))
    with pytest.raises(GoldenError, match="under protocol 'exact'"):
        read_golden(golden, V3)
    write_v3(tmp_path / "results")
    assert main(["check-drift", "--table", "v3", "--results", str(tmp_path / "results"), "--against",
                 str(tmp_path / "missing.json")]) == 2
    assert "no such golden file" in capsys.readouterr().err


def test_a_metric_undefined_on_both_sides_has_not_drifted():
    golden = {"values": [{"label": "x", "dataset": "d", "metric": "ari_fg", "mean": None, "std": None}]}
    fresh = pd.DataFrame({"label": ["x"], "dataset": "d", "metric": "ari_fg", "mean_pct": [float("nan")]})
    assert compare(golden, fresh) == []
    drifts = compare(golden, fresh.assign(mean_pct=[12.0]))
    assert [str(d) for d in drifts] == ["x ari_fg: undefined on one side (old —, new 12.000)"]
