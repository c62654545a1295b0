"""Aggregation: dataset means per protocol, seed mean ± sample std, Excel TEXT rounding; the authors' own
per-seed file (tests/reference/acc-v3.xlsx) must come out as their readme strings."""

import math
import statistics

import numpy as np
import openpyxl
import pytest
import torch

from harness.metrics import segmentation_metrics
from harness.metrics.aggregate import (
    MissingValueError,
    dataset_mean,
    dataset_means,
    excel_text,
    format_mean_std,
    seed_mean_std,
)

# DIAS v3 readme (= docs/reference.md#published-numbers), the strings their xlsx `TEXT(mean,"0.0")&"±"&TEXT(std,"0.0")`
# shows.
README_V3 = {
    "dias_r-clevrtex": ["80.9±0.3", "79.1±0.3", "63.3±0.1", "61.9±0.0"],
    "dias_r-coco": ["25.6±0.1", "41.2±0.3", "31.7±0.1", "30.2±0.1"],
    "dias_r-voc": ["30.9±0.5", "33.5±0.7", "43.4±0.5", "42.4±0.5"],
}


@pytest.mark.parametrize("x, text", [
    (0.05, "0.1"), (0.15, "0.2"), (0.25, "0.3"), (0.35, "0.4"), (0.45, "0.5"), (2.675, "2.7"),
    (-0.05, "-0.1"), (-0.25, "-0.3"), (0.04, "0.0"), (80.94999999999999, "81.0"), (80.9449, "80.9"), (0.0, "0.0"),
    (12.0, "12.0"),
])
def test_excel_text_rounds_half_away_from_zero(x, text):
    assert excel_text(x) == text


def test_excel_text_differs_from_python_round_where_excel_does():
    assert round(0.15, 1) == 0.1 and excel_text(0.15) == "0.2"  # binary 0.1499…, Excel sees 0.15
    assert round(0.25, 1) == 0.2 and excel_text(0.25) == "0.3"  # banker's rounding vs half away from zero
    assert excel_text(2.675, 2) == "2.68" and round(2.675, 2) == 2.67
    with pytest.raises(ValueError):
        excel_text(math.nan)


def test_seed_mean_and_sample_std_in_percent():
    mean, std = seed_mean_std([0.80945343, 0.81201142, 0.80622053])
    assert mean == pytest.approx(statistics.mean([80.945343, 81.201142, 80.622053]), abs=1e-9)
    assert std == pytest.approx(statistics.stdev([80.945343, 81.201142, 80.622053]), abs=1e-9)
    assert std == pytest.approx(np.std([0.80945343, 0.81201142, 0.80622053], ddof=1) * 100, rel=1e-12)
    assert math.isnan(seed_mean_std([0.5])[1])
    assert format_mean_std(mean, std) == "80.9±0.3"


def test_the_authors_xlsx_gives_their_readme_strings(reference_dir):
    sheet = openpyxl.load_workbook(reference_dir / "acc-v3.xlsx")["eval_multi"]
    groups: dict[str, list] = {}
    for row in sheet.iter_rows(min_row=2, max_col=5, values_only=True):
        if row[0]:
            groups.setdefault(row[0].rsplit("-", 1)[0], []).append(row[1:5])
    assert set(groups) == set(README_V3)
    for config, seeds in groups.items():
        texts = [format_mean_std(*seed_mean_std([s[k] for s in seeds])) for k in range(4)]
        assert texts == README_V3[config]


def test_dataset_mean_is_numpys_float32_mean_over_valid_images():
    rng = np.random.default_rng(0)
    values = rng.random(1001).astype(np.float32)
    valid = rng.random(1001) < 0.9
    got = dataset_mean(torch.from_numpy(values), torch.from_numpy(valid))
    assert got == float(np.mean(values[valid]))  # the authors' AverageLog: np.mean of float32
    assert got != math.fsum(values[valid].astype(np.float64)) / valid.sum()  # float32 summation shows
    assert dataset_mean(values.tolist(), valid.tolist(), "float64") == pytest.approx(
        math.fsum(values[valid].astype(np.float64)) / valid.sum(), rel=1e-15)
    assert dataset_mean([0.5, None], [True, False]) == 0.5  # ledgers store invalid images as None
    assert dataset_mean([1.0], [False]) is None
    with pytest.raises(ValueError):
        dataset_mean([1.0], None, "float16")


def test_dataset_means_follow_the_protocol():
    # image 0: background only (no foreground); image 1: background + one object, predicted perfectly.
    gt = torch.zeros(2, 4, 2, dtype=torch.bool)
    gt[0, :, 0] = True
    gt[1, :2, 0], gt[1, 2:, 1] = True, True
    pred = torch.zeros(2, 4, 2, dtype=torch.bool)
    pred[0, :2, 0], pred[0, 2:, 1] = True, True  # image 0: background split in two
    pred[1] = gt[1]
    for protocol, expected in (("dias-v3", {"ari": 0.5, "ari_fg": 1.0, "mbo": 0.75, "miou": 0.75}),
                               ("dinosaur", {"ari": 0.5, "ari_fg": 1.0, "mbo": 1.0, "miou": 1.0})):
        per_image = segmentation_metrics(pred, gt, protocol)
        means = dataset_means(per_image, protocol)
        assert means == pytest.approx(expected)
    # the difference: dinosaur counts image 0 (no foreground) as FG-ARI 1.0, dias-v3 skips it
    per_image = segmentation_metrics(pred, gt, "dias-v3")
    per_image["ari_fg"] = torch.tensor([1.0, 0.0])
    assert dataset_means(per_image, "dias-v3")["ari_fg"] == 0.0
    assert dataset_means(per_image, "dinosaur")["ari_fg"] == 0.5


def test_an_image_the_protocol_counts_must_have_a_value():
    # a ledger that stored FG-ARI as None on images without foreground (dias-v3 flags) cannot give the
    # dinosaur mean, which counts those images as 1.0
    per_image = {"ari": [0.5, 0.7], "ari_fg": [None, 0.9], "mbo": [0.4, 0.6], "miou": [0.3, 0.5],
                 "valid": [True, True], "valid_fg": [False, True]}
    assert dataset_means(per_image, "dias-v3")["ari_fg"] == pytest.approx(0.9)
    with pytest.raises(MissingValueError, match="ari_fg under protocol 'dinosaur' \\(images: all\\): 1 of the 2"):
        dataset_means(per_image, "dinosaur")
