"""The xlsx in the authors' layout: acc-v3.xlsx reproduced cell for cell from the published values, and the
layout's generalisation to other group sizes."""

import io
import json
import os
import shutil
import statistics
import subprocess

import openpyxl
import pytest

from harness.cli import main
from harness.report.published import PUBLISHED_FILE
from harness.report.xlsx import workbook_bytes


def column_widths(ws) -> dict:
    out = {}
    for dim in ws.column_dimensions.values():
        if dim.width is not None and dim.min is not None:
            out.update({c: dim.width for c in range(dim.min, dim.max + 1)})
    return out


def cells(ws) -> dict:
    """Every cell that has a value or a number format, as {coordinate: (value, type, number format)}."""
    out = {}
    for row in ws.iter_rows(min_row=1, max_row=ws.max_row, max_col=ws.max_column):
        for c in row:
            if c.value is not None or c.number_format != "General":
                out[c.coordinate] = (c.value, c.data_type, c.number_format)
    return out


def test_v3_published_reproduces_acc_v3_cell_for_cell(tmp_path, reference_dir, capsys):
    """The DIAS rows are the authors' acc-v3.xlsx cell for cell; SPOT's and SmoothSA's rows (SmoothSA's acc-v3.xlsx)
    follow in the same layout, so the statistics' number format runs on through row 10, where the authors' file
    ends."""
    assert main(["report", "--table", "v3", "--published", "--results", str(tmp_path / "none"),
                 "--out", str(tmp_path / "reports")]) == 0
    ours = openpyxl.load_workbook(tmp_path / "reports" / "acc-v3.xlsx")
    theirs = openpyxl.load_workbook(reference_dir / "acc-v3.xlsx")
    assert ours.sheetnames[0] == "eval_multi"
    a, b = ours["eval_multi"], theirs["eval_multi"]
    assert b.dimensions == "A1:Q10" and a.dimensions == "A1:Q28"
    continued = {f"{col}10" for col in "HIJK"}
    assert {k: v for k, v in cells(a).items() if int(k.lstrip("ABCDEFGHIJKLMNOPQ")) <= 10 and k not in continued} \
        == {k: v for k, v in cells(b).items() if k not in continued}
    for r in range(1, 11):  # also every empty cell: nothing extra, nothing missing
        for c in range(1, 18):
            x, y = a.cell(r, c), b.cell(r, c)
            if x.coordinate in continued:
                assert (x.value, x.number_format, y.number_format) == (y.value, "0.0_ ", "General")
            else:
                assert (x.value, x.number_format) == (y.value, y.number_format), x.coordinate
    assert [a[f"A{r}"].value for r in range(11, 29)] == [f"{m}_r-{d}-{s}" for m in ("spot", "smoothsa")
                                                         for d in ("clevrtex", "coco", "voc") for s in (42, 43, 44)]
    assert (a["B11"].value, a["E19"].value, a["B20"].value, a["E28"].value) == (0.26642394, 0.38625273, 0.75983649,
                                                                               0.43605214)
    assert a["H11"].value == "=AVERAGE(B11:B13)*100" and a["H26"].value == "=AVERAGE(B26:B28)*100"
    assert a["H27"].number_format == "0.0_ " and a["H28"].number_format == "General"
    assert column_widths(a) == column_widths(b)
    assert (a.sheet_format.defaultColWidth, a.sheet_format.defaultRowHeight) == \
           (b.sheet_format.defaultColWidth, b.sheet_format.defaultRowHeight)
    # spot checks that pin the layout independently of the reference file
    assert a["A2"].value == "dias_r-clevrtex-42" and a["B2"].value == 0.80945343
    assert a["H5"].value == "=AVERAGE(B5:B7)*100" and a["I9"].value == "=STDEV(C8:C10)*100"
    assert a["M8"].value == "=LEFT(A8,LEN(A8)-3)" and a["H4"].number_format == "0.0_ "
    printed = capsys.readouterr().out
    assert "80.9±0.3" in printed and "acc-v3.xlsx" in printed


def test_published_means_and_stds_match_an_independent_calculation(tmp_path):
    """The per-seed values the sheet holds give the published mean/std (statistics.mean / stdev ×100)."""
    from harness.report import render_table

    frame, _ = render_table("v3", None, tmp_path, published=True)
    sheet = openpyxl.load_workbook(tmp_path / "acc-v3.xlsx")["eval_multi"]
    published = json.loads(PUBLISHED_FILE.read_text())["dias_v3_acc-v3.xlsx"]["DIAS"]
    for top, dataset in ((2, "clevrtex"), (5, "coco"), (8, "voc")):
        for col, metric in zip("BCDE", ("ari", "ari_fg", "mbo", "miou")):
            values = [sheet[f"{col}{top + i}"].value for i in range(3)]
            stated = published[dataset][metric]
            assert values == pytest.approx([v / 100 for v in stated["per_seed"].values()], abs=5e-9)
            assert statistics.mean(values) * 100 == pytest.approx(stated["mean"], abs=5e-5)
            assert statistics.stdev(values) * 100 == pytest.approx(stated["std"], abs=5e-5)
    from harness.report.frame import summarise

    summary = summarise(frame).set_index(["label", "metric"])
    assert summary.loc[("dias_r-voc", "ari_fg"), "mean_pct"] == pytest.approx(33.504922, abs=1e-6)
    assert summary.loc[("dias_r-voc", "ari_fg"), "std_pct"] == pytest.approx(0.6991, abs=5e-5)


def test_readme_rounding_reproduced(tmp_path):
    """The authors' readme values ("80.9±0.3 ...") are the display text of the recomputed summary."""
    from harness.report import render_table
    from harness.report.frame import summarise

    frame, _ = render_table("v3", None, tmp_path, published=True)
    summary = summarise(frame)
    meta = json.loads(PUBLISHED_FILE.read_text())["dias_v3_acc-v3.xlsx"]["_meta"]["readme_rounded"]
    for dataset, expected in meta.items():
        dias = summary[(summary["dataset"] == dataset) & (summary["method"] == "dias")]
        got = dias.set_index("metric").loc[["ari", "ari_fg", "mbo", "miou"], "text"]
        assert " ".join(got) == expected


def test_layout_generalises_to_other_group_sizes():
    groups = [("a-run", [(7, {"ari": 0.5, "ari_fg": 0.25}), (8, {"ari": 0.123456789, "ari_fg": None}),
                         (9, {"ari": 0.1, "ari_fg": 0.2}), (10, {"ari": 0.3, "ari_fg": 0.4})]),
              ("b-run", [(123, {"ari": 1.0, "ari_fg": 1.0})]),
              ("c-run", [(1, {"ari": 0.0, "ari_fg": 0.0}), (2, {"ari": 0.5, "ari_fg": 0.5})])]
    ws = openpyxl.load_workbook(io.BytesIO(workbook_bytes(groups, [])))["eval_multi"]
    # four metrics ⇒ columns as the authors': values B–E, tags G, statistics H–K, name M, text N–Q
    assert [ws.cell(1, c).value for c in (2, 3, 8, 9, 14, 15)] == ["ari", "arifg", "ari", "arifg", "ari", "arifg"]
    assert [ws[f"A{r}"].value for r in range(2, 10)] == ["a-run-7", "a-run-8", "a-run-9", "a-run-10", "b-run-123",
                                                         None, "c-run-1", "c-run-2"]
    assert ws["B3"].value == 0.12345679 and ws["C3"].value is None
    assert (ws["G2"].value, ws["G3"].value, ws["G6"].value, ws["G7"].value, ws["G8"].value) == \
           ("mean", "std", "mean", "std", "mean")
    assert ws["H2"].value == "=AVERAGE(B2:B5)*100" and ws["H3"].value == "=STDEV(B2:B5)*100"
    assert ws["H6"].value == "=AVERAGE(B6:B6)*100" and ws["H7"].value == "=STDEV(B6:B6)*100"
    assert ws["I8"].value == "=AVERAGE(C8:C9)*100" and ws["I9"].value == "=STDEV(C8:C9)*100"
    assert ws["M2"].value == "=LEFT(A2,LEN(A2)-2)" and ws["M6"].value == "=LEFT(A6,LEN(A6)-4)"
    assert ws["N8"].value == '=TEXT(H8,"0.0")&"±"&TEXT(H9,"0.0")'
    formatted = [r for r in range(1, 12) if ws[f"H{r}"].number_format == "0.0_ "]
    assert formatted == list(range(2, 10))  # first mean row .. last std row


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice (soffice) is not installed")
def test_libreoffice_recalculation_gives_the_authors_cached_values(tmp_path, reference_dir):
    """An independent spreadsheet engine evaluates our formulas to exactly what the authors' file caches."""
    from harness.report import render_table

    _, paths = render_table("v3", None, tmp_path, published=True)
    subprocess.run(["soffice", "--headless", "--calc", "--convert-to", "xlsx", "--outdir", str(tmp_path / "lo"),
                    str(paths["xlsx"])], check=True, capture_output=True, timeout=300,
                   env={**os.environ, "HOME": str(tmp_path)})
    ours = openpyxl.load_workbook(tmp_path / "lo" / "acc-v3.xlsx", data_only=True)["eval_multi"]
    theirs = openpyxl.load_workbook(reference_dir / "acc-v3.xlsx", data_only=True)["eval_multi"]
    for row in theirs.iter_rows(min_row=1, max_row=10, max_col=17):
        for cell in row:
            got = ours[cell.coordinate].value
            if isinstance(cell.value, float):
                assert got == pytest.approx(cell.value, rel=1e-12), cell.coordinate
            else:
                assert got == cell.value, cell.coordinate
