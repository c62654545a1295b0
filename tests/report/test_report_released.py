"""Which checkpoints the authors released, and whether each is the last epoch: the facts of their eval.py listings
(docs/reference.md#checkpoints) as the v3 report states them."""

import re
from pathlib import Path

from harness.report import render_table
from harness.report.published import load_published, released_checkpoints
from harness.tables import TABLES

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference.md"
# the recipe's train epochs (docs/reference.md#training-loop-and-seeding)
EPOCHS = {"clevrtex": 32, "coco": 28, "voc": 544}


def test_released_epochs_match_the_documented_listings_and_the_last_epoch():
    published = load_published()
    rows = released_checkpoints({key: published[key]["_meta"] for key in TABLES.get("v3").published})
    found = {(r["method"], r["dataset"]): {s["seed"]: s["epoch"] for s in r["seeds"]} for r in rows}
    text = REFERENCE.read_text()
    for method, heading in (("DIAS", "`main_eval_multi` in `eval.py`"), ("SmoothSA", "be3ffd2's `eval.py` pairs"),
                            ("SPOT", "`eval.py` pairs\n`config-spot")):
        listing = text[text.index(heading):][:400]
        for name, dataset in (("ClevrTex", "clevrtex"), ("COCO", "coco"), ("VOC", "voc")):
            part = re.search(name + r" ((?:4\d-\d{4}[^;,]*,?\s*){3})", listing).group(1)
            assert found[(method, dataset)] == {s: int(e) for s, e in re.findall(r"(4\d)-(\d{4})", part)}, (method, name)
    assert all(r["last_epoch"] == EPOCHS[r["dataset"]] - 1 for r in rows)
    not_last = {(r["method"], r["dataset"]): r["not_last"] for r in rows}
    assert not_last[("DIAS", "coco")] == 2 and not_last[("SPOT", "coco")] == 2  # seed 42 / 44 ends at epoch 27
    assert sum(not_last.values()) == 9 * 3 - 2


def test_the_v3_report_says_per_seed_whether_the_release_is_the_last_epoch(tmp_path):
    _, paths = render_table(TABLES.get("v3"), None, tmp_path, published=True)
    markdown = paths["md"].read_text()
    assert ("| DIAS | coco | 27 | 42: epoch 27 (last); 43: epoch 18 (not last); 44: epoch 16 (not last) | 2 of 3 |"
            in markdown)
    assert "| SmoothSA | voc | 543 | 42: epoch 489 (not last); 43: epoch 461 (not last); 44: epoch 489 (not last) |" \
           in markdown
