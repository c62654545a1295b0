"""The verdict's sentences, marks and Δ column against hand-computed numbers.

The oracle for "how sure": with two images, every bootstrap resample's mean difference is d1, (d1 + d2) / 2 or d2
(probabilities 1/4, 1/2, 1/4), so the 2.5 % and 97.5 % percentiles are exactly min(d) and max(d) — the paired 95 %
CI is known without running a bootstrap. Row means are seed means of per-seed dataset means, computed by hand.
"""

import pytest
from report_records import toy_table, write_cell

from harness.report.content import Options, build
from harness.report.published import PUBLISHED_FILE
from harness.report.verdict import (BEST, SECOND, baseline_deltas, groups, marks, optimism, reference_sentence,
                                    sentences)
from harness.tables import Row

ROWS = (Row("dias", "synthetic", "dias"), Row("sa", "synthetic", "sa"),
        Row("slotdiffusion", "synthetic", "slotdiffusion"), Row("grid", "synthetic", "grid"),
        Row("dias", "synthetic", "dias@best-val", selection="best-val", run="dias"),
        Row("dias", "synthetic", "dias@best-heldout", selection="best-heldout", run="dias"))


def cell(fg: list[float], mbo: float) -> dict:
    """ARI-fg on the two images with foreground (the helper's valid_fg), one mBO on every image."""
    return {"ari": [0.5] * 4, "ari_fg": fg + [0.0, 0.0], "mbo": [mbo] * 4, "miou": [0.5] * 4}


def content_of(tmp_path, per_seed: dict) -> object:
    table = toy_table(rows=tuple(r for r in ROWS if r.label in per_seed))
    for label, seeds in per_seed.items():
        for seed, values in seeds.items():
            steps = 0 if label == "grid" else 100
            write_cell(tmp_path, table, label, seed, values, steps=steps)
    return build(table, tmp_path, False, PUBLISHED_FILE, Options(n_boot=4000))


# dias: seed means 55 / 55 → 55.0, image means [65, 45]; sa: 40 / 40 → 40.0, image means [45, 35]
# image differences dias − sa: [+20, +10] → CI [+10.0, +20.0]; dias ahead in both seeds
LEADING = {
    "dias": {42: cell([0.6, 0.5], 0.5), 43: cell([0.7, 0.4], 0.5)},
    "sa": {42: cell([0.5, 0.3], 0.3), 43: cell([0.4, 0.4], 0.3)},
    "slotdiffusion": {42: cell([0.2, 0.2], 0.2), 43: cell([0.2, 0.2], 0.2)},
    "grid": {42: cell([0.5, 0.5], 0.25), 43: cell([0.5, 0.5], 0.25)},
}


def test_the_leader_its_margin_and_how_sure(tmp_path):
    content = content_of(tmp_path, LEADING)
    said = sentences(content)
    assert said[0] == ("On synthetic, dias leads the 3 trained methods on ARI-fg with 55.0: +15.0 over sa (40.0; "
                       "paired 95 % CI over 2 images [+10.0, +20.0], ahead in 2 of 2 seeds).")
    # mBO: constant per image, so every resample gives the same +20
    assert said[1] == ("On synthetic, dias leads the 3 trained methods on mBO with 50.0: +20.0 over sa (30.0; "
                       "paired 95 % CI over 3 images [+20.0, +20.0], ahead in 2 of 2 seeds).")


def test_the_reference_sentence_names_who_beats_the_grid(tmp_path):
    # grid ARI-fg 50 / mBO 25: dias (55 / 50) beats it; sa (40 / 30) and slotdiffusion (20 / 20) do not
    content = content_of(tmp_path, LEADING)
    assert reference_sentence(content) == "On ARI-fg and mBO, only dias beats grid (ARI-fg 50.0 / mBO 25.0)."


def test_marks_and_the_delta_column(tmp_path):
    content = content_of(tmp_path, LEADING)
    found = marks(content)
    assert found[("dias", "ari_fg")] == BEST and found[("sa", "ari_fg")] == SECOND
    assert ("slotdiffusion", "ari_fg") not in found and ("grid", "ari_fg") not in found  # grid is no contender
    assert found[("dias", "ari")] == found[("sa", "ari")] == found[("slotdiffusion", "ari")] == BEST  # a 3-way tie
    deltas = baseline_deltas(content)
    assert deltas["sa"] == "best baseline"  # the best row that is not the subject
    assert deltas["dias"].diff == pytest.approx(15.0)
    assert (deltas["dias"].image.ci_low, deltas["dias"].image.ci_high) == pytest.approx((0.10, 0.20))  # fractions
    assert deltas["slotdiffusion"].diff == pytest.approx(-20.0)  # 20 − 40


def test_a_subject_behind_says_where_it_stands_and_noise_is_called_noise(tmp_path):
    # slotdiffusion 60 leads sa 50 (image diffs [+20, 0] → CI [0, +20] holds zero); dias third at 30, image means
    # [25, 35] against slotdiffusion's [80, 40] → differences [−55, −5]
    per_seed = {
        "slotdiffusion": {42: cell([0.8, 0.4], 0.5), 43: cell([0.8, 0.4], 0.5)},
        "sa": {42: cell([0.6, 0.4], 0.4), 43: cell([0.6, 0.4], 0.4)},
        "dias": {42: cell([0.3, 0.3], 0.3), 43: cell([0.2, 0.4], 0.3)},
    }
    said = sentences(content_of(tmp_path, per_seed))[0]
    assert said == ("On synthetic, slotdiffusion leads the 3 trained methods on ARI-fg with 60.0: +10.0 over sa "
                    "(50.0; paired 95 % CI over 2 images [+0.0, +20.0]: within noise, ahead in 2 of 2 seeds). "
                    "dias is third, -30.0 against slotdiffusion (paired 95 % CI over 2 images [-55.0, -5.0], "
                    "ahead in 0 of 2 seeds).")


def test_selection_optimism_pairs_the_rule_with_the_same_runs_last_checkpoint(tmp_path):
    per_seed = {
        "dias": {42: cell([0.6, 0.5], 0.5), 43: cell([0.7, 0.4], 0.5)},
        # best-val: image means [75, 45] against last's [65, 45] → differences [+10, 0], mean +5.0
        "dias@best-val": {42: cell([0.8, 0.5], 0.5), 43: cell([0.7, 0.4], 0.5)},
        "sa": {42: cell([0.5, 0.3], 0.3), 43: cell([0.4, 0.4], 0.3)},
    }
    content = content_of(tmp_path, per_seed)
    assert [(g.dataset, g.selection, g.labels) for g in groups(content)] == \
           [("synthetic", "last", ("dias", "sa")), ("synthetic", "best-val", ("dias@best-val",))]
    found = [o for o in optimism(content) if o.metric == "ari_fg"]
    assert [(o.method, o.rule) for o in found] == [("dias", "best-val")]
    assert found[0].delta.diff == pytest.approx(5.0)
    assert (found[0].delta.image.ci_low, found[0].delta.image.ci_high) == pytest.approx((0.0, 0.10))
    assert found[0].delta.seeds_ahead == 1  # seed 42 gains, seed 43 is the same checkpoint
    assert sentences(content)[-1] == (
        "Selecting the best validation on the reported split (the authors' rule) instead of the last checkpoint "
        "changes ARI-fg by: dias +5.0 [+0.0, +10.0] (paired 95 % CI over images).")


def test_best_val_against_best_heldout_isolates_the_optimism(tmp_path):
    """Both rules beat the last checkpoint; only best-val − best-heldout says what looking at the reported split
    added on top of selecting at all."""
    per_seed = {
        "dias": {42: cell([0.6, 0.5], 0.5), 43: cell([0.7, 0.4], 0.5)},  # image means [65, 45]
        "dias@best-val": {42: cell([0.8, 0.5], 0.5), 43: cell([0.7, 0.4], 0.5)},  # [75, 45]
        "dias@best-heldout": {42: cell([0.7, 0.5], 0.5), 43: cell([0.7, 0.4], 0.5)},  # [70, 45]
        "sa": {42: cell([0.5, 0.3], 0.3), 43: cell([0.4, 0.4], 0.3)},
    }
    content = content_of(tmp_path, per_seed)
    found = {(o.rule, o.baseline): o.delta for o in optimism(content) if o.metric == "ari_fg"}
    assert list(found) == [("best-val", "last"), ("best-heldout", "last"), ("best-val", "best-heldout")]
    assert found[("best-val", "last")].diff == pytest.approx(5.0)  # differences [+10, 0]
    assert found[("best-heldout", "last")].diff == pytest.approx(2.5)  # [+5, 0]
    optimism_alone = found[("best-val", "best-heldout")]
    assert (optimism_alone.label, optimism_alone.against) == ("dias@best-val", "dias@best-heldout")
    assert optimism_alone.diff == pytest.approx(2.5)  # [+5, 0]
    assert (optimism_alone.image.ci_low, optimism_alone.image.ci_high) == pytest.approx((0.0, 0.05))
    assert (optimism_alone.seeds_ahead, optimism_alone.n_seeds) == (1, 2)
    assert sentences(content)[-1] == (
        "Selecting on the reported split instead of on held-out training images (an upper bound of the optimism) changes ARI-fg "
        "by: dias +2.5 [+0.0, +5.0] (paired 95 % CI over images).")


def test_the_reference_sentence_speaks_of_each_rows_own_initialisation(tmp_path):
    rows = (Row("dias", "synthetic", "dias"), Row("sa", "synthetic", "sa"),
            Row("slotdiffusion", "synthetic", "slotdiffusion"),
            Row("dias", "synthetic", "dias-untrained", variant="untrained"),
            Row("sa", "synthetic", "sa-untrained", variant="untrained"),
            Row("slotdiffusion", "synthetic", "slotdiffusion-untrained", variant="untrained"))
    table = toy_table(rows=rows)
    # trained 55 / 40 / 20 against untrained 10 / 10 / 30: dias and sa beat theirs, slotdiffusion does not
    for label, fg in (("dias", 0.55), ("sa", 0.4), ("slotdiffusion", 0.2), ("dias-untrained", 0.1),
                      ("sa-untrained", 0.1), ("slotdiffusion-untrained", 0.3)):
        write_cell(tmp_path, table, label, 42, cell([fg, fg], fg), steps=0 if "untrained" in label else 100)
    content = build(table, tmp_path, False, PUBLISHED_FILE, Options(n_boot=100))
    assert reference_sentence(content) == "On ARI-fg and mBO, only dias and sa beat their initialisation."
