"""The report's exports (`--format md,html,xlsx,csv,json,latex`) against oracles computed here from
results/published/published.json and from hand-made records with numpy: every xlsx sheet reads numbers through
pandas and openpyxl's data_only, headers are unique, csv/json round-trip to the table's values, the LaTeX table
bolds the best and underlines the second per column and is well formed, and the CLI writes what --format asks."""

import json
import re

import numpy as np
import openpyxl
import pandas as pd
import pytest

from harness.cli import main
from harness.report import render_table
from harness.report.published import PUBLISHED_FILE
from harness.tables import TABLES
from tests.report.report_records import toy_table, uniform, write_cell

ALL = ["md", "html", "xlsx", "csv", "json", "latex"]
METRICS = ("ari", "ari_fg", "mbo", "miou")
EVAL_MULTI_HEADERS = ("ari", "arifg", "mbo", "miou")  # the authors' header names
MEANS, STDS = "HIJK", "HIJK"  # eval_multi's statistics columns (mean row, std row of each group)
TEXTS = "NOPQ"


def v3_oracle() -> dict:
    """{(label, metric): (mean %, std %, n per-seed values)} of table v3's published rows, from published.json alone:
    each row's first source (the table's order) that has the method (any case) and data set; numpy over the
    per-seed values where the source gives them, else the stated mean and std."""
    data = json.loads(PUBLISHED_FILE.read_text())
    table = TABLES.get("v3")
    out = {}
    for row in table.rows:
        if row.selection != "last":  # published numbers sit beside the run's own row
            continue
        for key in table.published:
            names = [n for n in data[key] if n != "_meta" and n.lower() == row.method.lower()]
            if names and row.dataset in data[key][names[0]]:
                cells = data[key][names[0]][row.dataset]
                break
        else:
            continue
        for metric in METRICS:
            cell = cells[metric]
            if cell.get("per_seed"):
                values = np.array(list(cell["per_seed"].values()), dtype=float)
                out[(row.label, metric)] = (values.mean(), values.std(ddof=1), len(values))
            else:
                out[(row.label, metric)] = (cell["mean"], cell["std"], 0)
    return out


@pytest.fixture(scope="module")
def v3(tmp_path_factory):
    out = tmp_path_factory.mktemp("v3")
    result = render_table("v3", out / "none", out, published=True, formats=ALL, n_boot=100)
    return result.paths


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """Our own results: alpha with three seeds, beta with two, the grid with one (its std is Excel's #DIV/0!); values
    exact in float32, the records' arithmetic."""
    root = tmp_path_factory.mktemp("toy")
    table = toy_table()
    values = {"alpha-syn": {42: 0.5, 43: 0.625, 44: 0.75}, "beta-syn": {42: 0.375, 43: 0.4375}, "grid-syn": {42: 0.125}}
    for label, seeds in values.items():
        for seed, x in seeds.items():
            write_cell(root / "results", table, label, seed, uniform(x))
    result = render_table(table, root / "results", root / "reports", formats=ALL, n_boot=100)
    return result.paths, values


def eval_multi_groups(path) -> dict[str, tuple[int, list[str]]]:
    """{label: (top row, per-seed row names)} of eval_multi, read from its column A."""
    ws = openpyxl.load_workbook(path)["eval_multi"]
    groups: dict[str, tuple[int, list[str]]] = {}
    for r in range(2, ws.max_row + 1):
        name = ws.cell(r, 1).value
        if name:
            label = name.rsplit("-", 1)[0]
            top, names = groups.get(label, (r, []))
            groups[label] = (top, names + [name])
    return groups


def test_eval_multi_formulas_carry_numpy_means_and_stds_for_pandas_and_data_only(v3):
    oracle = v3_oracle()
    path = v3["xlsx"]
    formulas = openpyxl.load_workbook(path)["eval_multi"]
    values = openpyxl.load_workbook(path, data_only=True)["eval_multi"]
    frame = pd.read_excel(path, sheet_name="eval_multi", header=None)
    groups = eval_multi_groups(path)
    assert len(groups) == 9  # DIAS, SPOT, SmoothSA on three data sets: the rows with per-seed values
    for label, (top, names) in groups.items():
        for j, metric in enumerate(METRICS):
            mean, std, n = oracle[(label, metric)]
            assert n == len(names) == 3
            for col, row, expected in ((MEANS[j], top, mean), (STDS[j], top + 1, std)):
                assert formulas[f"{col}{row}"].value.startswith(("=AVERAGE(", "=STDEV("))  # the formulas stay
                assert values[f"{col}{row}"].value == pytest.approx(expected, abs=1e-6)
                assert frame.iat[row - 1, "ABCDEFGHIJK".index(col)] == pytest.approx(expected, abs=1e-6)
            assert values[f"{TEXTS[j]}{top}"].value == f"{mean:.1f}±{std:.1f}"
        assert values[f"M{top}"].value == label


def test_every_sheet_reads_numbers_equal_to_the_published_statistics(v3):
    oracle = v3_oracle()
    sheets = pd.read_excel(v3["xlsx"], sheet_name=None)
    assert set(sheets) == {"eval_multi", "summary", "paper_published"}
    summary = sheets["summary"]
    assert len(summary) == len(oracle)
    for r in summary.itertuples():
        mean, std, n = oracle[(r.label, r.metric)]
        assert r.n_seeds == n
        assert (r.mean_pct, r.std_pct, r.unit) == (pytest.approx(mean, abs=1e-9), pytest.approx(std, abs=1e-9), "%")
    paper = sheets["paper_published"].set_index("row")
    methods = {row.label: row.method for row in TABLES.get("v3").rows}
    dataset_of = {row.label: row.dataset for row in TABLES.get("v3").rows}
    for (label, metric), (mean, std, _) in oracle.items():
        assert paper.at[methods[label], f"{dataset_of[label]} {metric} mean"] == pytest.approx(mean, abs=1e-9)
        assert paper.at[methods[label], f"{dataset_of[label]} {metric} std"] == pytest.approx(std, abs=1e-9)


def test_our_workbook_reads_numbers_on_every_sheet_and_states_units(toy):
    paths, values = toy
    groups = eval_multi_groups(paths["xlsx"])
    ws = openpyxl.load_workbook(paths["xlsx"], data_only=True)["eval_multi"]
    for label, seeds in values.items():
        top, names = groups[label]
        x = np.array(list(seeds.values()))
        assert names == [f"{label}-{s}" for s in seeds]
        for j in range(4):
            assert ws[f"{MEANS[j]}{top}"].value == pytest.approx(x.mean() * 100, abs=1e-9)
            std = ws[f"{STDS[j]}{top + 1}"].value
            assert std == "#DIV/0!" if len(x) == 1 else std == pytest.approx(x.std(ddof=1) * 100, abs=1e-9)
    book = openpyxl.load_workbook(paths["xlsx"])
    assert "percent" in book["eval_multi"]["A1"].comment.text and "0–1" in book["eval_multi"]["A1"].comment.text
    sheets = pd.read_excel(paths["xlsx"], sheet_name=None)
    assert {"eval_multi", "summary", "paper_ours"} <= set(sheets)
    for title, frame in sheets.items():
        if title in ("eval_multi", "cost", "data_cards", "mixed_cells"):  # no percentages there
            continue
        assert set(frame["unit"]) == {"%"}, title
    summary = sheets["summary"]
    for label, seeds in values.items():
        x = np.array(list(seeds.values())) * 100
        rows = summary[summary["label"] == label]
        assert list(rows["metric"]) == list(METRICS)
        assert np.allclose(rows["mean_pct"], x.mean())
        if len(x) > 1:
            assert np.allclose(rows["std_pct"], x.std(ddof=1))
        else:
            assert rows["std_pct"].isna().all()
    paper = sheets["paper_ours"].set_index("row")
    assert paper.at["alpha-syn", "synthetic ari mean"] == pytest.approx(np.mean([50, 62.5, 75]))
    assert paper.at["alpha-syn", "synthetic ari_fg mark"] == "best"
    assert paper.at["beta-syn", "synthetic mbo mark"] == "second"


@pytest.mark.parametrize("which", ["v3", "toy"])
def test_headers_are_unique_on_every_sheet_but_the_authors_layout(which, v3, toy):
    paths = v3 if which == "v3" else toy[0]
    book = openpyxl.load_workbook(paths["xlsx"], read_only=True)
    for ws in book.worksheets:
        header = [c for c in next(ws.iter_rows(max_row=1, values_only=True)) if c is not None]
        if ws.title == "eval_multi":  # the authors' layout, cell for cell: the metric names three times
            assert header == list(EVAL_MULTI_HEADERS) * 3
        else:
            assert len(header) == len(set(header)), (ws.title, header)
        frame = pd.read_excel(paths["xlsx"], sheet_name=ws.title)
        assert ws.title == "eval_multi" or not any(re.search(r"\.\d+$", str(c)) for c in frame.columns)
    for key in ("csv", "seeds.csv"):
        header = paths[key].read_text().splitlines()[0].split(",")
        assert len(header) == len(set(header))


def test_csv_and_json_round_trip_to_the_published_values(v3):
    oracle = v3_oracle()
    results = pd.read_csv(v3["csv"])
    assert len(results) == len(oracle) and set(results["unit"]) == {"%"}
    for r in results.itertuples():
        mean, std, n = oracle[(r.label, r.metric)]
        assert (r.source, r.mean, r.std, r.n_seeds) == ("published", pytest.approx(mean, abs=1e-9),
                                                        pytest.approx(std, abs=1e-9), n)
    document = json.loads(v3["json"].read_text())
    assert document["unit"] == "%" and document["table"] == "v3"
    pd.testing.assert_frame_equal(pd.DataFrame(document["results"]).astype(results.dtypes.to_dict()), results)
    seeds = pd.read_csv(v3["seeds.csv"])
    published = json.loads(PUBLISHED_FILE.read_text())["dias_v3_acc-v3.xlsx"]["DIAS"]
    for dataset in ("clevrtex", "coco", "voc"):
        for metric in METRICS:
            rows = seeds[(seeds["label"] == f"dias_r-{dataset}") & (seeds["metric"] == metric)]
            expected = {int(s): v for s, v in published[dataset][metric]["per_seed"].items()}
            assert dict(zip(rows["seed"], rows["value"])) == pytest.approx(expected, abs=1e-9)
    assert len(document["per_seed"]) == len(seeds) == 9 * 4 * 3


def test_csv_of_our_results(toy):
    paths, values = toy
    results = pd.read_csv(paths["csv"])
    ours = results[results["source"] == "ours"].set_index(["label", "metric"])
    for label, seeds in values.items():
        x = np.array(list(seeds.values())) * 100
        assert ours.loc[(label, "mbo"), "mean"] == pytest.approx(x.mean())
        assert ours.loc[(label, "mbo"), "n_seeds"] == len(x)
    per_seed = pd.read_csv(paths["seeds.csv"])
    alpha = per_seed[(per_seed["label"] == "alpha-syn") & (per_seed["metric"] == "ari")]
    assert list(alpha["value"]) == pytest.approx([50, 62.5, 75]) and alpha["record"].str.endswith(".json").all()


CELL = re.compile(r"^(\\textbf\{|\\underline\{)?(\d+\.\d)(?:\{\\scriptsize\$\\pm\$(\d+\.\d)\})?\}?(\$\^\{\\dagger\}\$)?$")


def latex_rows(text: str) -> tuple[str, list[str], dict[str, list[str]]]:
    """(column spec, header lines, {row name: cells}) of the file's single table."""
    assert text.count(r"\begin{tabular}") == text.count(r"\end{tabular}") == 1
    spec = re.search(r"\\begin\{tabular\}\{([^}]*)\}", text).group(1)
    body = text.split(r"\begin{tabular}")[1].split(r"\end{tabular}")[0]
    head, rows = body.split(r"\midrule", 1)
    lines = [line.strip() for line in rows.split(r"\bottomrule")[0].splitlines()
             if line.strip() and line.strip() != r"\midrule"]
    out = {}
    for line in lines:
        assert line.endswith(r"\\"), line
        cells = [c.strip() for c in line[:-2].split("&")]
        out[cells[0]] = cells[1:]
    return spec, [h.strip() for h in head.splitlines() if h.strip().endswith(r"\\")], out


def test_latex_bold_best_underline_second_per_column_and_a_well_formed_tabular(v3):
    oracle = v3_oracle()
    spec, header, rows = latex_rows(v3["tex"].read_text())
    n_columns = len(spec.replace(" ", ""))
    assert n_columns == 1 + 3 * 4
    spans = [int(k) for k in re.findall(r"\\multicolumn\{(\d+)\}", header[0])]
    assert 1 + sum(spans) == n_columns and header[0].count("&") == len(spans)
    assert re.findall(r"\\multicolumn\{4\}\{c\}\{(\w+)\}", header[0]) == ["ClevrTex", "COCO", "VOC"]
    assert header[1].count("&") == n_columns - 1
    assert list(rows) == ["dias", "dinosaur", "slate", "slotdiffusion", "spot", "smoothsa"]
    table = TABLES.get("v3")
    for j, (dataset, metric) in enumerate((d, m) for d in ("clevrtex", "coco", "voc") for m in METRICS):
        means = {row.method: oracle[(row.label, metric)][0] for row in table.rows
                 if row.dataset == dataset and row.selection == "last"}
        levels = sorted({round(v, 9) for v in means.values()}, reverse=True)
        for method, cells in rows.items():
            assert len(cells) == n_columns - 1
            match = CELL.match(cells[j])
            assert match, cells[j]
            style, shown = match.group(1), float(match.group(2))
            assert abs(shown - means[method]) <= 0.05 + 1e-9
            place = levels.index(round(means[method], 9))
            assert style == {0: r"\textbf{", 1: r"\underline{"}.get(place), (dataset, metric, method)


def test_latex_of_our_results_ranks_trained_rows_only(toy):
    paths, _ = toy
    _, _, rows = latex_rows(paths["tex"].read_text())
    assert list(rows) == ["alpha-syn", "beta-syn", "grid-syn"]
    for j in range(4):
        assert [CELL.match(rows[r][j]).group(1) for r in rows] == [r"\textbf{", r"\underline{", None]


def pre_v3_cells_of_published_json() -> set[tuple[str, str]]:
    """{(method, dataset)} of table v3 whose number comes from a source whose _meta lists that data set (and the
    method, where it lists methods) as pre-v3."""
    data = json.loads(PUBLISHED_FILE.read_text())
    table = TABLES.get("v3")
    out = set()
    for row in table.rows:
        if row.selection != "last":  # published numbers sit beside the run's own row
            continue
        for key in table.published:
            names = [n for n in data[key] if n != "_meta" and n.lower() == row.method.lower()]
            if names and row.dataset in data[key][names[0]]:
                meta = data[key]["_meta"]
                methods = [m.lower() for m in meta.get("pre_v3_methods", [row.method])]
                if row.dataset in meta.get("pre_v3_datasets", []) and row.method.lower() in methods:
                    out.add((row.method, row.dataset))
                break
    return out


def test_paper_layout_groups_data_sets_and_marks_exactly_the_pre_v3_cells(v3):
    expected = {(m, d) for m in ("dinosaur", "slate", "slotdiffusion") for d in ("coco", "voc")}  # the list
    assert pre_v3_cells_of_published_json() == expected
    datasets = ("clevrtex", "coco", "voc")
    columns = [(d, m) for d in datasets for m in METRICS]

    md = v3["md"].read_text().split("## In the paper's layout (published)")[1]
    lines = [line for line in md.splitlines() if line.startswith("|")]
    assert lines[0] == "| method | " + " | ".join(f"{d} {m}" for d in ("ClevrTex", "COCO", "VOC")
                                                  for m in ("ARI", "ARI-fg", "mBO", "mIoU")) + " |"
    marked = set()
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        marked |= {(cells[0], columns[j]) for j, c in enumerate(cells[1:]) if c.endswith("†")}
    assert marked == {(m, (d, metric)) for m, d in expected for metric in METRICS}
    footnote = next(line for line in md.splitlines() if line.startswith("† "))
    assert "vqvfmocl_readme_256" in footnote and "VQ-VFM-OCL" in footnote

    html = v3["html"].read_text().split('<section class="paper-layout">')[1].split("</section>")[0]
    assert re.findall(r'<th colspan="4">(\w+)</th>', html) == ["ClevrTex", "COCO", "VOC"]
    marked = set()
    tbody = html.split("<tbody>")[1].split("</tbody>")[0]
    for name, row in re.findall(r"<tr(?: class=\"reference\")?><th>([^<]+)</th>(.*?)</tr>", tbody):
        cells = re.findall(r"<td>(.*?)</td>", row)
        assert len(cells) == 12
        marked |= {(name, columns[j]) for j, c in enumerate(cells) if c.endswith("<sup>†</sup>")}
    assert marked == {(m, (d, metric)) for m, d in expected for metric in METRICS}

    _, _, rows = latex_rows(v3["tex"].read_text())
    marked = {(name, columns[j]) for name, cells in rows.items() for j, c in enumerate(cells)
              if c.endswith(r"$^{\dagger}$")}
    assert marked == {(m, (d, metric)) for m, d in expected for metric in METRICS}


def test_a_source_mixing_protocols_marks_only_its_listed_methods():
    from harness.report.published import is_pre_v3

    meta = json.loads(PUBLISHED_FILE.read_text())["smoothsa_readme_image_table"]["_meta"]
    assert is_pre_v3(meta, "slate", "coco") and is_pre_v3(meta, "DINOSAUR", "voc")
    assert not is_pre_v3(meta, "dias", "coco") and not is_pre_v3(meta, "slate", "clevrtex")


def test_cli_writes_the_formats_asked_for(tmp_path, capsys):
    out = tmp_path / "reports"
    assert main(["report", "--table", "v3", "--published", "--results", str(tmp_path / "none"), "--out", str(out),
                 "--format", "latex", "--format", "csv,json"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["acc-v3-seeds.csv", "acc-v3.csv", "acc-v3.json", "acc-v3.tex"]
    printed = capsys.readouterr().out
    assert all(f"wrote {out / name}" in printed for name in ("acc-v3.tex", "acc-v3.csv", "acc-v3.json"))


@pytest.mark.parametrize("argv, message", [
    (["--table", "v3", "--format", "pdf"], "unknown report format 'pdf'"),
    (["--table", "v3", "--format", "md,docx,html"], "unknown report format 'docx'"),
    (["--table", "v3", "--format", ","], "no report format given"),
    (["--table", "recogn-v3", "--format", "latex"], "renders xlsx, md, html, not latex"),
])
def test_cli_bad_format_is_one_error_line(tmp_path, capsys, argv, message):
    out = tmp_path / "reports"
    code = main(["report", *argv, "--published", "--results", str(tmp_path / "none"), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_beside_the_published_numbers_every_sheet_reads_numbers(tmp_path):
    """Ours for one row of table v3 beside the published: the comparison and the published per-seed sheets too."""
    table = TABLES.get("v3")
    card = {"dataset": "coco", "split": "val", "records": 4, "file_sha256": "ab" * 32, "keys_sha256": "cd" * 32,
            "path": "/somewhere/coco/val.lmdb"}
    ours = {42: 0.25, 43: 0.375, 44: 0.5}
    for seed, x in ours.items():
        write_cell(tmp_path / "results", table, "dias_r-coco", seed, uniform(x), card=card)
    paths = render_table(table, tmp_path / "results", tmp_path / "out", published=True, formats=["xlsx"],
                         n_boot=100).paths
    sheets = pd.read_excel(paths["xlsx"], sheet_name=None)
    oracle = v3_oracle()
    x = np.array(list(ours.values())) * 100
    comparison = sheets["published_vs_ours"].set_index("metric")
    for metric in METRICS:
        mean, std, _ = oracle[("dias_r-coco", metric)]
        assert comparison.loc[metric, ["ours_mean", "ours_std", "published_mean", "published_std", "difference"]] \
            .tolist() == pytest.approx([x.mean(), x.std(ddof=1), mean, std, x.mean() - mean], abs=1e-9)
    per_seed = sheets["published_per_seed"].set_index("row")
    published = json.loads(PUBLISHED_FILE.read_text())["dias_v3_acc-v3.xlsx"]["DIAS"]["voc"]["ari_fg"]["per_seed"]
    assert [per_seed.at[f"dias_r-voc-{s}", "arifg"] for s in published] == pytest.approx(list(published.values()))
    assert set(per_seed["unit"]) == set(comparison["unit"]) == {"%"}
    top, _ = eval_multi_groups(paths["xlsx"])["dias_r-coco"]
    ws = openpyxl.load_workbook(paths["xlsx"], data_only=True)["eval_multi"]
    assert [ws[f"H{top}"].value, ws[f"H{top + 1}"].value] == pytest.approx([x.mean(), x.std(ddof=1)], abs=1e-9)


def test_reproduce_checks_the_format_before_running_anything(tmp_path, capsys):
    code = main(["reproduce", "--table", "mini", "--format", "xlsx,pdf", "--results", str(tmp_path / "results"),
                 "--out", str(tmp_path / "reports")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --format: unknown report format 'pdf'") and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []
