"""`python -m harness methods`: the table of registered methods with full-size parameter counts."""

import argparse
import math
import re

import pytest

from harness.cli import methods as methods_verb
from harness.errors import HarnessError
from harness.nn.checkpoint import parse_listing
from harness.recipes import random_vit as synthetic
from harness.registry import METHODS
from harness.tools import method_table


def listing_total(path):
    return int(re.search(r"total elements (\d+)", path.read_text()).group(1))


@pytest.fixture(scope="module")
def rows():
    return {r["name"]: r for r in method_table.method_rows("coco")}


def test_parameter_counts_equal_the_authors_checkpoints(rows, reference_dir):
    for name, listing in (("dinosaur", "keys_dinosaur_r-coco.txt"), ("slate", "keys_slate_r_vqvae-coco.txt"),
                          ("slotdiffusion", "keys_slotdiffusion_r_vqvae-coco.txt"),
                          ("vqvae-c256", "keys_vqvae-coco-c256.txt"), ("vqvae-c4", "keys_vqvae-coco-c4.txt")):
        assert rows[name]["params"] == listing_total(reference_dir / listing), name
    # Trainable = everything but the frozen DINOv2 (and the frozen tokenizer of SLATE / SlotDiffusion).
    for name, listing in (("dinosaur", "keys_dinosaur_r-coco.txt"), ("slate", "keys_slate_r_vqvae-coco.txt"),
                          ("slotdiffusion", "keys_slotdiffusion_r_vqvae-coco.txt")):
        keys = parse_listing(reference_dir / listing)
        free = sum(math.prod(s) for k, s, _ in keys if not k.startswith(("m.encode_backbone.", "m.mediat.")))
        assert rows[name]["trainable"] == free, name


def test_rows_describe_kinds_masks_stages(rows):
    assert set(rows) == set(METHODS.names())
    assert {n for n, r in rows.items() if r["kind"] == "reference"} == {"grid", "single-segment", "colour-kmeans",
                                                                          "dinov2-kmeans"}
    assert (rows["slate"]["stage"], rows["slotdiffusion"]["stage"]) == ("vqvae-c256", "vqvae-c4")
    assert rows["dinosaur"]["mask"] == "decoder" and rows["slate"]["mask"] == "aggregator"
    assert rows["dinosaur"]["slots"] == f"11/7/6/{synthetic.SLOTS}/11" and rows["sa"]["steps"] == 50_000
    assert rows["grid"]["params"] == 0


def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(HarnessError, match="known: clevrtex, coco"):
        method_table.method_rows("imagenet")


def test_cli_prints_the_table(capsys):
    parser = argparse.ArgumentParser()
    methods_verb.register(parser.add_subparsers())
    args = parser.parse_args(["methods", "--dataset", "voc"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == list(method_table.COLUMNS)
    assert re.search(rf"^slotdiffusion\s+learned\s+clevrtex,coco,voc,synthetic,textured\s+11/7/6/{synthetic.SLOTS}/11"
                     r"\s+50,000\s+32\s+"
                     r"159,529,096", out, re.M)  # COCO's 159,529,608 less one slot's mean and logstd
