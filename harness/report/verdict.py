"""The answer a report opens with, computed from its numbers: who leads, by how much, how sure, and whether training
beats the references — plus the marks and deltas of the main table that say the same thing cell by cell.

Rows are compared only with rows they can be compared with: the trained rows of one dataset under one checkpoint
selection rule (a `Group`). "How sure" is the paired image-level test of harness.report.stats (a bootstrap CI over
the images both rows evaluate, each image averaged over their common seeds) and how many seeds agree; the seed-level
t-interval is in the paired-tests section. Where only published numbers exist there are no images to pair: the
sentences say so and give the means alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.registry import METHODS
from harness.report import stats
from harness.report.content import BEAT_METRICS, LEARNED, Content, Stat
from harness.report.formats import METRIC_TITLES, OWN_INITIALISATION, interval, signed
from harness.report.frame import OURS, display
from harness.report.published import SOURCE as PUBLISHED

HEADLINE = BEAT_METRICS  # the metrics the verdict speaks about: ARI-fg (objects) and mBO (every segment)
DELTA_METRIC = "ari_fg"  # the main table's Δ-vs-best-baseline column
BEST, SECOND = "best", "second"
ORDINALS = {2: "second", 3: "third", 4: "fourth", 5: "fifth", 6: "sixth", 7: "seventh", 8: "eighth"}


@dataclass(frozen=True)
class Group:
    """Trained rows that can be ranked against each other: one dataset, one checkpoint selection rule."""

    dataset: str
    selection: str
    labels: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.dataset if self.selection == "last" else f"{self.dataset}, selection {self.selection}"


def source(content: Content) -> str:
    """Whose numbers the verdict ranks: ours where we have any, else the published ones."""
    return OURS if content.has_ours else PUBLISHED


def groups(content: Content) -> list[Group]:
    rows = [r for r in content.rows if r.section == LEARNED]
    keys = list(dict.fromkeys((r.row.dataset, r.row.selection) for r in rows))
    return [Group(dataset, selection, tuple(r.label for r in rows
                                            if (r.row.dataset, r.row.selection) == (dataset, selection)))
            for dataset, selection in keys]


def ranking(content: Content, group: Group, metric: str, of: str | None = None) -> list[tuple[str, Stat]]:
    """The group's rows that have the metric in the numbers of `of` (default: source()), best mean first (the
    table's order breaks ties)."""
    found = [(label, content.stat(of or source(content), label, metric)) for label in group.labels]
    found = [(label, s) for label, s in found if s is not None and not math.isnan(s.mean_pct)]
    return sorted(found, key=lambda item: -item[1].mean_pct)


def marks(content: Content, of: str | None = None) -> dict[tuple[str, str], str]:
    """{(label, metric): BEST | SECOND} per group, for groups of at least two rows (equal means share a mark), in the
    numbers of `of` (default: source())."""
    out = {}
    for group in groups(content):
        for metric in METRIC_TITLES:
            ranked = ranking(content, group, metric, of)
            if len(ranked) < 2:
                continue
            means = sorted({round(s.mean_pct, 9) for _, s in ranked}, reverse=True)
            for label, s in ranked:
                place = means.index(round(s.mean_pct, 9))
                if place < 2:
                    out[(label, metric)] = (BEST, SECOND)[place]
    return out


def subject_label(group: Group) -> str | None:
    """The group's row of the method the harness exists to judge (the registry's subject), if it has one."""
    return next((label for label in group.labels if _method(label) is not None and METHODS.get(_method(label)).subject),
                None)


def _method(label: str) -> str | None:
    method = label.split("@")[0]
    return method if method in METHODS else None


def best_baseline(content: Content, group: Group, metric: str) -> str | None:
    """The group's best row that is not the subject's."""
    subject = subject_label(group)
    return next((label for label, _ in ranking(content, group, metric) if label != subject), None)


@dataclass(frozen=True)
class Delta:
    """`label` − `against` on one metric, in points, with the paired image-level 95 % CI (None: no per-image
    values) and how many of their common seeds put `label` ahead."""

    label: str
    against: str
    metric: str
    diff: float
    image: stats.PairedTest | None
    seeds_ahead: int
    n_seeds: int


def delta(content: Content, a: str, b: str, metric: str) -> Delta | None:
    sa, sb = content.stat(source(content), a, metric), content.stat(source(content), b, metric)
    if sa is None or sb is None:
        return None
    image = content.paired(a, b, metric) if content.has_ours else None
    seed_a, seed_b = stats.seed_pairs(content.main, a, b, metric) if content.has_ours else ((), ())
    ahead = sum(x > y for x, y in zip(seed_a, seed_b))
    return Delta(a, b, metric, sa.mean_pct - sb.mean_pct, image if image is not None and image.n else None, ahead,
                 len(seed_a))


def baseline_deltas(content: Content) -> dict[str, Delta | str]:
    """Per trained row, its Δ on DELTA_METRIC against its group's best baseline ("best baseline" for that row)."""
    out: dict[str, Delta | str] = {}
    for group in groups(content):
        best = best_baseline(content, group, DELTA_METRIC)
        if best is None or len(group.labels) < 2:
            continue
        out[best] = "best baseline"
        for label in group.labels:
            if label != best and (d := delta(content, label, best, DELTA_METRIC)) is not None:
                out[label] = d
    return out


# ----- sentences ---------------------------------------------------------------------------------------------


def how_sure(d: Delta) -> str:
    """"paired 95 % CI over 300 images [+0.9, +3.9], ahead in 3 of 3 seeds" (what is known of it); a CI that holds
    zero says the difference is within noise."""
    parts = []
    if d.image is not None:
        parts.append(f"paired 95 % CI over {d.image.n} images {interval(d.image.ci_low, d.image.ci_high)}"
                     + (": within noise" if d.image.ci_low <= 0 <= d.image.ci_high else ""))
    if d.n_seeds:
        parts.append(f"ahead in {d.seeds_ahead} of {d.n_seeds} seeds")
    return ", ".join(parts) if parts else "published means: no per-image values to pair"


def lead_sentence(content: Content, group: Group, metric: str) -> str | None:
    """Who leads the group on `metric`, by how much over the second, how sure; where the subject is neither, where
    it stands and by how much it trails."""
    ranked = ranking(content, group, metric)
    if len(ranked) < 2:
        return None
    title = METRIC_TITLES[metric]
    (leader, s1), (second, s2) = ranked[0], ranked[1]
    d = delta(content, leader, second, metric)
    text = (f"On {group.name}, {leader} leads the {len(ranked)} trained methods on {title} with "
            f"{display(s1.mean_pct)}: {signed(d.diff)} over {second} ({display(s2.mean_pct)}; {how_sure(d)}).")
    subject = subject_label(group)
    labels = [label for label, _ in ranked]
    if subject in labels[2:]:
        place = labels.index(subject) + 1
        behind = delta(content, subject, leader, metric)
        text += (f" {subject} is {ORDINALS.get(place, f'#{place}')}, {signed(behind.diff)} against {leader} "
                 f"({how_sure(behind)}).")
    return text


def reference_sentence(content: Content) -> str | None:
    """Which trained rows (selection "last") beat their initialisation and each trivial row on HEADLINE."""
    beats = content.beats
    if beats is None:
        return None
    last = {label for g in groups(content) if g.selection == "last" for label in g.labels}
    rows = [(label, cells) for label, cells in beats.rows if label in last]
    columns = ([OWN_INITIALISATION] if beats.initialisation else []) + beats.trivial
    metrics = " and ".join(METRIC_TITLES[m] for m in HEADLINE)
    phrases, beaten_by_all = [], []
    for j, column in enumerate(columns):
        compared = [(label, cells[j]) for label, cells in rows if cells[j] is not None]
        if not compared:
            continue
        winners = [label for label, failed in compared if not failed]
        if len(winners) == len(compared):
            beaten_by_all.append(column)
            continue
        values = "" if column == OWN_INITIALISATION else f" ({_reference_values(content, column)})"
        if not winners:
            phrases.append(f"no trained method beats {column}{values}")
        else:
            target = column if column != OWN_INITIALISATION or len(winners) == 1 else "their initialisation"
            phrases.append(f"only {_join(winners)} beat{'s' if len(winners) == 1 else ''} {target}{values}")
    if not phrases and not beaten_by_all:
        return None
    text = ""
    if beaten_by_all:
        text = f"Every trained method beats {_join(beaten_by_all)} on {metrics}"
    if phrases:
        rest = "; ".join(phrases)
        text = f"{text}; {rest}" if text else f"On {metrics}, {rest}"
    return text[0].upper() + text[1:] + "."


def _reference_values(content: Content, label: str) -> str:
    values = [(m, content.stat(OURS, label, m)) for m in HEADLINE]
    return " / ".join(f"{METRIC_TITLES[m]} {display(s.mean_pct)}" for m, s in values if s is not None)


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def sentences(content: Content) -> list[str]:
    """The verdict, one sentence per question the table exists for."""
    out = []
    for group in groups(content):
        if group.selection != "last" and any(g.dataset == group.dataset and g.selection == "last"
                                             for g in groups(content)):
            continue  # the other selection rules speak in the selection section
        out += [s for metric in HEADLINE if (s := lead_sentence(content, group, metric))]
    if content.has_ours and (s := reference_sentence(content)):
        out.append(s)
    out += selection_sentences(content)
    return out


# ----- checkpoint selection --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Optimism:
    """A selection rule's row minus the same run under `baseline` ("last", or "best-heldout") on one metric.
    best-val − last mixes a real gain (a better checkpoint) with optimism (having looked at the reported split);
    best-val − best-heldout removes the real gain, where both rules ran: what is left is the optimism, or more where
    the held-out images are fewer than the reported split's (a noisier choice)."""

    method: str
    dataset: str
    rule: str
    baseline: str
    metric: str
    delta: Delta


def optimism(content: Content) -> list[Optimism]:
    """For every trained row under a selection rule other than "last", its difference from the same run's last
    checkpoint, then best-val's from best-heldout (rows of one run: every image and seed pairs)."""
    trained = [r for r in content.rows if r.section == LEARNED]
    rule_of_run = {(r.row.run_label, r.row.selection): r.label for r in trained}
    pairs = []  # (row, rule, baseline rule): a run's comparisons together
    for r in trained:
        rule, run = r.row.selection, r.row.run_label
        if rule != "last" and (run, "last") in rule_of_run:
            pairs.append((r.row, rule, "last"))
        if rule == "best-heldout" and (run, "best-val") in rule_of_run:
            pairs.append((r.row, "best-val", "best-heldout"))
    out = []
    for row, rule, baseline in pairs:
        for metric in HEADLINE:
            d = delta(content, rule_of_run[(row.run_label, rule)], rule_of_run[(row.run_label, baseline)], metric)
            if d is not None:
                out.append(Optimism(row.method, row.dataset, rule, baseline, metric, d))
    return out


SELECTION_SENTENCES = {
    ("best-val", "last"): "Selecting the best validation on the reported split (the authors' rule) instead of the last "
                          "checkpoint changes",
    ("best-heldout", "last"): "Selecting the best validation on held-out training images instead of the last "
                              "checkpoint changes",
    ("best-val", "best-heldout"): "Selecting on the reported split instead of on held-out training images (an "
                                  "upper bound of the optimism) changes",
}


def selection_sentences(content: Content) -> list[str]:
    found = [o for o in optimism(content) if o.metric == DELTA_METRIC]
    out = []
    for comparison in dict.fromkeys((o.rule, o.baseline) for o in found):
        items = [o for o in found if (o.rule, o.baseline) == comparison]
        listed = "; ".join(f"{o.method} {signed(o.delta.diff)}"
                           + (f" {interval(o.delta.image.ci_low, o.delta.image.ci_high)}" if o.delta.image else "")
                           for o in items)
        out.append(f"{SELECTION_SENTENCES[comparison]} {METRIC_TITLES[DELTA_METRIC]} by: {listed} (paired 95 % CI "
                   "over images).")
    return out

