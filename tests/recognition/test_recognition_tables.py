"""Recognition tables: their cells, what `reproduce` says is missing, a tiny end-to-end table on generated textured
data (a freshly trained discovery checkpoint, a few probe steps), the trivial rows by hand, and the published
probe numbers as the report shows them."""

import json
import math

import pytest
import torch

from harness.cli import main
from harness.data import TexturedConfig
from harness.data.textured import NUM_CLASSES
from harness.engine import Cell
from harness.engine.recognition import probe_config
from harness.run.probe import PairStatistics
from harness.tables import TABLES, Budget, ProbeRecipe, Row, SynthData, Table

TINY_TRAIN = ["train.warmup_steps=1", "train.val_interval=4", "train.num_workers=0", "train.val_limit=4",
              "eval.batch_size=4"]
DISCOVERY = TABLES.register("test-rec-discovery", Table(
    name="test-rec-discovery", description="a tiny discovery table whose models the recognition test probes",
    rows=(Row("sa", "textured", "sa"),), seeds=(0,), budget=Budget(steps=4, batch_size=4), data="synthetic",
    synth=SynthData(TexturedConfig(seed=7), train=16, val=8, dataset="textured"),
))
PROBE_STEPS = ("steps=3", "warmup_steps=1", "batch_size=4", "num_workers=0", f"num_classes={NUM_CLASSES + 1}")
for pairs in ("once", "every step"):
    TABLES.register(f"test-rec-{pairs.replace(' ', '-')}", Table(
        name=f"test-rec-{pairs.replace(' ', '-')}", description="a tiny recognition table", rows=DISCOVERY.rows,
        seeds=(0,), protocol="smoothsa-v3", data="synthetic", synth=DISCOVERY.synth, task="recognition",
        probe=ProbeRecipe(discovery=DISCOVERY.name, pairs=pairs, overrides=PROBE_STEPS),
    ))


def test_recogn_v3_cells_are_the_release_checkpoints_under_the_authors_recipe():
    table = TABLES.get("recogn-v3")
    assert table.task == "recognition" and table.seeds == (42, 43, 44) and table.probe.discovery is None
    assert [r.label for r in table.rows] == ["dias_r-coco", "dinosaur_r-coco", "slate_r_vqvae-coco",
                                             "slotdiffusion_r_vqvae-coco", "spot_r-coco", "smoothsa_r-coco"]  # registry
    assert table.probe.protocols == ("smoothsa-v3", "all-objects") and table.protocol == "smoothsa-v3"
    config = probe_config(table, table.rows[0])
    assert (config.steps, config.batch_size, config.lr, config.num_classes, config.slot_dim) == (10_000, 32, 1e-3,
                                                                                                   91, 256)


def test_recogn_mini_probes_every_learned_mini_model_within_the_cpu_budget():
    table, mini = TABLES.get("recogn-mini"), TABLES.get("mini")
    learned = [r.label for r in mini.rows if r.variant == "trained" and r.method not in
               ("grid", "single-segment", "colour-kmeans", "dinov2-kmeans")]
    assert [r.label for r in table.rows] == learned and table.seeds == mini.seeds
    for row in table.rows:
        config = probe_config(table, row)
        assert config.num_classes == NUM_CLASSES + 1 and config.slot_dim == 64 and config.batch_size == 32
        assert config.steps <= 500
    assert table.probe.discovery == "mini" and table.probe.pairs == "once"


def test_recogn_v3_lists_missing_data_then_every_missing_checkpoint(tmp_path, capsys):
    assert main(["reproduce", "--table", "recogn-v3", "--checkpoints", str(tmp_path / "ck")]) == 2
    err = capsys.readouterr().err
    assert "needs real data: pass --data-dir" in err and "<data-dir>/coco/train.lmdb" in err
    assert "dataset-coco" in err
    data = tmp_path / "data" / "coco"
    data.mkdir(parents=True)
    assert main(["reproduce", "--table", "recogn-v3", "--data-dir", str(tmp_path / "data"), "--checkpoints",
                 str(tmp_path / "ck")]) == 2
    err = capsys.readouterr().err
    assert "missing 2 data file(s)" in err and str(data / "train.lmdb") in err and str(data / "val.lmdb") in err
    (data / "train.lmdb").touch()
    (data / "val.lmdb").touch()
    (tmp_path / "ck" / "spot_r-coco").mkdir(parents=True)
    (tmp_path / "ck" / "spot_r-coco" / "42-0027.pth").touch()
    assert main(["reproduce", "--table", "recogn-v3", "--data-dir", str(tmp_path / "data"), "--checkpoints",
                 str(tmp_path / "ck"), "--results", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "missing 17 discovery model(s)" in err and "spot_r-coco-42" not in err
    assert f"{tmp_path / 'ck' / 'dias_r-coco'}/42-<epoch>.pth" in err and "releases/tag/archive-dias" in err
    assert not (tmp_path / "runs").exists()


def test_recogn_mini_without_the_mini_models_names_the_command_that_makes_them(tmp_path, capsys):
    assert main(["reproduce", "--table", "recogn-mini", "--results", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "missing 21 discovery model(s)" in err and str(tmp_path / "runs/mini/runs/dias/seed0/weights.pth") in err
    assert f"python -m harness reproduce --table mini --results {tmp_path / 'runs'}" in err


def test_only_probe_overrides_are_taken(tmp_path, capsys):
    assert main(["reproduce", "--table", "recogn-v3", "--set", "train.steps=2"]) == 2
    assert "probe.FIELD=VALUE" in capsys.readouterr().err


def test_trivial_rows_by_hand():
    stats = PairStatistics(6)
    stats.add(torch.tensor([2, 2, 5, 1, 5, 2, 3]), torch.tensor([[0.0, 0.0, 0.5, 0.5]] * 6 + [[0.5, 0.5, 1.0, 1.0]]))
    trivial = stats.predictor()
    logits, boxes = trivial(3)
    # counts 1:1 2:3 3:1 5:2 → ranking 2, 5, then the tie 1 / 3 broken towards 1
    assert logits.argmax(-1).tolist() == [2, 2, 2] and logits[0].topk(3).indices.tolist() == [2, 5, 1]
    assert torch.allclose(boxes[0], torch.tensor([0.5 / 7, 0.5 / 7, 4 / 7, 4 / 7]))
    from harness.metrics.recognition import RecognitionTally
    tally = RecognitionTally()
    target_box = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.5, 0.5]])
    tally.add(logits, boxes, torch.tensor([2, 3, 1]), target_box)
    result = tally.result()
    mean = 0.5 / 7
    inter = (0.5 - mean) ** 2
    union = 0.25 + (3.5 / 7) ** 2 - inter  # pred box side 4/7 − 0.5/7
    assert result["top1"] == pytest.approx(1 / 3) and result["top3"] == pytest.approx(2 / 3)
    assert result["box_iou"] == pytest.approx(inter / union, rel=1e-6) and result["matched"] == 3


def test_published_probe_numbers_as_the_report_shows_them(tmp_path, capsys):
    out = tmp_path / "reports"
    assert main(["report", "--table", "recogn-v3", "--published", "--results", str(tmp_path), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "spot_r-coco (published)      80.5±0.2  92.4±0.2  38.3±0.2  6538±23" in text
    assert "smoothsa_r-coco (published)  81.4±0.1  92.8±0.2  40.1±0.2  6653±24" in text
    md = (out / "acc-recogn-v3.md").read_text()
    for seed, values in {42: "80.688 | 92.554 | 38.450 | 6540", 43: "80.259 | 92.591 | 38.137 | 6560",
                         44: "80.445 | 92.157 | 38.192 | 6515"}.items():
        assert f"| spot_r-coco (published) | {seed} | {values} |" in md
    for seed, values in {42: "81.401 | 92.770 | 39.869 | 6667", 43: "81.401 | 93.010 | 40.319 | 6667",
                         44: "81.542 | 92.635 | 39.988 | 6626"}.items():
        assert f"| smoothsa_r-coco (published) | {seed} | {values} |" in md
    assert "80.5±0.2" in (out / "acc-recogn-v3.html").read_text()
    from openpyxl import load_workbook
    ws = load_workbook(out / "acc-recogn-v3.xlsx")["eval_multi"]
    assert ws["A2"].value == "spot_r-coco (published)-42" and ws["B2"].value == pytest.approx(0.80688)


@pytest.fixture(scope="module")
def discovery_results(tmp_path_factory):
    root = tmp_path_factory.mktemp("rec")
    assert main(["reproduce", "--table", DISCOVERY.name, "--data-dir", str(root / "data"), "--results",
                 str(root / "runs"), "--out", str(root / "reports"), "--jobs", "1"]
                + [a for o in TINY_TRAIN for a in ("--set", o)]) == 0
    return root


@pytest.mark.parametrize("pairs", ["once", "every-step"])
def test_a_tiny_recognition_table_end_to_end(discovery_results, pairs, capsys):
    root, name = discovery_results, f"test-rec-{pairs}"
    args = ["reproduce", "--table", name, "--data-dir", str(root / "data"), "--results", str(root / "runs"),
            "--out", str(root / "reports")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "1 cells, 0 done, 1 to run" in out and "sa · majority class / mean box" in out
    record = json.loads((root / "runs" / name / "sa" / "seed0.json").read_text())
    weights = root / "runs" / DISCOVERY.name / "runs" / "sa" / "seed0" / "weights.pth"
    assert record["identity"]["discovery"]["path"] == str(weights) and record["training"]["steps"] == 3
    assert set(record["protocols"]) == {"smoothsa-v3", "all-objects"}
    v3, every = record["protocols"]["smoothsa-v3"], record["protocols"]["all-objects"]
    assert v3["probe"]["matched"] == v3["trivial"]["matched"] > 0  # the same pairs
    assert v3["probe"]["matched"] <= 2 * 8  # at most two things per val image under the authors' filter
    for scores in (v3, every):
        for metric in ("top1", "top3", "box_iou"):
            assert 0 <= scores["probe"][metric] <= 1 or math.isnan(scores["probe"][metric])
    assert sum(record["training"]["class_counts"]) == record["training"]["pairs"] > 0
    md = (root / "reports" / f"acc-{name}.md").read_text()
    assert "## all-objects" in md and "| sa | 0 |" in md
    assert main(args) == 0 and "1 cells, 1 done, 0 to run" in capsys.readouterr().out


def test_probe_cell_record_path():
    cell = Cell(TABLES.get("recogn-v3"), TABLES.get("recogn-v3").rows[0], 42)
    assert cell.name == "dias_r-coco-42"
    assert str(cell.record_path(__import__("pathlib").Path("r"))) == "r/recogn-v3/dias_r-coco/seed42.json"


def test_a_probe_cell_does_not_depend_on_what_ran_before_it_in_its_process(tmp_path, monkeypatch):
    """Cells share pool workers: the random state a cell finds must not change its numbers."""
    import random

    import harness.engine.recognition as recognition
    from harness.engine.recognition import run_cell

    class Stop(Exception):
        pass

    seen = []

    def spy(*args, **kwargs):  # the first thing the cell does after seeding: record the streams and stop
        seen.append((torch.rand(1).item(), random.random()))
        raise Stop

    monkeypatch.setattr(recognition, "load_trained", spy)
    table = TABLES.get("recogn-mini")
    for disturbance in (1, 2):
        torch.manual_seed(disturbance)
        random.seed(disturbance)
        with pytest.raises(Stop):
            run_cell(Cell(table, table.rows[0], 0), data_dir=tmp_path, weights=tmp_path / "w.pth", results=tmp_path,
                     device="cpu")
    assert len(seen) == 2 and seen[0] == seen[1]
