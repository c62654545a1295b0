"""Tidy frame from hand-made records, seed aggregation against hand-computed numbers, refusal of mixed cells."""

import json
import math
import statistics

import pytest
from report_records import CARDS, toy_table, uniform, write_cell

from harness.report.frame import (
    MixedCellsError,
    check_uniform,
    data_card_fingerprint,
    find_records,
    summarise,
    tidy_frame,
)
from harness.results import ResultError
from harness.tables import Budget, Row


def alpha_values(seed: int) -> dict:
    """Per-image values (4 images; the 4th has no label, the 3rd no foreground) with hand-computed means:
    ARI over images 1–3, ARI-fg over images 1–2."""
    return {
        42: {"ari": [0.2, 0.4, 0.9, 0.0], "ari_fg": [0.1, 0.3, 0.8, 0.0], "mbo": [0.5] * 4, "miou": [0.4] * 4},
        43: {"ari": [0.5, 0.5, 0.8, 1.0], "ari_fg": [0.2, 0.6, 0.0, 0.0], "mbo": [0.6] * 4, "miou": [0.4] * 4},
        44: {"ari": [0.7, 0.7, 0.7, 0.0], "ari_fg": [0.3, 0.5, 0.1, 0.1], "mbo": [0.8] * 4, "miou": [0.4] * 4},
    }[seed]


# dataset means by hand: ARI 1.5/3, 1.8/3, 2.1/3; ARI-fg 0.4/2, 0.8/2, 0.8/2 — taken in float32 under dias-v3
# (the authors' np.mean of float32 values), hence the float32-sized tolerances below
SEED_ARI = [0.5, 0.6, 0.7]
SEED_ARI_FG = [0.2, 0.4, 0.4]


def test_tidy_frame_and_summary_from_hand_made_records(tmp_path):
    table = toy_table()
    for seed in (42, 43, 44):
        write_cell(tmp_path, table, "alpha-syn", seed, alpha_values(seed))
    frame = tidy_frame(find_records(tmp_path, table))
    assert len(frame) == 3 * 4
    assert set(frame["source"]) == {"ours"} and set(frame["label"]) == {"alpha-syn"}
    ari = frame[frame["metric"] == "ari"].sort_values("seed")
    assert ari["value"].tolist() == pytest.approx(SEED_ARI, abs=1e-7)
    assert ari["n_valid"].tolist() == [3, 3, 3]
    ari_fg = frame[frame["metric"] == "ari_fg"].sort_values("seed")
    assert ari_fg["value"].tolist() == pytest.approx(SEED_ARI_FG, abs=1e-7)
    assert ari_fg["n_valid"].tolist() == [2, 2, 2]
    assert frame["steps"].iloc[0] == 100 and frame["batch_size"].iloc[0] == 8
    assert frame["data_card"].iloc[0] == data_card_fingerprint(CARDS["synthetic"])

    summary = summarise(frame).set_index("metric")
    assert summary.loc["ari", "mean_pct"] == pytest.approx(statistics.mean(SEED_ARI) * 100, abs=1e-5)
    assert summary.loc["ari", "std_pct"] == pytest.approx(statistics.stdev(SEED_ARI) * 100, abs=1e-5)
    assert summary.loc["ari_fg", "std_pct"] == pytest.approx(statistics.stdev(SEED_ARI_FG) * 100, abs=1e-5)
    assert summary.loc["ari", "n_seeds"] == 3 and summary.loc["ari", "seeds"] == (42, 43, 44)
    # ×100 for display, Excel rounding: 60.0 ± 10.0; ARI-fg 33.333… ± 11.547… ; mBO std of 50/60/80 = 15.275…
    assert summary.loc["ari", "text"] == "60.0±10.0"
    assert summary.loc["ari_fg", "text"] == "33.3±11.5"
    assert summary.loc["mbo", "text"] == "63.3±15.3"
    assert summary.loc["miou", "text"] == "40.0±0.0"


def test_a_single_seed_has_no_sample_std(tmp_path):
    table = toy_table()
    write_cell(tmp_path, table, "alpha-syn", 42, alpha_values(42))
    summary = summarise(tidy_frame(find_records(tmp_path, table))).set_index("metric")
    assert summary.loc["ari", "mean_pct"] == pytest.approx(50.0)
    assert math.isnan(summary.loc["ari", "std_pct"])
    assert summary.loc["ari", "text"] == "50.0±—"


def test_mixed_protocols_refused(tmp_path):
    table = toy_table()
    write_cell(tmp_path, table, "alpha-syn", 42, uniform(0.5))
    write_cell(tmp_path, table, "alpha-syn", 43, uniform(0.5), protocol="exact")
    frame = tidy_frame(find_records(tmp_path, table))
    with pytest.raises(MixedCellsError, match=r"protocol.*'dias-v3'.*protocol=exact: alpha-syn-43"):
        check_uniform(frame, table)
    issues = check_uniform(frame, table, allow_mixed=True)
    assert len(issues) == 1 and "alpha-syn-43" in issues[0]
    summary = summarise(frame)
    assert sorted(summary["protocol"].unique()) == ["dias-v3", "exact"]  # aggregated apart, never together


def test_budget_differing_from_the_table_refused(tmp_path):
    table = toy_table()  # fixes 100 steps, batch 8
    write_cell(tmp_path, table, "alpha-syn", 42, uniform(0.5))
    write_cell(tmp_path, table, "beta-syn", 42, uniform(0.5), steps=200)
    write_cell(tmp_path, table, "beta-syn", 43, uniform(0.5), batch_size=16)
    frame = tidy_frame(find_records(tmp_path, table))
    with pytest.raises(MixedCellsError) as e:
        check_uniform(frame, table)
    message = str(e.value)
    assert "steps: table 'toy' fixes 100; steps=200: beta-syn-42" in message
    assert "batch_size: table 'toy' fixes 8; batch_size=16: beta-syn-43" in message


def test_seeds_of_a_row_must_share_the_budget_without_a_table_budget(tmp_path):
    table = toy_table(budget=Budget())
    write_cell(tmp_path, table, "alpha-syn", 42, uniform(0.5), steps=50_000)
    write_cell(tmp_path, table, "beta-syn", 42, uniform(0.5), steps=100_000)  # another method's own recipe: fine
    frame = tidy_frame(find_records(tmp_path, table))
    assert check_uniform(frame, table) == []
    write_cell(tmp_path, table, "alpha-syn", 43, uniform(0.5), steps=25_000)
    frame = tidy_frame(find_records(tmp_path, table))
    with pytest.raises(MixedCellsError, match=r"steps: the seeds of alpha-syn differ; steps=25000: alpha-syn-43; "
                                              r"steps=50000: alpha-syn-42"):
        check_uniform(frame, table)


def test_seeds_of_a_row_must_share_one_config(tmp_path):
    table = toy_table()
    write_cell(tmp_path, table, "alpha-syn", 42, uniform(0.5))
    write_cell(tmp_path, table, "beta-syn", 42, uniform(0.5))  # another row's config: fine
    assert check_uniform(tidy_frame(find_records(tmp_path, table)), table) == []
    write_cell(tmp_path, table, "alpha-syn", 43, uniform(0.5), extra={"config_hash": "hash-after-a-change"})
    frame = tidy_frame(find_records(tmp_path, table))
    with pytest.raises(MixedCellsError, match=r"config_hash: the seeds of alpha-syn were made with different "
                                              r"configs; config_hash=hash-after-a-change: alpha-syn-43; "
                                              r"config_hash=hash-alpha: alpha-syn-42"):
        check_uniform(frame, table)
    assert len(check_uniform(frame, table, allow_mixed=True)) == 1


def test_different_data_cards_refused_and_untrained_cells_have_no_budget(tmp_path):
    table = toy_table()
    write_cell(tmp_path, table, "alpha-syn", 42, uniform(0.5))
    write_cell(tmp_path, table, "grid-syn", 42, uniform(0.1), steps=0, batch_size=32)  # reference: not trained
    frame = tidy_frame(find_records(tmp_path, table))
    assert check_uniform(frame, table) == []
    other = {**CARDS["synthetic"], "file_sha256": "ef" * 32}
    write_cell(tmp_path, table, "beta-syn", 42, uniform(0.5), card=other)
    frame = tidy_frame(find_records(tmp_path, table))
    with pytest.raises(MixedCellsError, match=r"data_card: cells on synthetic read different splits.*beta-syn-42"):
        check_uniform(frame, table)


def test_data_card_fingerprint_ignores_where_the_file_lies():
    card = CARDS["synthetic"]
    assert data_card_fingerprint({**card, "path": "/elsewhere/val.lmdb"}) == data_card_fingerprint(card)
    assert data_card_fingerprint({**card, "records": 5}) != data_card_fingerprint(card)


def test_records_are_matched_to_their_table_and_row(tmp_path):
    table = toy_table()
    write_cell(tmp_path, table, "alpha-syn", 42, uniform(0.5))
    write_cell(tmp_path, toy_table(name="other"), "alpha-syn", 42, uniform(0.9))  # another table's record
    (tmp_path / "notes.json").write_text('{"not": "a record"}')  # other JSON is skipped
    found = find_records(tmp_path, table)
    assert [(e.row.label, e.seed) for e in found] == [("alpha-syn", 42)]
    assert found[0].record["means"]["ari"] == 0.5

    write_cell(tmp_path / "copy", table, "alpha-syn", 42, uniform(0.6))
    with pytest.raises(ResultError, match="two records for cell alpha-syn-42"):
        find_records(tmp_path, table)


def test_a_record_naming_a_missing_row_of_its_table_is_an_error(tmp_path):
    table = toy_table()
    write_cell(tmp_path, table, "alpha-syn", 42, uniform(0.5), extra={"label": "gamma-syn"})
    with pytest.raises(ResultError, match="label 'gamma-syn' is not a row of table 'toy'"):
        find_records(tmp_path, table)


def test_a_record_without_a_label_fills_the_row_that_owns_the_run_not_its_selection_rows(tmp_path):
    """`harness eval` of one checkpoint writes no label: with a `@best-val` row of the same method beside it (v3
    --train), the record is the run's own row's, not ambiguous."""
    table = toy_table(rows=(Row("alpha", "synthetic", "alpha-syn"),
                            Row("alpha", "synthetic", "alpha-syn@best-val", selection="best-val", run="alpha-syn")))
    path = write_cell(tmp_path, table, "alpha-syn", 42, uniform(0.5))
    record = json.loads(path.read_text())
    del record["identity"]["label"], record["identity"]["table"]
    path.write_text(json.dumps(record))
    assert [(e.row.label, e.seed) for e in find_records(tmp_path, table)] == [("alpha-syn", 42)]


def test_corrupt_json_and_unknown_record_versions_are_named(tmp_path):
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ResultError, match="broken.json: not valid JSON"):
        find_records(tmp_path, toy_table())
    (tmp_path / "broken.json").unlink()
    (tmp_path / "future.json").write_text('{"schema": "harness.result/2"}')
    with pytest.raises(ResultError, match="future.json: not a result record"):
        find_records(tmp_path, toy_table())
