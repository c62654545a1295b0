"""Mask overlays checked pixel by pixel; gallery panel layout; the compute plot's empty case."""

import base64

import cv2
import numpy as np
import pandas as pd
import pytest

from harness.report.figures import ALPHA, PALETTE, compute_plot, gallery_panels, overlay, png_data_uri, resize_index


def decode(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/png;base64,")
    bgr = cv2.imdecode(np.frombuffer(base64.b64decode(uri.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    return bgr[..., ::-1]


def test_overlay_colours_boundaries_and_unlabelled_pixels():
    image = np.full((4, 4, 3), 100, np.uint8)
    index = np.array([[0, 0, 1, 1]] * 3 + [[-1, -1, -1, -1]], np.int16)
    out = overlay(image, index)

    def blend(k):
        return np.round((1 - ALPHA) * 100 + ALPHA * PALETTE[k].astype(float)).astype(np.uint8)

    assert out[0, 0].tolist() == blend(0).tolist()  # interior of segment 0
    assert out[1, 3].tolist() == blend(1).tolist()  # interior of segment 1
    assert out[0, 1].tolist() == [255, 255, 255]  # 0 | 1 boundary
    assert out[2, 0].tolist() == [255, 255, 255]  # labelled above unlabelled
    assert out[3, 2].tolist() == [40, 40, 40]  # unlabelled: grey at 40 % brightness


def test_resize_index_is_nearest_neighbour():
    index = np.array([[0, 1], [2, 3]], np.int16)
    assert resize_index(index, 4).tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]


def test_png_round_trip_keeps_rgb():
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[..., 0] = 200  # red
    assert decode(png_data_uri(rgb)).tolist() == rgb.tolist()


def test_gallery_panels_put_the_segmentation_first():
    k, h = 3, 8
    gallery = {"image": np.zeros((k, h, h, 3), np.uint8), "gt": np.zeros((k, h, h), np.int16),
               "keys": np.array(["a", "b", "c"]),
               "masks": {"aggregator": np.zeros((k, h, h), np.int16), "decoder": np.ones((k, h, h), np.int16)}}
    panels = gallery_panels(gallery, segmentation="decoder", images=2, size=16)
    assert panels["columns"] == ["image", "ground truth", "decoder (segmentation)", "aggregator"]
    assert [r["key"] for r in panels["rows"]] == ["a", "b"]
    decoder = decode(panels["rows"][0]["panels"][2])
    assert decoder.shape == (16, 16, 3)
    assert decoder[5, 5].tolist() == np.round(ALPHA * PALETTE[1].astype(float)).astype(int).tolist()


def test_compute_plot_needs_a_positive_compute_value():
    points = pd.DataFrame({"dataset": ["d", "d"], "label": ["a", "b"], "x": [0.0, None], "y": [1.0, 2.0],
                           "y_err": [0.1, 0.2]})
    assert compute_plot(points, x="train_seconds", x_title="s", y_title="y") is None
    uri = compute_plot(points.assign(x=[10.0, 100.0]), x="train_seconds", x_title="s", y_title="y")
    assert decode(uri).ndim == 3


@pytest.mark.parametrize("k", [0, 25])
def test_palette_wraps_for_many_segments(k):
    index = np.full((2, 2), k, np.int16)
    assert overlay(np.zeros((2, 2, 3), np.uint8), index)[1, 1].tolist() == \
        np.round(ALPHA * PALETTE[k % len(PALETTE)].astype(float)).astype(int).tolist()
