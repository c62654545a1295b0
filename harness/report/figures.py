"""Pictures for the HTML report, as data URIs so the page is one self-contained file: coloured mask overlays
for the gallery (numpy + cv2) and accuracy against compute (matplotlib, without pyplot's global state)."""

from __future__ import annotations

import base64
import io
import math

import cv2
import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

# 20 distinguishable colours: tab20's saturated half first, then its light half.
_TAB20 = np.asarray(colormaps["tab20"].colors)
PALETTE = np.round(np.concatenate([_TAB20[0::2], _TAB20[1::2]]) * 255).astype(np.uint8)
ALPHA = 0.55


def png_data_uri(rgb: np.ndarray) -> str:
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise ValueError("PNG encoding failed")
    return "data:image/png;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")


def resize_index(index: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of an index map (labels must not blend)."""
    h, w = index.shape
    return index[(np.arange(size) * h) // size][:, (np.arange(size) * w) // size]


def overlay(image: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Segments of `index` (H,W; −1 = no label) blended in colour over `image` (H,W,3 uint8), with white
    segment boundaries; unlabelled pixels (VOID, boundary) are shown dimmed grey."""
    base = image.astype(np.float32)
    colours = PALETTE[np.mod(index, len(PALETTE))].astype(np.float32)
    out = (1 - ALPHA) * base + ALPHA * colours
    grey = base.mean(axis=-1, keepdims=True) * 0.4
    out = np.where((index >= 0)[..., None], out, grey)
    edge = np.zeros(index.shape, bool)
    edge[:, :-1] |= index[:, :-1] != index[:, 1:]
    edge[:-1, :] |= index[:-1, :] != index[1:, :]
    out[edge] = 255
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def gallery_panels(gallery: dict, *, segmentation: str | None = None, images: int = 4, size: int = 128) -> dict:
    """A record's gallery (harness.results.read_gallery) as {"columns": [title], "rows": [{"key", "panels":
    [data URI]}]}: the image, the ground truth and every named mask side by side; the mask the method's
    config uses as its segmentation comes first and says so."""
    names = sorted(gallery["masks"], key=lambda n: (n != segmentation, n))
    columns = ["image", "ground truth"] + [f"{n} (segmentation)" if n == segmentation else n for n in names]
    rows = []
    for i in range(min(images, len(gallery["image"]))):
        picture = cv2.resize(gallery["image"][i], (size, size), interpolation=cv2.INTER_AREA)
        panels = [picture, overlay(picture, resize_index(gallery["gt"][i], size))]
        panels += [overlay(picture, resize_index(gallery["masks"][n][i], size)) for n in names]
        rows.append({"key": str(gallery["keys"][i]), "panels": [png_data_uri(p) for p in panels]})
    return {"columns": columns, "rows": rows}


def compute_plot(points: pd.DataFrame, *, x: str, x_title: str, y_title: str) -> str | None:
    """Accuracy against compute, one panel per dataset: `points` has dataset, label, x, y, y_err (percent);
    rows without a positive x are left out (log axis). None when nothing is left to draw."""
    points = points[pd.to_numeric(points["x"], errors="coerce") > 0]
    if points.empty:
        return None
    datasets = list(dict.fromkeys(points["dataset"]))
    fig = Figure(figsize=(4.2 * len(datasets), 3.4), dpi=100, layout="constrained")
    for i, dataset in enumerate(datasets):
        ax = fig.add_subplot(1, len(datasets), i + 1)
        rows = points[points["dataset"] == dataset]
        for j, p in enumerate(rows.itertuples()):
            err = None if p.y_err is None or math.isnan(p.y_err) else p.y_err
            ax.errorbar(p.x, p.y, yerr=err, fmt="o", capsize=3, color=PALETTE[j % len(PALETTE)] / 255)
            ax.annotate(p.label, (p.x, p.y), textcoords="offset points", xytext=(5, 4), fontsize=8)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.margins(x=0.2, y=0.15)
        ax.set_title(dataset)
        ax.set_xlabel(x_title)
        ax.set_ylabel(y_title)
        ax.grid(True, alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
