"""What a table's report says, as plain data: the rows in the table's order, which trained row beats which
reference, the paired tests, the costs, the missing cells, the data cards, the budgets.

Every output (harness.report.pages: markdown and HTML, harness.report.xlsx, harness.report.text) is a view that
reads a `Content` and decides only how it looks; nothing here formats a number.

Row order, everywhere: the table's learned rows as the table lists them (its subject first), then the
untrained initialisations, then the reference methods (trivial segmentations). Whether a row is a reference
row comes from the method registry (`kind == "reference"`) and the row's variant, not from a list kept here.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness.errors import HarnessError
from harness.registry import METHODS
from harness.report import stats
from harness.report.frame import (
    OURS,
    Evaluated,
    check_uniform,
    conform,
    data_card_fingerprint,
    find_records,
    per_image_frame,
    summarise,
    tidy_frame,
)
from harness.report.published import SOURCE as PUBLISHED
from harness.report.published import published_frame, published_tables
from harness.results import METRICS, gallery_path, read_gallery
from harness.tables import Row, Table

# The sections of a table's rows, in report order.
LEARNED, UNTRAINED, REFERENCE = "learned", "untrained", "reference"
SECTIONS = (LEARNED, UNTRAINED, REFERENCE)

# What each reference method's rows mean (every method the registry calls "reference" needs its sentence).
UNTRAINED_NOTE = "the method's initialisation for the seed, evaluated without training: what training must beat."
# The metrics on which a trained row must beat its initialisation and the trivial rows (ARI-fg: objects; mBO: all
# segments, background included).
BEAT_METRICS = ("ari_fg", "mbo")
# Cost fields of a record (harness.run) in the order the reports list them; other numeric fields follow.
COST_FIELDS = ("train_seconds", "stage_seconds", "total_train_seconds", "train_images_per_second", "steps",
               "peak_memory_mb", "eval_seconds", "eval_images_per_second", "parameters", "trainable_parameters")


class ReportError(HarnessError):
    pass


@dataclass
class Options:
    allow_mixed: bool = False
    compare: list[tuple[str, str]] | None = None  # label pairs for paired tests (None: the default pairs)
    gallery_images: int = 8
    gallery_size: int = 112
    n_boot: int = 10_000
    boot_seed: int = 0


# ----- rows --------------------------------------------------------------------------------------------------


def section(row: Row) -> str:
    """LEARNED, UNTRAINED (a learned method's initialisation) or REFERENCE (a registered reference method)."""
    if row.variant == "untrained":
        return UNTRAINED
    if row.method in METHODS and METHODS.get(row.method).kind == "reference":
        return REFERENCE
    return LEARNED


def is_reference(row: Row) -> bool:
    """Reference rows (trivial methods, untrained initialisations) are shown apart from the learned ones."""
    return section(row) != LEARNED


def ordered_rows(table: Table) -> list[Row]:
    """The table's rows in report order: by section, the table's own order within each."""
    return [row for name in SECTIONS for row in table.rows if section(row) == name]


@dataclass(frozen=True)
class Stat:
    """One row's seed mean and sample std of one metric, in percent (std NaN with one seed)."""

    mean_pct: float
    std_pct: float
    n_seeds: int


@dataclass(frozen=True)
class ResultRow:
    """A row of the main table: per metric our statistic (under the table's protocol) and the published one."""

    row: Row
    section: str
    ours: dict[str, Stat | None]
    published: dict[str, Stat | None]

    @property
    def label(self) -> str:
        return self.row.label

    def difference(self, metric: str) -> float | None:
        """Ours − published, in points (None unless both exist)."""
        ours, theirs = self.ours[metric], self.published[metric]
        return None if ours is None or theirs is None else ours.mean_pct - theirs.mean_pct


def statistics(summary: pd.DataFrame, table: Table) -> dict[tuple[str, str, str], Stat]:
    """{(source, label, metric): Stat} of the main table: ours under the table's protocol, published as stated."""
    kept = summary[(summary["source"] != OURS) | (summary["protocol"] == table.protocol)]
    out: dict[tuple[str, str, str], Stat] = {}
    for s in kept.itertuples():
        out.setdefault((s.source, s.label, s.metric), Stat(s.mean_pct, s.std_pct, s.n_seeds))
    return out


def result_rows(table: Table, summary: pd.DataFrame) -> list[ResultRow]:
    """The main table's rows that have a number (ours or published), in report order."""
    found = statistics(summary, table)
    rows = []
    for row in ordered_rows(table):
        ours = {m: found.get((OURS, row.label, m)) for m in METRICS}
        published = {m: found.get((PUBLISHED, row.label, m)) for m in METRICS}
        if any(v is not None for v in [*ours.values(), *published.values()]):
            rows.append(ResultRow(row, section(row), ours, published))
    return rows


def in_row_order(frame: pd.DataFrame, table: Table) -> pd.DataFrame:
    """`frame` (with a label column) stably sorted into report row order; labels not of the table last."""
    rank = _rank(table)
    return frame.sort_values("label", key=lambda s: s.map(rank).fillna(len(rank)), kind="stable") \
        .reset_index(drop=True)


def _rank(table: Table) -> dict[str, int]:
    return {row.label: i for i, row in enumerate(ordered_rows(table))}


def seed_groups(frame: pd.DataFrame, labels: list[str]) -> list[tuple[str, list[tuple[int, dict]]]]:
    """The per-seed values of a tidy frame (one source, one protocol) as [(label, [(seed, {metric: value})])],
    grouped by label in the order of `labels`."""
    groups = []
    for label in labels:
        rows = frame[(frame["label"] == label) & frame["seed"].notna()]
        if rows.empty:
            continue
        seeds = []
        for seed in sorted(rows["seed"].unique()):
            cell = rows[rows["seed"] == seed]
            seeds.append((int(seed), dict(zip(cell["metric"], cell["value"]))))
        groups.append((label, seeds))
    return groups


# ----- the other parts of a report ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Beats:
    """Whether each trained row's seed mean beats its own untrained initialisation and every trivial row on
    BEAT_METRICS. Columns: the initialisation (if the table has untrained rows), then the trivial rows' labels.
    A cell is None where there is nothing to compare, else the failures [(metric, row mean, reference mean)]
    (empty: the row beats the reference)."""

    initialisation: bool
    trivial: list[str]
    rows: list[tuple[str, list[list[tuple[str, float, float]] | None]]]


@dataclass(frozen=True)
class BudgetRow:
    """What a row's cells were made with: the distinct values over its seeds."""

    label: str
    steps: list
    batch_size: list
    config_hash: list
    checkpoints: list


@dataclass
class DataCard:
    dataset: str
    fingerprint: str
    cells: list[str]  # the cells that read it, in report order
    card: object  # the records' data card (a dict, as harness.data.card writes it)


@dataclass(frozen=True)
class Gallery:
    """The mask gallery of a row's first seed that has one (harness.results.read_gallery)."""

    label: str
    seed: int
    gallery: dict
    segmentation: str | None  # the mask the method uses as its segmentation


@dataclass
class Content:
    """One table's report as data (built by `build`)."""

    table: Table
    options: Options
    frame: pd.DataFrame  # the tidy frame, ours and published
    summary: pd.DataFrame  # its seed statistics, in report row order (ours first)
    issues: list[str]  # how mixed cells disagree (only with allow_mixed)
    published_meta: dict[str, dict]  # per published source, its _meta
    has_ours: bool
    has_published: bool
    rows: list[ResultRow]  # every section, report order
    reference_notes: list[tuple[str, str]]  # (row label or method, what it means), report order
    beats: Beats | None
    other_protocols: list[tuple[str, list[tuple[str, dict[str, Stat]]]]]  # with allow_mixed
    missing: list[tuple[str, int]]  # (label, seed) without a result under the table's protocol
    budgets: list[BudgetRow]
    data_cards: list[DataCard]
    cost: pd.DataFrame  # label, dataset, the mean over seeds of every numeric cost field
    tests: pd.DataFrame  # harness.report.stats.compare_rows, pairs without common cells left out
    galleries: list[Gallery]
    seeds_ours: list  # seed_groups of ours under the table's protocol
    seeds_published: list  # seed_groups of the published per-seed values
    stat_index: dict[tuple[str, str, str], Stat]  # statistics(summary, table)
    main: pd.DataFrame  # the tidy frame of ours under the table's protocol
    images: pd.DataFrame  # its per-image values (harness.report.frame.per_image_frame)
    evaluated: list[Evaluated]  # our records under the table's protocol, in report order
    _paired: dict = field(default_factory=dict, repr=False)

    def paired(self, a: str, b: str, metric: str) -> stats.PairedTest:
        """The paired image-level test of rows a − b on `metric` (harness.report.stats.paired_test), computed once."""
        key = (a, b, metric)
        if key not in self._paired:
            self._paired[key] = stats.paired_test(*stats.image_pairs(self.images, a, b, metric),
                                                  n_boot=self.options.n_boot, seed=self.options.boot_seed)
        return self._paired[key]

    def stat(self, source: str, label: str, metric: str) -> Stat | None:
        """A row's statistic of one metric in the main table (ours: under the table's protocol), or None."""
        return self.stat_index.get((source, label, metric))


def load_frame(table: Table, results_dir, published: bool, published_path, allow_mixed: bool):
    """(tidy frame, our evaluated records, mixing issues) — the aggregation without any rendering."""
    evaluated = find_records(results_dir, table) if results_dir is not None and Path(results_dir).is_dir() else []
    ours = tidy_frame(evaluated)
    issues = check_uniform(ours, table, allow_mixed) if len(ours) else []
    parts = [ours, published_frame(table, published_path)] if published else [ours]
    parts = [p for p in parts if len(p)]
    frame = conform(pd.concat(parts, ignore_index=True) if parts else pd.DataFrame())
    return frame, evaluated, issues


def build(table: Table, results_dir, published: bool, published_path, options: Options) -> Content:
    """Everything the reports of `table` say, from the records under `results_dir` (and the published numbers)."""
    frame, evaluated, issues = load_frame(table, results_dir, published, published_path, options.allow_mixed)
    if frame.empty:
        where = f"under {results_dir}" if results_dir is not None else "(no results directory given)"
        raise ReportError(f"table {table.name!r}: no result records {where}"
                          + ("" if published else "; run `python -m harness reproduce --table "
                             f"{table.name}` or pass --published to show the published numbers"))
    meta = {key: entry.get("_meta", {}) for key, entry in published_tables(table, published_path).items()} \
        if published else {}
    rank = _rank(table)
    evaluated = sorted(evaluated, key=lambda e: (rank[e.row.label], e.seed))
    summary = in_row_order(summarise(frame), table)
    summary = pd.concat([summary[summary["source"] == OURS], summary[summary["source"] != OURS]], ignore_index=True)
    has_ours = bool((frame["source"] == OURS).any())
    has_published = bool((frame["source"] == PUBLISHED).any())
    main = frame[(frame["source"] == OURS) & (frame["protocol"] == table.protocol)]
    ours_here = [e for e in evaluated if e.record["identity"]["protocol"] == table.protocol]
    stat_index = statistics(summary, table)
    labels = [row.label for row in ordered_rows(table)]
    pairs = resolve_pairs(table, options.compare) if has_ours else []
    images = per_image_frame(ours_here)
    tests = stats.compare_rows(main, images, pairs, n_boot=options.n_boot, seed=options.boot_seed)
    return Content(
        table=table, options=options, frame=frame, summary=summary, issues=issues, published_meta=meta,
        has_ours=has_ours, has_published=has_published, rows=result_rows(table, summary),
        reference_notes=_reference_notes(table, frame),
        beats=_beats(table, stat_index) if has_ours else None,
        other_protocols=_other_protocols(summary, table),
        missing=_missing(table, main) if has_ours else [],
        budgets=_budgets(in_row_order(main.drop_duplicates(["label", "seed"]), table)),
        data_cards=_data_cards(evaluated), cost=_cost(ours_here, table),
        tests=tests[tests["n"] > 0].reset_index(drop=True),  # pairs without common cells say nothing
        galleries=_galleries(ours_here, labels),
        seeds_ours=seed_groups(main, labels),
        seeds_published=seed_groups(frame[frame["source"] == PUBLISHED], labels),
        stat_index=stat_index, main=main, images=images, evaluated=ours_here,
    )


def _reference_notes(table: Table, frame: pd.DataFrame) -> list[tuple[str, str]]:
    notes = {}
    for row in ordered_rows(table):
        if not is_reference(row) or not (frame["label"] == row.label).any():
            continue
        if section(row) == UNTRAINED:
            notes[row.label] = UNTRAINED_NOTE
        else:
            notes[row.method] = METHODS.get(row.method).description  # each reference row says what it is
    return list(notes.items())


def _beats(table: Table, found: dict) -> Beats | None:
    rows = ordered_rows(table)
    trivial = [r for r in rows if section(r) == REFERENCE]
    learned = [r for r in rows if section(r) == LEARNED]
    untrained = {(r.method, r.dataset): r for r in rows if section(r) == UNTRAINED}
    if not learned or not (trivial or untrained):
        return None
    trivial_labels = list(dict.fromkeys(r.label for r in trivial))
    out = []
    for row in learned:
        against = [untrained.get((row.method, row.dataset))] if untrained else []
        against += [next((r for r in trivial if r.label == label and r.dataset == row.dataset), None)
                    for label in trivial_labels]
        out.append((row.label, [_beat(found, row, reference) for reference in against]))
    return Beats(bool(untrained), trivial_labels, out)


def _beat(found: dict, row: Row, reference: Row | None) -> list[tuple[str, float, float]] | None:
    """The BEAT_METRICS on which `row`'s mean is not above `reference`'s (None: nothing to compare)."""
    if reference is None:
        return None
    failed = []
    for metric in BEAT_METRICS:
        ours, theirs = found.get((OURS, row.label, metric)), found.get((OURS, reference.label, metric))
        if ours is None or theirs is None:
            return None
        if not ours.mean_pct > theirs.mean_pct:
            failed.append((metric, ours.mean_pct, theirs.mean_pct))
    return failed


def _other_protocols(summary: pd.DataFrame, table: Table) -> list[tuple[str, list[tuple[str, dict[str, Stat]]]]]:
    """With allow_mixed, cells evaluated under other protocols than the table's, aggregated on their own."""
    other = summary[(summary["source"] == OURS) & (summary["protocol"] != table.protocol)]
    out = []
    for protocol, group in other.groupby("protocol", sort=True):
        rows = [(label, {c.metric: Stat(c.mean_pct, c.std_pct, c.n_seeds) for c in cells.itertuples()})
                for label, cells in group.groupby("label", sort=False)]
        out.append((protocol, rows))
    return out


def _missing(table: Table, main: pd.DataFrame) -> list[tuple[str, int]]:
    have = set(zip(main["label"], main["seed"]))
    return [(row.label, seed) for row in ordered_rows(table) for seed in table.seeds
            if (row.label, seed) not in have]


def _budgets(cells: pd.DataFrame) -> list[BudgetRow]:
    def distinct(values: pd.Series) -> list:
        return list(dict.fromkeys(values.tolist()))

    return [BudgetRow(label, distinct(g["steps"]), distinct(g["batch_size"]), distinct(g["config_hash"]),
                      distinct(g["checkpoint"])) for label, g in cells.groupby("label", sort=False)]


def _data_cards(evaluated: list[Evaluated]) -> list[DataCard]:
    """One card per dataset (check_uniform guarantees one unless mixing was allowed: then all are shown)."""
    cards: dict[tuple, DataCard] = {}
    for item in evaluated:
        card = item.record["identity"]["data_card"]
        fingerprint = data_card_fingerprint(card)
        entry = cards.setdefault((item.row.dataset, fingerprint), DataCard(item.row.dataset, fingerprint, [], card))
        entry.cells.append(item.name)
    return list(cards.values())


def _cost(evaluated: list[Evaluated], table: Table) -> pd.DataFrame:
    """Mean over seeds of every numeric cost field, per row, in report order."""
    rows = []
    for item in evaluated:
        numeric = {k: float(v) for k, v in item.record.get("cost", {}).items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if "train_seconds" in numeric:  # what training the row took, its prerequisite stage included
            numeric["total_train_seconds"] = numeric["train_seconds"] + numeric.get("stage_seconds", 0.0)
        rows.append({"label": item.row.label, "dataset": item.row.dataset, **numeric})
    if not rows:
        return pd.DataFrame(columns=["label", "dataset"])
    frame = pd.DataFrame(rows)
    fields = [k for k in COST_FIELDS if k in frame] + sorted(set(frame) - set(COST_FIELDS) - {"label", "dataset"})
    frame = frame.groupby(["label", "dataset"], sort=False)[fields].mean().reset_index()
    return in_row_order(frame, table)


def _galleries(evaluated: list[Evaluated], labels: list[str]) -> list[Gallery]:
    out = []
    for label in labels:
        for item in (e for e in evaluated if e.row.label == label):  # evaluated: in row order, then seed
            try:
                gallery = read_gallery(item.path)
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
                raise ReportError(f"{gallery_path(item.path)}: unreadable mask gallery ({e})") from None
            if gallery is not None:
                out.append(Gallery(label, item.seed, gallery, item.record["identity"].get("mask")))
                break
    return out


def resolve_pairs(table: Table, compare: list[tuple[str, str]] | None) -> list[tuple[str, str]]:
    """Label pairs on the same dataset. Each side of `compare` is a row label or a method name (then every
    dataset where both methods have a trained row); default: per dataset, the first learned row of the
    table against each later learned row."""
    learned = [r for r in table.rows if not is_reference(r)]
    if compare is None:
        pairs = []
        for dataset in dict.fromkeys(r.dataset for r in learned):
            rows = [r for r in learned if r.dataset == dataset]
            pairs += [(rows[0].label, r.label) for r in rows[1:]]
        return pairs
    pairs = []
    for a, b in compare:
        left, right = _rows_named(table, a), _rows_named(table, b)
        found = [(x.label, y.label) for x in left for y in right if x.dataset == y.dataset and x.label != y.label]
        if not found:
            raise ReportError(f"table {table.name!r}: no dataset where {a!r} and {b!r} both have a row to compare")
        pairs += found
    return list(dict.fromkeys(pairs))


def _rows_named(table: Table, name: str) -> list[Row]:
    rows = [r for r in table.rows if r.label == name] or \
           [r for r in table.rows if r.method == name and r.variant == "trained"]
    if not rows:
        raise ReportError(f"table {table.name!r} has no row or method {name!r}; rows: "
                          f"{', '.join(r.label for r in table.rows)}")
    return rows
