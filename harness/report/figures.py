"""Pictures for the HTML report, as data URIs so the page is one self-contained file: coloured mask overlays
for the gallery (numpy + cv2, WebP) and the plots (matplotlib, without pyplot's global state, PNG).

Plots are drawn at a fixed, legible size (10 pt text and up, panels in rows of at most two, so that a figure is at
most about 1140 px wide and the 1280-px page never shrinks it); methods are told apart by a legend, not by labels
next to their points (which overlap where methods cost alike); reference rows are dashed horizontal lines labelled
at the right edge.
"""

from __future__ import annotations

import base64
import io
import math

import cv2
import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter, LogLocator, NullFormatter

# 20 distinguishable colours: tab20's saturated half first, then its light half.
_TAB20 = np.asarray(colormaps["tab20"].colors)
PALETTE = np.round(np.concatenate([_TAB20[0::2], _TAB20[1::2]]) * 255).astype(np.uint8)
ALPHA = 0.55
MARKERS = "osD^vP*Xph"
WEBP_QUALITY = 80
# Boundaries are drawn on the segmentation smoothed by a median filter of this size, so that a segmentation made of
# isolated pixels (colour k-means on texture) does not turn white; the colours stay the raw segmentation's.
BOUNDARY_SMOOTHING = 5
FONT = 10
LEGEND_WIDTH = 2.2  # inches right of the panels
PANEL_SIZE = (4.6, 4.2)  # inches, at 100 dpi
MAX_COLUMNS = 2


def _figure(n_panels: int) -> tuple[Figure, int, int]:
    """A figure for n panels in rows of at most MAX_COLUMNS, with room for the legend on the right."""
    columns = min(n_panels, MAX_COLUMNS)
    rows = math.ceil(n_panels / columns)
    fig = Figure(figsize=(PANEL_SIZE[0] * columns + LEGEND_WIDTH, PANEL_SIZE[1] * rows), dpi=100,
                 layout="constrained")
    return fig, rows, columns


def png_data_uri(rgb: np.ndarray) -> str:
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise ValueError("PNG encoding failed")
    return "data:image/png;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")


def webp_data_uri(rgb: np.ndarray, quality: int = WEBP_QUALITY) -> str:
    ok, encoded = cv2.imencode(".webp", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_WEBP_QUALITY, quality])
    if not ok:
        raise ValueError("WebP encoding failed")
    return "data:image/webp;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")


def resize_index(index: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of an index map (labels must not blend)."""
    h, w = index.shape
    return index[(np.arange(size) * h) // size][:, (np.arange(size) * w) // size]


def boundaries(index: np.ndarray) -> np.ndarray:
    """Pixels where the (median-smoothed) segmentation changes label, bool (H, W)."""
    labels = np.unique(index, return_inverse=True)[1].reshape(index.shape)
    if labels.max() < 256:  # cv2's median filter of this size takes 8-bit images
        labels = cv2.medianBlur(labels.astype(np.uint8), BOUNDARY_SMOOTHING)
    edge = np.zeros(index.shape, bool)
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return edge


def overlay(image: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Segments of `index` (H,W; −1 = no label) blended in colour over `image` (H,W,3 uint8), with white
    boundaries between the smoothed segments; unlabelled pixels (VOID, boundary) are shown dimmed grey."""
    base = image.astype(np.float32)
    colours = PALETTE[np.mod(index, len(PALETTE))].astype(np.float32)
    out = (1 - ALPHA) * base + ALPHA * colours
    grey = base.mean(axis=-1, keepdims=True) * 0.4
    out = np.where((index >= 0)[..., None], out, grey)
    out[boundaries(index)] = 255
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def picture(image: np.ndarray, size: int) -> np.ndarray:
    """An image at `size` pixels or below: a smaller one stays as it is (the page scales it; its bytes stay few)."""
    if image.shape[0] <= size:
        return image
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


# ----- plots -------------------------------------------------------------------------------------------------


def _encode(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _style(label: str, labels: list[str]) -> dict:
    i = labels.index(label)
    return {"color": PALETTE[i % 10] / 255, "marker": MARKERS[i % len(MARKERS)]}


def _references(ax, references: dict[str, float]) -> None:
    """Dashed horizontal lines, each labelled at the right edge of the panel."""
    for name, value in references.items():
        ax.axhline(value, color="0.45", linestyle="--", linewidth=1)
        ax.annotate(f"{name} {value:.1f}", (1, value), xycoords=("axes fraction", "data"), xytext=(-3, 2),
                    textcoords="offset points", ha="right", va="bottom", fontsize=FONT - 1, color="0.3")


def compute_plot(points: pd.DataFrame, references: pd.DataFrame, *, x_title: str, metrics: dict[str, str]
                 ) -> str | None:
    """Accuracy against a compute axis (log), one panel per dataset × metric: `points` has dataset, label, metric,
    x, y, y_err (percent); `references` has dataset, label, metric, y. Rows without a positive x are left out (log
    axis). None when nothing is left to draw."""
    points = points[pd.to_numeric(points["x"], errors="coerce") > 0]
    if points.empty:
        return None
    datasets = list(dict.fromkeys(points["dataset"]))
    labels = list(dict.fromkeys(points["label"]))
    panels = [(d, m) for d in datasets for m in metrics if ((points["dataset"] == d) & (points["metric"] == m)).any()]
    fig, n_rows, n_columns = _figure(len(panels))
    for i, (dataset, metric) in enumerate(panels):
        ax = fig.add_subplot(n_rows, n_columns, i + 1)
        rows = points[(points["dataset"] == dataset) & (points["metric"] == metric)]
        for p in rows.itertuples():
            err = None if p.y_err is None or math.isnan(p.y_err) else p.y_err
            ax.errorbar(p.x, p.y, yerr=err, capsize=3, linestyle="none", markersize=7, label=p.label,
                        **_style(p.label, labels))
        ref = references[(references["dataset"] == dataset) & (references["metric"] == metric)]
        _references(ax, dict(zip(ref["label"], ref["y"])))
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.margins(x=0.25, y=0.15)
        ax.set_title(f"{dataset}: {metrics[metric]}", fontsize=FONT + 1)
        ax.set_xlabel(x_title, fontsize=FONT)
        ax.set_ylabel(f"{metrics[metric]} (%)", fontsize=FONT)
        ax.tick_params(labelsize=FONT)
        ax.grid(True, alpha=0.3)
    handles, names = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside right upper", fontsize=FONT, frameon=False)
    return _encode(fig)


def curve_plot(curves: pd.DataFrame, references: pd.DataFrame, *, titles: dict[str, str], dataset: str
               ) -> str | None:
    """Learning curves of one dataset, one panel per quantity in `titles` (curve keys: validation metrics in percent,
    training loss terms): per label the mean over seeds as a line and the min–max over seeds as a band. `curves` has
    label, seed, step, key, value; `references` (label, metric, y) are drawn on the metric panels."""
    panels = [k for k in titles if (curves["key"] == k).any()]
    if not panels:
        return None
    labels = list(dict.fromkeys(curves["label"]))
    fig, n_rows, n_columns = _figure(len(panels))
    for i, key in enumerate(panels):
        ax = fig.add_subplot(n_rows, n_columns, i + 1)
        for label in labels:
            rows = curves[(curves["label"] == label) & (curves["key"] == key)]
            if rows.empty:
                continue
            by_step = rows.groupby("step")["value"]
            mean, low, high = by_step.mean(), by_step.min(), by_step.max()
            style = _style(label, labels)
            ax.plot(mean.index, mean.to_numpy(), color=style["color"], linewidth=1.8,
                    label=f"{label} ({rows['seed'].nunique()} seeds)")
            ax.fill_between(mean.index, low.to_numpy(), high.to_numpy(), color=style["color"], alpha=0.18,
                            linewidth=0)
        ref = references[references["metric"] == key]
        _references(ax, dict(zip(ref["label"], ref["y"])))
        if key.startswith("train_"):
            ax.set_yscale("log")
        ax.set_title(titles[key], fontsize=FONT + 1)
        ax.set_xlabel("step", fontsize=FONT)
        ax.tick_params(labelsize=FONT)
        ax.grid(True, alpha=0.3)
    handles, names = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside right upper", fontsize=FONT, frameon=False, title=dataset)
    return _encode(fig)
