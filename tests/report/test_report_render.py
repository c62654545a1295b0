"""Markdown and HTML contents (parsed, not eyeballed), published-vs-ours differences, atomic outputs."""

import base64
import re
from html.parser import HTMLParser

import cv2
import numpy as np
import openpyxl
import pytest
from report_records import CARDS, toy_table, uniform, write_cell
from scipy import stats

from harness.registry import METHODS
from harness.report import render_table
from harness.report.content import Options, ReportError, build
from harness.report.frame import MixedCellsError
from harness.report.published import PUBLISHED_FILE
from harness.tables import TABLES, Row

ALPHA = {42: [0.2, 0.4, 0.9], 43: [0.5, 0.5, 0.8], 44: [0.7, 0.7, 0.7]}  # per-image ARI, 3 valid images
BETA = {42: [0.1, 0.3, 0.5], 43: [0.4, 0.4, 0.4], 44: [0.2, 0.3, 0.7]}


def values(per_image: list[float], level: float) -> dict:
    return {"ari": per_image + [0.0], "ari_fg": [level, level, 0.0, 0.0], "mbo": [level] * 4, "miou": [level] * 4}


def toy_results(root):
    table = toy_table()
    for seed in (42, 43, 44):
        write_cell(root, table, "alpha-syn", seed, values(ALPHA[seed], 0.6), gallery=seed == 42,
                   cost={"train_seconds": 100.0 + seed, "parameters": 1000, "trainable_parameters": 200,
                         "eval_seconds": 2.0})
        write_cell(root, table, "beta-syn", seed, values(BETA[seed], 0.3), gallery=seed == 43,
                   cost={"train_seconds": 400.0, "stage_seconds": 50.0, "parameters": 5000,
                         "trainable_parameters": 800, "eval_seconds": 3.0})
        write_cell(root, table, "grid-syn", seed, uniform(0.1), steps=0)
    return table


class Page(HTMLParser):
    """Collects tables (class, rows of cell texts), images (alt, src) and all text of an HTML page."""

    def __init__(self, text: str):
        super().__init__()
        self.tables, self.images, self.text, self._cell = [], [], [], None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.tables.append({"class": attrs.get("class"), "rows": []})
        elif tag == "tr":
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append((attrs.get("alt"), attrs.get("src")))

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1]["rows"][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def table(self, css: str) -> dict:
        found = [t for t in self.tables if t["class"] == css]
        assert len(found) == 1, css
        return {row[0]: row[1:] for row in found[0]["rows"][1:]}


def test_html_and_markdown_contents(tmp_path):
    table = toy_results(tmp_path / "results")
    frame, paths = render_table(table, tmp_path / "results", tmp_path / "reports", gallery_size=32, n_boot=500)
    assert set(paths) == {"xlsx", "md", "html"} and all(p.is_file() for p in paths.values())
    assert paths["html"].name == "acc-toy.html"
    assert set(frame["label"]) == {"alpha-syn", "beta-syn", "grid-syn"}

    page = Page(paths["html"].read_text())
    # ARI seed means: alpha 0.5/0.6/0.7 → 60.0±10.0; beta 0.3/0.4/0.4 → 36.7±5.8; other metrics constant. Neither
    # is the registry's subject, so the Δ column is against the best row (alpha), ARI-fg 30 − 60 with a zero CI.
    assert page.table("results") == {"alpha-syn": ["60.0±10.0", "60.0±0.0", "60.0±0.0", "60.0±0.0", "best baseline"],
                                     "beta-syn": ["36.7±5.8", "30.0±0.0", "30.0±0.0", "30.0±0.0",
                                                  "-30.0 [-30.0, -30.0]"]}
    html = paths["html"].read_text()
    assert html.count('<td class="best">') == 4 and html.count('<td class="second">') == 4  # alpha best everywhere
    assert page.table("reference") == {"grid-syn": ["10.0±0.0"] * 4}
    text = " ".join(page.text)
    assert METHODS.get("grid").description in text
    assert "Not methods under test" in text

    # one gallery per seed with a gallery record, images × (image, ground truth, each row); each panel a CSS class
    galleries = [t for t in page.tables if t["class"] == "gallery"]
    assert len(galleries) == 2  # seeds 42 (alpha's gallery) and 43 (beta's)
    assert galleries[0]["rows"][0][:3] == ["image", "ground truth", "alpha-syndecoder"]
    assert [row[2] for row in galleries[0]["rows"][1:]] == ["60.0", "60.0"]  # per-panel ARI-fg of the 2 images
    panels = re.findall(r'<div class="panel (p[0-9a-f]+)[ "]', html)
    styles = dict(re.findall(r"\.(p[0-9a-f]+) \{[^}]*url\((data:image/webp;base64,[^)]+)\)", html))
    assert set(panels) == set(styles)  # every panel's picture is defined, once
    picture = cv2.imdecode(np.frombuffer(base64.b64decode(next(iter(styles.values())).split(",", 1)[1]), np.uint8),
                           cv2.IMREAD_COLOR)
    assert picture.shape == (16, 16, 3)  # the records' 16-px images, never upscaled to gallery_size
    plots = [alt for alt, _ in page.images]
    assert plots == ["Accuracy against trainable parameters", "Accuracy against training seconds, stages included"]

    cost = page.table("cost")
    assert [t for t in page.tables if t["class"] == "cost"][0]["rows"][0][:4] == \
           ["row", "train s", "stage s", "total train s"]
    assert cost["alpha-syn"][:3] == ["143", "—", "143"]  # mean of 142, 143, 144; no stage
    assert cost["beta-syn"][:3] == ["400", "50", "450"]  # its stage's 50 s counted in the total

    markdown = paths["md"].read_text()
    assert markdown.index("**Verdict**") < markdown.index("| row | ARI |")
    assert "| alpha-syn | **60.0±10.0** | **60.0±0.0** | **60.0±0.0** | **60.0±0.0** | best baseline |" in markdown
    assert "| grid-syn | 10.0±0.0 | 10.0±0.0 | 10.0±0.0 | 10.0±0.0 |" in markdown
    assert "## Reference rows" in markdown and METHODS.get("grid").description in markdown
    assert "## Paired tests" in markdown and "## Cost (mean over seeds)" in markdown
    assert "- protocol: dias-v3 — the DIAS authors' v3 evaluator" in markdown
    assert "- budget: 100 steps; batch size 8" in markdown
    assert f"fingerprint {frame['data_card'].iloc[0]}" in markdown
    assert "data:image" not in markdown


def test_paired_tests_in_the_report_match_scipy_on_the_per_image_values(tmp_path):
    table = toy_results(tmp_path)
    report = build(table, tmp_path, False, PUBLISHED_FILE, Options(n_boot=200))
    tests = report.tests.set_index(["metric", "level"])
    # per image: each row averaged over seeds 42–44 on the 3 valid images
    a = np.mean([ALPHA[s] for s in (42, 43, 44)], axis=0)
    b = np.mean([BETA[s] for s in (42, 43, 44)], axis=0)
    row = tests.loc[("ari", "image")]
    assert (row["a"], row["b"], row["n"]) == ("alpha-syn", "beta-syn", 3)
    assert row["t"] == pytest.approx(stats.ttest_rel(a, b).statistic)
    assert row["p_w"] == pytest.approx(stats.wilcoxon(a, b).pvalue)
    assert row["mean_diff"] == pytest.approx(0.7 / 3)  # per-image differences 0.7/3, 0.6/3, 0.8/3
    seed_row = tests.loc[("ari", "seed")]
    assert seed_row["n"] == 3 and seed_row["mean_diff"] == pytest.approx(0.7 / 3)
    assert seed_row["p_t"] == pytest.approx(stats.ttest_rel([0.5, 0.6, 0.7], [0.3, 0.4, 0.4]).pvalue)
    assert {r.b for r in report.tests.itertuples()} == {"beta-syn"}  # the reference row is not a contender


def test_compare_names_rows_or_methods(tmp_path):
    table = toy_results(tmp_path)
    report = build(table, tmp_path, False, PUBLISHED_FILE, Options(compare=[("beta", "grid-syn")], n_boot=10))
    assert set(zip(report.tests["a"], report.tests["b"])) == {("beta-syn", "grid-syn")}
    with pytest.raises(ReportError, match="no row or method 'gamma'"):
        build(table, tmp_path, False, PUBLISHED_FILE, Options(compare=[("alpha", "gamma")]))


def test_published_next_to_ours_with_the_difference(tmp_path):
    table = TABLES.get("v3")
    CARDS.setdefault("clevrtex", {**CARDS["synthetic"], "dataset": "clevrtex"})
    for seed, level in ((42, 0.81), (43, 0.80), (44, 0.82)):
        write_cell(tmp_path / "results", table, "dias_r-clevrtex", seed, uniform(level), steps=50_000, batch_size=32)
    frame, paths = render_table("v3", tmp_path / "results", tmp_path / "reports", published=True)
    assert set(frame["source"]) == {"ours", "published"}
    page = Page(paths["html"].read_text())
    rows = page.table("results")
    # ours ARI 81.0±1.0; published 80.922846±0.290199 → Δ = +0.077 → "+0.1"
    assert rows["dias_r-clevrtex"][:3] == ["81.0±1.0", "80.9±0.3", "+0.1"]
    assert rows["dias_r-coco"][:3] == ["—", "25.6±0.1", "—"]
    assert "dias_r-coco-42" in " ".join(page.text)  # listed among the cells without a result
    book = openpyxl.load_workbook(paths["xlsx"])
    assert book.sheetnames[:4] == ["eval_multi", "summary", "published_vs_ours", "published_per_seed"]
    assert [book["eval_multi"][f"A{r}"].value for r in (2, 3, 4, 5)] == \
           ["dias_r-clevrtex-42", "dias_r-clevrtex-43", "dias_r-clevrtex-44", None]
    comparison = book["published_vs_ours"]
    header = [c.value for c in comparison[1]]
    first = dict(zip(header, [c.value for c in comparison[2]]))
    assert (first["label"], first["metric"]) == ("dias_r-clevrtex", "ari")
    assert first["difference"] == pytest.approx(81.0 - 80.922846, abs=1e-5)  # ours: float32 dataset means
    assert "| dias_r-clevrtex | 81.0±1.0 | 80.9±0.3 | +0.1 |" in paths["md"].read_text()


def test_failed_render_leaves_previous_reports_intact(tmp_path):
    table = toy_results(tmp_path / "results")
    _, paths = render_table(table, tmp_path / "results", tmp_path / "reports", gallery_size=16, n_boot=50)
    before = {kind: p.read_bytes() for kind, p in paths.items()}
    write_cell(tmp_path / "results", table, "alpha-syn", 45, values(ALPHA[42], 0.9))  # would change the numbers
    gallery = next((tmp_path / "results").rglob("*.gallery.npz"))
    gallery.write_bytes(b"not a zip")
    with pytest.raises(ReportError, match="unreadable mask gallery"):
        render_table(table, tmp_path / "results", tmp_path / "reports", gallery_size=16, n_boot=50)
    assert {kind: p.read_bytes() for kind, p in paths.items()} == before
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["acc-toy.html", "acc-toy.md", "acc-toy.xlsx"]


def test_no_results_without_published_is_an_error(tmp_path):
    with pytest.raises(ReportError, match="no result records under .*reproduce --table toy"):
        render_table(toy_table(), tmp_path / "empty", tmp_path / "reports")
    assert not (tmp_path / "reports").exists()


def test_untrained_rows_are_reference_rows(tmp_path):
    table = toy_table(rows=(Row("alpha", "synthetic", "alpha-syn"),
                            Row("alpha", "synthetic", "alpha-syn-untrained", variant="untrained")))
    write_cell(tmp_path / "r", table, "alpha-syn", 42, uniform(0.5))
    write_cell(tmp_path / "r", table, "alpha-syn-untrained", 42, uniform(0.2), steps=0)
    _, paths = render_table(table, tmp_path / "r", tmp_path / "out", n_boot=10)
    page = Page(paths["html"].read_text())
    assert list(page.table("reference")) == ["alpha-syn-untrained"]
    assert "what training must beat" in " ".join(page.text)


def test_the_report_says_which_references_each_trained_row_beats(tmp_path):
    table = toy_table(rows=(Row("alpha", "synthetic", "alpha-syn"),
                            Row("alpha", "synthetic", "alpha-syn-untrained", variant="untrained"),
                            Row("grid", "synthetic", "grid-syn")))
    levels = {"alpha-syn": {"ari_fg": 0.5, "mbo": 0.4}, "alpha-syn-untrained": {"ari_fg": 0.2, "mbo": 0.1},
              "grid-syn": {"ari_fg": 0.6, "mbo": 0.3}}
    for label, level in levels.items():
        write_cell(tmp_path / "r", table, label, 42, {"ari": [0.5] * 4, "ari_fg": [level["ari_fg"]] * 4,
                                                      "mbo": [level["mbo"]] * 4, "miou": [0.5] * 4},
                   steps=100 if label == "alpha-syn" else 0)
    _, paths = render_table(table, tmp_path / "r", tmp_path / "out", n_boot=10)
    beats = Page(paths["html"].read_text()).table("beats")
    assert beats == {"alpha-syn": ["✓", "✗1"]}  # 50/40 beats 20/10; 50 ≤ 60 on ARI-fg loses to the grid
    html = paths["html"].read_text()
    assert 'title="no: ARI-fg 50.0 ≤ 60.0">✗<sup>1</sup>' in html  # the numbers on hover
    assert "<li>alpha-syn vs grid-syn: no: ARI-fg 50.0 ≤ 60.0</li>" in html  # and in a footnote
    markdown = paths["md"].read_text()
    assert "| row | its initialisation | grid-syn |" in markdown
    assert "| alpha-syn | ✓ | ✗[1] |" in markdown
    assert "1. alpha-syn vs grid-syn: no: ARI-fg 50.0 ≤ 60.0" in markdown


def test_every_registered_reference_method_has_its_sentence():
    from harness.registry import METHODS

    reference = [n for n in METHODS.names() if METHODS.get(n).kind == "reference"]
    assert all(METHODS.get(m).description.endswith(".") for m in reference), "a reference row says what it is"


def test_allowed_mixing_is_shown_apart_and_listed(tmp_path):
    table = toy_table(description="mixed <cells> & more")
    for seed in (42, 43):
        write_cell(tmp_path / "r", table, "alpha-syn", seed, uniform(0.5))
        write_cell(tmp_path / "r", table, "alpha-syn", seed, uniform(0.4), protocol="exact")
    with pytest.raises(MixedCellsError, match="refuses to aggregate mixed cells"):
        render_table(table, tmp_path / "r", tmp_path / "out")
    _, paths = render_table(table, tmp_path / "r", tmp_path / "out", allow_mixed=True, n_boot=10)
    html = paths["html"].read_text()
    assert "mixed &lt;cells&gt; &amp; more" in html and "<cells>" not in html  # escaped
    page = Page(html)
    assert page.table("results") == {"alpha-syn": ["50.0±0.0"] * 4}  # the table's protocol only
    assert "Other protocol: exact" in " ".join(page.text)
    assert page.table("other") == {"alpha-syn": ["40.0±0.0"] * 4}
    assert "protocol=exact: alpha-syn-42, alpha-syn-43" in " ".join(page.text)
    book = openpyxl.load_workbook(paths["xlsx"])
    assert {"other_protocols", "mixed_cells"} <= set(book.sheetnames)
    assert [book["eval_multi"][f"B{r}"].value for r in (2, 3)] == [0.5, 0.5]


def test_report_cli_errors_are_one_line(tmp_path, capsys):
    from harness.cli import main

    assert main(["report", "--table", "v3", "--results", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: table 'v3': no result records under") and err.count("\n") == 1
