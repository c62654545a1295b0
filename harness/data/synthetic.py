"""The project's synthetic multi-object dataset: the embedded default data for the CPU demo and the tests.

Scenes of 2–3 large, occluding objects (circle / square / triangle, rotated) in saturated colours, some
striped or checkered, on a light low-saturation background with a gradient and pixel noise. Masks are exact:
an object's index covers the pixels where it is visible (painting order decides occlusion). Index semantics
are ClevrTex's: 0 = background, visible objects 1..K consecutive, stored in the authors' LMDB format.

Designed after docs/experiments.md#2026-11-23-cpu-feasibility: small slot models must be able to group these within
minutes on a CPU, so objects are large (radius 0.18–0.3 of the image side), few, and far in colour from the background
and from each other. Each image is drawn from its own RNG seeded by (seed, split, index), so a record does not depend on
how many are generated or in which chunks; train and val differ by the split id. Drawing is vectorised over a chunk of
images (numpy); thousands of 32×32 images take about a second.
"""

from __future__ import annotations

import colorsys
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.data.codec import encode_index_map, encode_png_rgb
from harness.data.lmdb_io import LmdbWriter
from harness.data.paths import split_path

# Bump when the drawing changes: the data card then tells old and new files apart.
GENERATOR_VERSION = 1
SHAPES = ("circle", "square", "triangle")
SPLIT_IDS = {"train": 0, "val": 1}
TEXTURES = ("plain", "stripes", "checker")

_SQUARE_HALF_SIDE = 0.85  # × radius: about a circle's area
_TRIANGLE_INRADIUS = 0.65  # × radius: circumradius 1.3 r
_MIN_SEPARATION = 0.7  # centre distance ≥ this × (r_i + r_j), if a placement is found: no object hides another
_PLACEMENT_CANDIDATES = 64
_SHADE = 0.55  # the second colour of a texture: the object colour darkened
_CHUNK_PIXELS = 1 << 21  # pixels drawn at once


def check_objects(config) -> None:
    """The object-count and radius fields every generator config has: at most 254 objects (uint8 index maps with 0
    for the background), radii positive and ordered."""
    if not 1 <= config.min_objects <= config.max_objects <= 254:
        raise ValueError(f"need 1 ≤ min_objects ≤ max_objects ≤ 254, got {config.min_objects}, {config.max_objects}")
    if not 0 < config.min_radius <= config.max_radius:
        raise ValueError(f"need 0 < min_radius ≤ max_radius, got {config.min_radius}, {config.max_radius}")


@dataclass(frozen=True)
class SynthConfig:
    """Generator parameters; all of them are recorded in the file's `__meta__` and shown on its data card.

    `resolution` is the image height (and width unless `width` is given); radii are fractions of the
    shorter side; `noise_std` is on the 0–1 intensity scale.
    """

    resolution: int = 32
    width: int | None = None
    min_objects: int = 2
    max_objects: int = 3
    min_radius: float = 0.18
    max_radius: float = 0.3
    texture_prob: float = 0.3
    noise_std: float = 0.02
    seed: int = 0

    def __post_init__(self):
        check_objects(self)
        if self.resolution < 4 or (self.width is not None and self.width < 4):
            raise ValueError(f"images must be at least 4 pixels a side, got {self.resolution}×{self.width}")

    @property
    def size(self) -> tuple[int, int]:
        return self.resolution, self.width or self.resolution


def _hsv(h, s, v) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h, s, v), dtype=np.float64)


def _scene(config: SynthConfig, rng: np.random.Generator) -> dict:
    """One scene's parameters (objects in painting order, back to front)."""
    height, width = config.size
    side = min(height, width)
    k = int(rng.integers(config.min_objects, config.max_objects + 1))
    radius = rng.uniform(config.min_radius, config.max_radius, k) * side
    centres = np.zeros((k, 2))  # (x, y); at most half a radius of an object lies outside the image
    for j in range(k):
        low, high = 0.5 * radius[j], np.array([width, height]) - 0.5 * radius[j]
        candidates = rng.uniform(low, high, size=(_PLACEMENT_CANDIDATES, 2))
        # Separation relative to the radii of the objects already placed; the first good candidate wins,
        # else the best one.
        gaps = np.linalg.norm(candidates[:, None] - centres[None, :j], axis=2) / (radius[j] + radius[:j])
        separation = gaps.min(axis=1, initial=np.inf)
        good = np.flatnonzero(separation >= _MIN_SEPARATION)
        centres[j] = candidates[good[0] if good.size else int(separation.argmax())]
    hues = (rng.uniform() + np.arange(k) / k + rng.uniform(-0.05, 0.05, k)) % 1.0
    hues = rng.permutation(hues)
    colours = np.stack([_hsv(h, s, v) for h, s, v in
                        zip(hues, rng.uniform(0.6, 1.0, k), rng.uniform(0.55, 0.95, k))])
    textured = rng.uniform(size=k) < config.texture_prob
    texture = np.where(textured, rng.integers(1, len(TEXTURES), k), 0)
    return {
        "k": k, "radius": radius, "centres": centres, "colours": colours, "texture": texture,
        "shape": rng.integers(0, len(SHAPES), k), "angle": rng.uniform(0, 2 * np.pi, k),
        "tex_angle": rng.uniform(0, np.pi, k), "tex_period": np.maximum(rng.uniform(0.5, 0.9, k) * radius, 3.0),
        "background": _hsv(rng.uniform(), rng.uniform(0, 0.12), rng.uniform(0.75, 0.92)),
        "gradient_angle": rng.uniform(0, 2 * np.pi), "gradient": rng.uniform(0.05, 0.15),
        "noise": rng.normal(0.0, config.noise_std, size=(height, width, 3)),
    }


def _stack(scenes: list[dict], kmax: int) -> dict:
    """Per-object arrays padded to (n, kmax); `present` marks real objects."""
    n = len(scenes)
    out = {"present": np.zeros((n, kmax), bool)}
    for name, shape, fill in (("radius", (), 1.0), ("centres", (2,), 0.0), ("colours", (3,), 0.0),
                              ("texture", (), 0), ("shape", (), 0), ("angle", (), 0.0),
                              ("tex_angle", (), 0.0), ("tex_period", (), 3.0)):
        arr = np.full((n, kmax, *shape), fill, dtype=np.asarray(scenes[0][name]).dtype)
        for i, s in enumerate(scenes):
            arr[i, :s["k"]] = s[name]
        out[name] = arr
    for i, s in enumerate(scenes):
        out["present"][i, :s["k"]] = True
    return out


def _draw(scenes: list[dict], height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Render scenes → (n,H,W,3) uint8 RGB images and (n,H,W) uint8 index maps (0 = background)."""
    n, kmax = len(scenes), max(s["k"] for s in scenes)
    obj = _stack(scenes, kmax)
    ys = (np.arange(height) + 0.5)[None, :, None]
    xs = (np.arange(width) + 0.5)[None, None, :]
    label = np.zeros((n, height, width), np.int64)
    shade = np.zeros((n, height, width), bool)
    for j in range(kmax):
        def col(name):  # (n,1,1): object slot j of every scene, broadcast over the pixels
            return obj[name][:, j, None, None]

        dx, dy = xs - obj["centres"][:, j, 0, None, None], ys - obj["centres"][:, j, 1, None, None]
        cos, sin, r = np.cos(col("angle")), np.sin(col("angle")), col("radius")
        u, v = cos * dx + sin * dy, -sin * dx + cos * dy
        circle = u * u + v * v <= r * r
        square = np.maximum(np.abs(u), np.abs(v)) <= _SQUARE_HALF_SIDE * r
        triangle = np.ones_like(circle)
        for phi in (np.pi / 2, np.pi / 2 + 2 * np.pi / 3, np.pi / 2 + 4 * np.pi / 3):
            triangle &= u * np.cos(phi) + v * np.sin(phi) <= _TRIANGLE_INRADIUS * r
        shape = col("shape")
        inside = np.where(shape == 0, circle, np.where(shape == 1, square, triangle)) & col("present")
        ta, half = col("tex_angle"), col("tex_period") / 2
        a = np.floor((np.cos(ta) * u + np.sin(ta) * v) / half).astype(np.int64)
        b = np.floor((-np.sin(ta) * u + np.cos(ta) * v) / half).astype(np.int64)
        texture = col("texture")
        pattern = np.where(texture == 1, a % 2 == 1, np.where(texture == 2, (a + b) % 2 == 1, False))
        label = np.where(inside, j + 1, label)
        shade = np.where(inside, pattern, shade)

    images = np.empty((n, height, width, 3))
    for i, s in enumerate(scenes):
        g = np.cos(s["gradient_angle"]) * (xs[0] / width - 0.5) + np.sin(s["gradient_angle"]) * (ys[0] / height - 0.5)
        images[i] = s["background"] * (1 + 2 * s["gradient"] * g)[..., None]
    rows = np.arange(n)[:, None, None]
    colours = obj["colours"][rows, np.maximum(label - 1, 0)] * np.where(shade, _SHADE, 1.0)[..., None]
    images = np.where((label > 0)[..., None], colours, images)
    images += np.stack([s["noise"] for s in scenes])
    images = np.clip(np.round(images * 255), 0, 255).astype(np.uint8)

    # Number the visible objects 1..K' in painting order (a fully hidden object gets no index).
    visible = np.zeros((n, kmax + 1), bool)
    np.put_along_axis(visible, label.reshape(n, -1), True, axis=1)
    visible[:, 0] = False
    renumber = np.cumsum(visible, axis=1)
    index_maps = np.take_along_axis(renumber, label.reshape(n, -1), axis=1).reshape(label.shape)
    return images, index_maps.astype(np.uint8)


def generate(config: SynthConfig, split: str, start: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Images `start`..`start+count-1` of `split`: (count,H,W,3) uint8 RGB and (count,H,W) uint8 index maps."""
    if split not in SPLIT_IDS:
        raise ValueError(f"unknown synthetic split {split!r}; valid: {', '.join(SPLIT_IDS)}")
    height, width = config.size
    scenes = [_scene(config, np.random.default_rng([config.seed, SPLIT_IDS[split], i]))
              for i in range(start, start + count)]
    return _draw(scenes, height, width) if scenes else (
        np.zeros((0, height, width, 3), np.uint8), np.zeros((0, height, width), np.uint8))


def generator_params(config: SynthConfig) -> dict:
    return {**dataclasses.asdict(config), "version": GENERATOR_VERSION}


def write_split(path: str | os.PathLike, config: SynthConfig, split: str, count: int, version: str = "v3") -> Path:
    """Write `count` scenes of `split` to the LMDB file `path` (records like ClevrTex: image PNG + segment)."""
    meta = {"dataset": "synthetic", "split": split, "format": version, "generator": generator_params(config)}
    height, width = config.size
    chunk = max(1, _CHUNK_PIXELS // (height * width * config.max_objects))
    with LmdbWriter(path, meta=meta) as writer:
        for start in range(0, count, chunk):
            images, index_maps = generate(config, split, start, min(chunk, count - start))
            for image, index_map in zip(images, index_maps):
                writer.append({"image": encode_png_rgb(image), "segment": encode_index_map(index_map, version)})
    return Path(path)


def write_synthetic(data_dir: str | os.PathLike, config: SynthConfig = SynthConfig(), train: int = 5000,
                    val: int = 500) -> dict[str, Path]:
    """`<data_dir>/synthetic/{train,val}.lmdb`; returns split → path."""
    return {split: write_split(split_path(data_dir, "synthetic", split), config, split, count)
            for split, count in (("train", train), ("val", val))}
