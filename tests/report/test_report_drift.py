"""Drift check, value by value: passes on identical values, fails on planted drift and missing values, passes new
rows, names both sides' hardware; tolerances by hand."""

import json

import pytest
from report_records import CARDS, uniform, write_cell

from harness.cli import main
from harness.report.drift import Comparison, FreshValues, GoldenError, compare, read_golden, report_lines
from harness.tables import TABLES

V3 = TABLES.get("v3")
LEVELS = {"dias_r-clevrtex": (0.80, 0.81, 0.82), "dias_r-coco": (0.250, 0.251, 0.252), "dias_r-voc": (0.3, 0.3, 0.3)}
AMD = {"cpu": "AMD EPYC", "vendor": "AuthenticAMD", "isa": "AVX512", "linear": "onednn", "threads": 1,
       "deterministic": False, "torch": "2.13.0", "mkl": "2024.2", "onednn": "v3.12.0", "env": {}}
INTEL = {**AMD, "cpu": "Intel Xeon", "vendor": "GenuineIntel", "linear": "blas", "threads": 2}


def write_v3(root, levels=LEVELS, hardware=AMD):
    for dataset in ("clevrtex", "coco", "voc"):
        CARDS.setdefault(dataset, {**CARDS["synthetic"], "dataset": dataset})
    for label, values in levels.items():
        for seed, level in zip((42, 43, 44), values):
            write_cell(root, V3, label, seed, uniform(level), steps=50_000, batch_size=32,
                       extra={"hardware": hardware})


def check(results, golden, *extra) -> int:
    return main(["check-drift", "--table", "v3", "--results", str(results), "--against", str(golden), *extra])


def test_golden_round_trip_passes_and_a_planted_shift_of_one_seed_fails(tmp_path, capsys):
    results, golden = tmp_path / "results", tmp_path / "golden" / "v3.json"
    write_v3(results)
    assert main(["check-drift", "--table", "v3", "--results", str(results), "--write-golden", str(golden),
                 "--tol", "0.05"]) == 0
    document = json.loads(golden.read_text())
    assert document["schema"] == "harness.golden/2" and document["command"] == "python -m harness reproduce --table v3"
    assert document["written_by"].startswith("python -m harness check-drift --table v3 --results ")
    assert document["tolerance"] == {"ari": 0.05, "ari_fg": 0.05, "mbo": 0.05, "miou": 0.05}
    assert document["hardware"] == [AMD]
    values = {(v["label"], v["metric"], v["seed"]): v["value"] for v in document["values"]}
    assert len(values) == 3 * 4 * 3  # rows × metrics × seeds
    assert values[("dias_r-clevrtex", "ari", 43)] == pytest.approx(81.0)
    assert values[("dias_r-coco", "mbo", 44)] == pytest.approx(25.2, abs=1e-4)  # float32 dataset means

    assert check(results, golden) == 0
    out = capsys.readouterr().out
    assert "36 values within tolerance" in out and "(36 identical)" in out and "different hardware" not in out

    # planted: coco seed 43 +0.1 point (mean +0.033, far inside any seed spread) fails; clevrtex seed 43 +0.04 passes
    write_v3(results, {**LEVELS, "dias_r-coco": (0.250, 0.252, 0.252), "dias_r-clevrtex": (0.80, 0.8104, 0.82)})
    assert check(results, golden) == 1
    out = capsys.readouterr().out
    assert "4 value(s) drifted beyond tolerance" in out
    assert "dias_r-coco seed 43 ari: old 25.100 new 25.200 delta +0.100 tolerance 0.050" in out
    assert "4 value(s) differ within tolerance" in out and "dias_r-clevrtex seed 43" in out
    assert check(results, golden, "--tol", "0.2") == 0  # an explicit tolerance replaces the golden file's


def test_missing_values_fail_and_new_rows_pass(tmp_path, capsys):
    results, golden = tmp_path / "results", tmp_path / "v3.json"
    write_v3(results, {k: v for k, v in LEVELS.items() if k != "dias_r-voc"})
    assert main(["check-drift", "--table", "v3", "--results", str(results), "--write-golden", str(golden),
                 "--tol", "0.05"]) == 0
    write_v3(results)  # a row the golden file never had: new, reported, not a failure
    assert check(results, golden) == 0
    out = capsys.readouterr().out
    assert "new rows, not in the golden file" in out and "dias_r-voc" in out
    (results / "v3" / "dias_r-coco" / "seed43-dias-v3.json").unlink()  # a removed value fails
    assert check(results, golden) == 1
    out = capsys.readouterr().out
    assert "dias_r-coco seed 43 ari: missing from the fresh results (old 25.100, new —)" in out
    assert "4 value(s) drifted" in out


def test_a_new_seed_of_a_known_row_fails():
    golden = {"tolerance": dict.fromkeys(("ari", "ari_fg", "mbo", "miou"), 0.05), "values": [
        {"label": "x", "dataset": "d", "metric": "ari", "seed": 0, "value": 50.0}]}
    fresh = FreshValues(_values([("x", "ari", 0, 50.0), ("x", "ari", 1, 50.0)]), [AMD])
    c = compare(golden, fresh)
    assert [str(d) for d in c.drifts] == ["x seed 1 ari: not in the golden file (old —, new 50.000)"]
    assert c.new_labels == []


def _values(rows):
    import pandas as pd

    return pd.DataFrame([{"label": label, "dataset": "d", "metric": metric, "seed": seed, "value": value}
                         for label, metric, seed, value in rows])


def test_tolerance_by_hand_and_undefined_values():
    golden = {"tolerance": {"ari": 0.05, "ari_fg": 0.5, "mbo": 0.05, "miou": 0.05}, "values": [
        {"label": "x", "dataset": "d", "metric": "ari", "seed": 0, "value": 50.0},
        {"label": "x", "dataset": "d", "metric": "ari_fg", "seed": 0, "value": 50.0},
        {"label": "y", "dataset": "d", "metric": "ari_fg", "seed": 0, "value": None}]}

    def fresh(ari, ari_fg, y=float("nan")):
        return FreshValues(_values([("x", "ari", 0, ari), ("x", "ari_fg", 0, ari_fg), ("y", "ari_fg", 0, y)]), [])

    c = compare(golden, fresh(50.05, 49.5))
    assert c.drifts == [] and len(c.within) == 2  # at the tolerance is within it, per metric
    c = compare(golden, fresh(50.051, 49.49))
    assert [(d.label, d.metric, round(d.delta, 3), d.tolerance) for d in c.drifts] == [
        ("x", "ari", 0.051, 0.05), ("x", "ari_fg", -0.51, 0.5)]
    assert compare(golden, fresh(51.0, 49.0), tol=1.0).drifts == []
    c = compare(golden, fresh(50.0, 50.0, y=12.0))  # undefined on one side only: drift
    assert [str(d) for d in c.drifts] == ["y seed 0 ari_fg: undefined on one side (old —, new 12.000)"]


def test_the_report_names_both_sides_hardware_and_tells_hardware_from_code(tmp_path):
    golden = {"tolerance": dict.fromkeys(("ari", "ari_fg", "mbo", "miou"), 0.05), "hardware": [AMD], "values": [
        {"label": "x", "dataset": "d", "metric": "ari", "seed": 0, "value": 50.0},
        {"label": "x", "dataset": "d", "metric": "mbo", "seed": 0, "value": 40.0}]}
    c = compare(golden, FreshValues(_values([("x", "ari", 0, 50.01), ("x", "mbo", 0, 40.0)]), [INTEL]))
    text = "\n".join(report_lines(c, V3, "g.json", "python -m harness reproduce --table v3"))
    assert "golden values computed on: AMD EPYC (AVX512), linear layers onednn, 1 thread, torch 2.13.0" in text
    assert "fresh values computed on:  Intel Xeon (AVX512), linear layers blas, 2 threads, torch 2.13.0" in text
    assert "ran on different hardware" in text and "hardware, not code" in text
    c = compare(golden, FreshValues(_values([("x", "ari", 0, 53.0), ("x", "mbo", 0, 40.0)]), [AMD]))
    text = "\n".join(report_lines(c, V3, "g.json", ""))
    assert "different hardware" not in text and "a change of code, data or recipe, not of hardware" in text
    assert isinstance(c, Comparison) and c.same_hardware


def test_golden_of_another_table_protocol_or_schema_is_refused(tmp_path, capsys):
    golden = tmp_path / "g.json"
    base = {"schema": "harness.golden/2", "table": "v3", "protocol": "dias-v3", "values": [],
            "tolerance": dict.fromkeys(("ari", "ari_fg", "mbo", "miou"), 0.05)}
    golden.write_text(json.dumps({**base, "table": "mini"}))
    with pytest.raises(GoldenError, match="golden values of table 'mini', not 'v3'"):
        read_golden(golden, V3)
    golden.write_text(json.dumps({**base, "protocol": "exact"}))
    with pytest.raises(GoldenError, match="under protocol 'exact'"):
        read_golden(golden, V3)
    golden.write_text(json.dumps({**base, "schema": "harness.golden/1"}))
    with pytest.raises(GoldenError, match="seed means, from an older harness"):
        read_golden(golden, V3)
    write_v3(tmp_path / "results")
    assert check(tmp_path / "results", tmp_path / "missing.json") == 2
    assert "no such golden file" in capsys.readouterr().err
    # a table without a measured tolerance needs one to write a golden file
    assert main(["check-drift", "--table", "v3", "--results", str(tmp_path / "results"), "--write-golden",
                 str(golden)]) == 2
    assert "declares no drift tolerance: give --tol POINTS" in capsys.readouterr().err
