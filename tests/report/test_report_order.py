"""Row order in every output: the table's learned rows as the table lists them (its subject first), then the
untrained initialisations, then the reference methods, under their own heading — whatever order the records
lie in on disk. Which rows are reference rows comes from the method registry."""

import openpyxl
import pytest
from report_records import toy_table, uniform, write_cell
from test_report_render import Page

from harness.registry import METHODS
from harness.report import render_table, text_table
from harness.report.content import LEARNED, REFERENCE, UNTRAINED, ordered_rows, section
from harness.report.text import REFERENCE_HEADING
from harness.tables import TABLES, Row

# Table order mixes the sections; on disk (alphabetical) colour-kmeans comes first and the subject third.
ROWS = (Row("slotdiffusion", "synthetic", "slotdiffusion"), Row("grid", "synthetic", "grid"),
        Row("slotdiffusion", "synthetic", "slotdiffusion-untrained", variant="untrained"),
        Row("dias", "synthetic", "dias"), Row("colour-kmeans", "synthetic", "colour-kmeans"),
        Row("dias", "synthetic", "dias-untrained", variant="untrained"), Row("sa", "synthetic", "sa"))
LEARNED_ROWS = ["slotdiffusion", "dias", "sa"]
REFERENCE_ROWS = ["slotdiffusion-untrained", "dias-untrained", "grid", "colour-kmeans"]
# ARI-fg / mBO level per row, so that a number shown under the wrong label is caught
LEVEL = {"slotdiffusion": 0.40, "grid": 0.15, "slotdiffusion-untrained": 0.05, "dias": 0.55, "colour-kmeans": 0.25,
         "dias-untrained": 0.10, "sa": 0.30}


@pytest.fixture
def reports(tmp_path):
    table = toy_table(name="order", rows=ROWS)
    for row in ROWS:
        for seed in (42, 43):
            write_cell(tmp_path / "r", table, row.label, seed, uniform(LEVEL[row.label]),
                       steps=100 if section(row) == LEARNED else 0, cost={"train_seconds": 10.0})
    frame, paths = render_table(table, tmp_path / "r", tmp_path / "out", n_boot=20)
    return table, frame, paths


def test_sections_come_from_the_registry(monkeypatch):
    for name in METHODS.names():
        kind = METHODS.get(name).kind
        if kind in ("learned", "reference"):
            assert section(Row(name, "synthetic", name)) == (REFERENCE if kind == "reference" else LEARNED), name
    assert section(Row("dias", "synthetic", "x", variant="untrained")) == UNTRAINED
    assert section(Row("not-registered", "synthetic", "x")) == LEARNED
    monkeypatch.setattr(METHODS.get("grid"), "kind", "learned")  # the registry, not a list of names, decides
    assert section(Row("grid", "synthetic", "grid")) == LEARNED


def test_ordered_rows_keep_the_table_order_within_each_section():
    assert [r.label for r in ordered_rows(toy_table(rows=ROWS))] == LEARNED_ROWS + REFERENCE_ROWS
    mini = TABLES.get("mini")
    sections = [section(r) for r in ordered_rows(mini)]
    assert sections == sorted(sections, key=[LEARNED, UNTRAINED, REFERENCE].index)
    assert [r for r in ordered_rows(mini) if section(r) == LEARNED] == [r for r in mini.rows if section(r) == LEARNED]


def _rows_after(lines, header):
    rows = []
    for line in lines[header + 2:]:
        if not line.startswith("| "):
            break
        rows.append(line.split(" | ")[0].removeprefix("| "))
    return rows


def test_markdown_lists_the_subject_first_and_references_under_their_heading(reports):
    _, _, paths = reports
    lines = paths["md"].read_text().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| row | ARI | ARI-fg | mBO |"))
    heading = lines.index("## Reference rows")
    assert header < heading and _rows_after(lines, header) == LEARNED_ROWS
    # dias is best (55 > 40 > 30: bold), slotdiffusion second (italic); Δ against the best baseline, slotdiffusion
    assert "| dias | **55.0±0.0** | **55.0±0.0** | **55.0±0.0** | **55.0±0.0** | +15.0 [+15.0, +15.0] |" in lines
    assert "| sa | 30.0±0.0 | 30.0±0.0 | 30.0±0.0 | 30.0±0.0 | -10.0 [-10.0, -10.0] |" in lines
    reference_header = next(i for i, line in enumerate(lines) if i > heading and line.startswith("| row | ARI |"))
    assert _rows_after(lines, reference_header) == REFERENCE_ROWS
    assert "| grid | 15.0±0.0 | 15.0±0.0 | 15.0±0.0 | 15.0±0.0 |" in lines
    budget = next(i for i, line in enumerate(lines) if line.startswith("| row | steps |"))
    assert _rows_after(lines, budget) == LEARNED_ROWS + REFERENCE_ROWS


def test_html_lists_the_subject_first_and_references_apart(reports):
    _, _, paths = reports
    page = Page(paths["html"].read_text())
    results, reference = page.table("results"), page.table("reference")
    assert list(results) == LEARNED_ROWS and list(reference) == REFERENCE_ROWS
    assert results["dias"][1] == "55.0±0.0" and reference["colour-kmeans"][1] == "25.0±0.0"
    beats = page.table("beats")
    assert list(beats) == LEARNED_ROWS
    assert beats["dias"] == ["✓", "✓", "✓"]  # 55 beats its initialisation 10, grid 15, colour-kmeans 25
    assert beats["sa"] == ["—", "✓", "✓"]  # no initialisation of sa in the table
    assert list(page.table("cost")) == LEARNED_ROWS + REFERENCE_ROWS
    assert list(page.table("budget")) == LEARNED_ROWS + REFERENCE_ROWS


def test_text_table_lists_the_subject_first_and_references_under_a_heading(reports):
    table, frame, _ = reports
    lines = text_table(frame, table).splitlines()
    assert lines[0] == "ours (dias-v3):" and lines[1].split() == ["ARI", "ARI-fg", "mBO", "mIoU"]
    assert [line.split()[0] for line in lines[2:5]] == LEARNED_ROWS
    assert lines[5] == REFERENCE_HEADING
    assert [line.split()[0] for line in lines[6:]] == REFERENCE_ROWS
    assert lines[2].split()[1:] == ["40.0±0.0"] * 4 and lines[-1].split()[1:] == ["25.0±0.0"] * 4


def test_xlsx_sheets_follow_the_row_order(reports):
    _, _, paths = reports
    book = openpyxl.load_workbook(paths["xlsx"])
    eval_multi = [book["eval_multi"][f"A{r}"].value for r in range(2, 16, 2)]
    assert [name.rsplit("-", 1)[0] for name in eval_multi] == LEARNED_ROWS + REFERENCE_ROWS
    assert book["eval_multi"]["C4"].value == pytest.approx(0.55, abs=1e-7)  # dias, seed 42, ARI-fg (float32)
    summary = book["summary"]
    labels = [summary.cell(r, 2).value for r in range(2, summary.max_row + 1)]
    assert list(dict.fromkeys(labels)) == LEARNED_ROWS + REFERENCE_ROWS
