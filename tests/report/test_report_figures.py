"""Mask overlays checked pixel by pixel (speckle included); WebP panels; the plots' panels and empty cases."""

import base64

import cv2
import numpy as np
import pandas as pd
import pytest

from harness.report.figures import (
    ALPHA,
    PALETTE,
    boundaries,
    compute_plot,
    curve_plot,
    overlay,
    png_data_uri,
    resize_index,
    webp_data_uri,
)


def decode(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/png;base64,")
    bgr = cv2.imdecode(np.frombuffer(base64.b64decode(uri.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    return bgr[..., ::-1]


def test_overlay_colours_boundaries_and_unlabelled_pixels():
    image = np.full((12, 12, 3), 100, np.uint8)
    index = np.zeros((12, 12), np.int16)
    index[:, 6:] = 1
    index[9:] = -1
    out = overlay(image, index)

    def blend(k):
        return np.round((1 - ALPHA) * 100 + ALPHA * PALETTE[k].astype(float)).astype(np.uint8)

    assert out[2, 2].tolist() == blend(0).tolist()  # interior of segment 0
    assert out[2, 9].tolist() == blend(1).tolist()  # interior of segment 1
    assert out[2, 5].tolist() == [255, 255, 255]  # 0 | 1 boundary
    assert out[8, 2].tolist() == [255, 255, 255]  # labelled above unlabelled
    assert out[11, 2].tolist() == [40, 40, 40]  # unlabelled: grey at 40 % brightness


def test_speckle_keeps_its_colours_but_draws_no_boundaries():
    """Colour k-means on texture labels isolated pixels: a boundary around each would turn the panel white."""
    rng = np.random.default_rng(0)
    index = np.zeros((32, 32), np.int16)
    index[:, 16:] = 1
    speckle = rng.random((32, 32)) < 0.08
    index[speckle] = 2
    edge = boundaries(index)
    assert edge[:, :14].mean() < 0.02 and edge[:, 17:].mean() < 0.02  # no ring around the speckle
    assert edge[:, 15].mean() > 0.8  # the real boundary between the halves stays
    out = overlay(np.full((32, 32, 3), 100, np.uint8), index)
    speckle_colour = np.round((1 - ALPHA) * 100 + ALPHA * PALETTE[2].astype(float)).astype(np.uint8)
    shown = out[speckle & ~edge]
    assert len(shown) and (shown == speckle_colour).all()


def test_resize_index_is_nearest_neighbour():
    index = np.array([[0, 1], [2, 3]], np.int16)
    assert resize_index(index, 4).tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]


def test_png_round_trip_keeps_rgb():
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[..., 0] = 200  # red
    assert decode(png_data_uri(rgb)).tolist() == rgb.tolist()


def test_webp_round_trip_is_close():
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[:, :8, 0] = 200
    uri = webp_data_uri(rgb)
    assert uri.startswith("data:image/webp;base64,")
    decoded = cv2.imdecode(np.frombuffer(base64.b64decode(uri.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    assert np.abs(decoded.astype(int) - rgb).mean() < 6


def test_compute_plot_needs_a_positive_compute_value_and_is_legible():
    points = pd.DataFrame({"dataset": ["d", "d"], "label": ["a", "b"], "metric": ["ari_fg", "ari_fg"],
                           "x": [0.0, None], "y": [1.0, 2.0], "y_err": [0.1, 0.2]})
    references = pd.DataFrame({"dataset": ["d"], "label": ["grid"], "metric": ["ari_fg"], "y": [1.5]})
    metrics = {"ari_fg": "ARI-fg", "mbo": "mBO"}
    assert compute_plot(points, references, x_title="s", metrics=metrics) is None
    uri = compute_plot(points.assign(x=[10.0, 100.0]), references, x_title="s", metrics=metrics)
    assert decode(uri).shape[1] >= 600  # one panel (only ARI-fg has points) and the legend


def test_curve_plot_one_panel_per_recorded_quantity():
    curves = pd.DataFrame([{"label": label, "seed": seed, "step": step, "key": key, "value": value}
                           for label in ("a", "b") for seed in (0, 1) for step in (10, 20)
                           for key, value in (("ari_fg", 30.0 + step + seed), ("train_loss", 1.0 / step))])
    references = pd.DataFrame({"label": ["grid"], "metric": ["ari_fg"], "y": [40.0]})
    titles = {"ari_fg": "ARI-fg", "mbo": "mBO", "train_loss": "loss"}
    two_panels = decode(curve_plot(curves, references, titles=titles, dataset="d"))
    one_panel = decode(curve_plot(curves[curves["key"] == "ari_fg"], references, titles=titles, dataset="d"))
    assert two_panels.shape[1] > one_panel.shape[1] + 300
    assert two_panels.shape[0] == one_panel.shape[0]  # one row
    assert curve_plot(curves.iloc[:0], references, titles=titles, dataset="d") is None


def test_many_panels_wrap_into_rows_of_two_that_fit_the_page_unscaled():
    """A long run's curves have five panels; side by side the 1280-px page would shrink their 10-pt text to 5 pt."""
    keys = ["ari_fg", "mbo", "heldout_ari_fg", "heldout_mbo", "train_loss"]
    curves = pd.DataFrame([{"label": "a", "seed": 0, "step": step, "key": key, "value": 1.0 + step}
                           for step in (10, 20) for key in keys])
    references = pd.DataFrame({"label": ["grid"], "metric": ["ari_fg"], "y": [15.0]})
    titles = {key: key for key in keys}
    one = decode(curve_plot(curves[curves["key"] == "ari_fg"], references, titles=titles, dataset="d"))
    five = decode(curve_plot(curves, references, titles=titles, dataset="d"))
    assert five.shape[1] <= 1250  # within the page's 1280 px less its padding
    assert 2 * one.shape[0] < five.shape[0] <= 3 * one.shape[0]  # three rows
    assert five.shape[1] > one.shape[1] + 300  # two columns


@pytest.mark.parametrize("k", [0, 25])
def test_palette_wraps_for_many_segments(k):
    index = np.full((2, 2), k, np.int16)
    assert overlay(np.zeros((2, 2, 3), np.uint8), index)[1, 1].tolist() == \
        np.round(ALPHA * PALETTE[k % len(PALETTE)].astype(float)).astype(int).tolist()
