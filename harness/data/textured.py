"""`textured`: ClevrTex-like generated scenes that colour cannot segment but pretrained features can.

Each scene draws a small palette; the background is a texture in two palette colours, and every object
(circle / square / triangle, rotated) is a different texture kind in two colours of the *same* palette, so
object and background pixels have the same colours and only texture, shape and scale tell them apart.
3–10 objects of strongly varied size (radius log-uniform over a 5× range) overlap: painting order decides
occlusion and an index covers exactly the pixels where its object is visible (fully hidden objects get
none). Index semantics are ClevrTex's (0 = background, visible objects 1..K in painting order), stored in the
authors' LMDB layout (docs/reference.md#clevrtex) plus a COCO-style `clazz`: uint8 (K,), the class of index
i+1, `1 + shape · len(TEXTURES) + texture` (shape and texture as indexed in SHAPES and TEXTURES; 15 classes),
for the object-recognition probe.

Textures (object-local coordinates, so they turn with the object; `period` is the pattern's wavelength):
stripes, checks, dots (discs on a square lattice), noise (sign of a sum of three random plane waves: blobs),
gradient (linear blend of the two colours across the object). A pixel-noise layer and a global brightness
ramp are added on top. Every parameter is in `TexturedConfig` and recorded in the file's `__meta__`.

Like harness.data.synthetic, each image comes from its own RNG seeded by (seed, split, index); each object is
drawn over its bounding box only, in float32: 2000 train + 300 val 112² scenes are written in about 20 s on
one busy CPU core.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.data.codec import encode_index_map, encode_png_rgb
from harness.data.lmdb_io import LmdbWriter
from harness.data.paths import split_path
from harness.data.synthetic import SPLIT_IDS, check_objects

GENERATOR_VERSION = 1
SHAPES = ("circle", "square", "triangle")
TEXTURES = ("stripes", "checks", "dots", "noise", "gradient")
NUM_CLASSES = len(SHAPES) * len(TEXTURES)

_SQUARE_HALF_SIDE = 0.85  # × radius: about a circle's area
_TRIANGLE_INRADIUS = 0.65  # × radius
_DOT_RADIUS = 0.3  # × period
_NOISE_WAVES = 3
_PLACEMENT_CANDIDATES = 64
_CHUNK = 256  # images generated, then written, at once


@dataclass(frozen=True)
class TexturedConfig:
    """Generator parameters (all recorded in the data card). Radii are fractions of the image side; texture
    periods are fractions of the object radius (objects) or of the side (background); `palette` colours per
    scene; `min_separation`: centre distance ≥ this × (r_i + r_j) when a placement is found (< 1: overlap);
    `brightness` is the ± amplitude of the global ramp, `noise_std` the pixel noise (0–1 intensity scale)."""

    resolution: int = 112
    min_objects: int = 3
    max_objects: int = 10
    min_radius: float = 0.08
    max_radius: float = 0.4
    palette: int = 4
    min_period: float = 0.35
    max_period: float = 0.8
    background_period: tuple[float, float] = (0.04, 0.12)
    min_separation: float = 0.6
    brightness: float = 0.1
    noise_std: float = 0.03
    seed: int = 0

    def __post_init__(self):
        check_objects(self)
        if not 0 < self.min_period <= self.max_period:
            raise ValueError(f"need 0 < min_period ≤ max_period, got {self.min_period}, {self.max_period}")
        if not 0 < self.background_period[0] <= self.background_period[1]:
            raise ValueError(f"need 0 < background_period[0] ≤ [1], got {self.background_period}")
        if self.palette < 2:
            raise ValueError(f"need a palette of at least 2 colours, got {self.palette}")
        if self.resolution < 8:
            raise ValueError(f"images must be at least 8 pixels a side, got {self.resolution}")


def class_id(shape: int, texture: int) -> int:
    """The `clazz` value of an object: 1 + shape · len(TEXTURES) + texture (0 is never used)."""
    return 1 + shape * len(TEXTURES) + texture


def _pattern(kind: int, u, v, period: float, angle: float, waves: np.ndarray, extent: float) -> np.ndarray:
    """Texture value in [0, 1] (0 = first colour, 1 = second) at local coordinates (u, v). `waves`
    (NOISE_WAVES, 3) holds (direction, frequency × period, phase) of the noise texture; `extent` is the
    gradient's half length."""
    a = np.cos(angle) * u + np.sin(angle) * v
    b = -np.sin(angle) * u + np.cos(angle) * v
    name = TEXTURES[kind]
    if name == "stripes":
        return np.floor(a / (period / 2)) % 2
    if name == "checks":
        return (np.floor(a / (period / 2)) + np.floor(b / (period / 2))) % 2
    if name == "dots":
        da, db = a / period - np.round(a / period), b / period - np.round(b / period)
        return (da * da + db * db <= _DOT_RADIUS ** 2).astype(np.float32)
    if name == "noise":
        field = sum(np.cos(2 * np.pi * frequency / period * (np.cos(direction) * u + np.sin(direction) * v) + phase)
                    for direction, frequency, phase in waves)
        return (field > 0).astype(np.float32)
    return np.clip(a / (2 * extent) + 0.5, 0, 1)


def _mix(colours: np.ndarray, t: np.ndarray) -> np.ndarray:
    """colours (2, 3), t (...) in [0, 1] → (..., 3)."""
    return colours[0] * (1 - t[..., None]) + colours[1] * t[..., None]


def _scene(config: TexturedConfig, rng: np.random.Generator) -> dict:
    """One scene's parameters; objects in painting order (back to front)."""
    side = config.resolution
    k = int(rng.integers(config.min_objects, config.max_objects + 1))
    radius = np.exp(rng.uniform(np.log(config.min_radius), np.log(config.max_radius), k)) * side
    centres = np.zeros((k, 2))
    for j in range(k):
        low, high = 0.5 * radius[j], side - 0.5 * radius[j]
        candidates = rng.uniform(low, high, size=(_PLACEMENT_CANDIDATES, 2))
        gaps = np.linalg.norm(candidates[:, None] - centres[None, :j], axis=2) / (radius[j] + radius[:j])
        separation = gaps.min(axis=1, initial=np.inf)
        good = np.flatnonzero(separation >= config.min_separation)
        centres[j] = candidates[good[0] if good.size else int(separation.argmax())]
    palette = rng.uniform(0.1, 0.9, (config.palette, 3)).astype(np.float32)
    background_texture = int(rng.integers(len(TEXTURES)))
    # Objects never share the background's texture kind: texture, not colour, separates them from it.
    offsets = rng.integers(1, len(TEXTURES), k)
    texture = (background_texture + offsets) % len(TEXTURES)
    pairs = np.stack([rng.choice(config.palette, 2, replace=False) for _ in range(k + 1)])
    waves = np.stack([rng.uniform(0, np.pi, (k + 1, _NOISE_WAVES)), rng.uniform(0.5, 1.0, (k + 1, _NOISE_WAVES)),
                      rng.uniform(0, 2 * np.pi, (k + 1, _NOISE_WAVES))], axis=-1)
    return {
        "k": k, "radius": radius, "centres": centres, "texture": texture, "shape": rng.integers(0, len(SHAPES), k),
        "angle": rng.uniform(0, 2 * np.pi, k), "tex_angle": rng.uniform(0, np.pi, k + 1),
        "period": np.append(rng.uniform(config.min_period, config.max_period, k) * radius,
                            rng.uniform(*config.background_period) * side),
        "colours": palette[pairs],  # (k+1, 2, 3): the last row is the background's
        "background_texture": background_texture, "waves": waves,
        "brightness_angle": rng.uniform(0, 2 * np.pi), "brightness": rng.uniform(-1, 1) * config.brightness,
        "noise": rng.standard_normal((side, side, 3), dtype=np.float32) * np.float32(config.noise_std),
    }


def _inside(shape: int, u, v, r: float) -> np.ndarray:
    if SHAPES[shape] == "circle":
        return u * u + v * v <= r * r
    if SHAPES[shape] == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= _SQUARE_HALF_SIDE * r
    inside = np.ones(np.broadcast_shapes(u.shape, v.shape), bool)
    for phi in (np.pi / 2, np.pi / 2 + 2 * np.pi / 3, np.pi / 2 + 4 * np.pi / 3):
        inside &= u * np.cos(phi) + v * np.sin(phi) <= _TRIANGLE_INRADIUS * r
    return inside


def _draw(s: dict, side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one scene → (H,W,3) uint8 image, (H,W) uint8 index map, (K,) uint8 classes of indices 1..K.
    Each object is drawn only over its bounding box (a shape fits in the circle of its radius × 1.3)."""
    centre = (np.arange(side, dtype=np.float32) + 0.5)
    ys, xs = centre[:, None] - side / 2, centre[None, :] - side / 2
    t = _pattern(s["background_texture"], xs, ys, s["period"][-1], s["tex_angle"][-1], s["waves"][-1], side / 2)
    image = _mix(s["colours"][-1], t)
    label = np.zeros((side, side), np.int64)
    for j in range(s["k"]):
        (cx, cy), r = s["centres"][j], s["radius"][j]
        reach = 1.3 * r + 1
        y0, y1 = max(0, int(cy - reach)), min(side, int(np.ceil(cy + reach)))
        x0, x1 = max(0, int(cx - reach)), min(side, int(np.ceil(cx + reach)))
        if y0 >= y1 or x0 >= x1:
            continue
        dx, dy = centre[None, x0:x1] - cx, centre[y0:y1, None] - cy
        cos, sin = np.cos(s["angle"][j]), np.sin(s["angle"][j])
        u, v = cos * dx + sin * dy, -sin * dx + cos * dy
        inside = _inside(int(s["shape"][j]), u, v, r)
        t = _pattern(int(s["texture"][j]), u, v, s["period"][j], s["tex_angle"][j], s["waves"][j], r)
        box = image[y0:y1, x0:x1]
        box[inside] = _mix(s["colours"][j], t)[inside]
        label[y0:y1, x0:x1][inside] = j + 1

    ramp = np.cos(s["brightness_angle"]) * xs / side + np.sin(s["brightness_angle"]) * ys / side
    image = image * (1 + 2 * s["brightness"] * ramp)[..., None] + s["noise"]
    image = np.clip(np.round(image * 255), 0, 255).astype(np.uint8)

    # Number the visible objects 1..K' in painting order (a fully hidden object gets no index and no class).
    visible = np.zeros(s["k"] + 1, bool)
    visible[np.unique(label)] = True
    visible[0] = False
    renumber = np.cumsum(visible)
    classes = np.array([class_id(int(s["shape"][j]), int(s["texture"][j])) for j in range(s["k"]) if visible[j + 1]],
                       np.uint8)
    return image, renumber[label].astype(np.uint8), classes


def generate(config: TexturedConfig, split: str, start: int, count: int
             ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Images `start`..`start+count-1` of `split`: (count,H,W,3) uint8 RGB, (count,H,W) uint8 index maps and
    per image the (K,) uint8 class ids of indices 1..K."""
    if split not in SPLIT_IDS:
        raise ValueError(f"unknown textured split {split!r}; valid: {', '.join(SPLIT_IDS)}")
    side = config.resolution
    if count <= 0:
        return np.zeros((0, side, side, 3), np.uint8), np.zeros((0, side, side), np.uint8), []
    drawn = [_draw(_scene(config, np.random.default_rng([config.seed, SPLIT_IDS[split], i])), side)
             for i in range(start, start + count)]
    return np.stack([d[0] for d in drawn]), np.stack([d[1] for d in drawn]), [d[2] for d in drawn]


def generator_params(config: TexturedConfig) -> dict:
    return {**dataclasses.asdict(config), "background_period": list(config.background_period),
            "shapes": list(SHAPES), "textures": list(TEXTURES), "version": GENERATOR_VERSION}


def write_split(path: str | os.PathLike, config: TexturedConfig, split: str, count: int, version: str = "v3"
                ) -> Path:
    """Write `count` scenes of `split` to the LMDB file `path` (records: image PNG, segment, clazz)."""
    meta = {"dataset": "textured", "split": split, "format": version, "generator": generator_params(config)}
    chunk = _CHUNK
    with LmdbWriter(path, meta=meta) as writer:
        for start in range(0, count, chunk):
            images, index_maps, classes = generate(config, split, start, min(chunk, count - start))
            for image, index_map, clazz in zip(images, index_maps, classes):
                writer.append({"image": encode_png_rgb(image), "segment": encode_index_map(index_map, version),
                               "clazz": clazz})
    return Path(path)


def write_textured(data_dir: str | os.PathLike, config: TexturedConfig = TexturedConfig(), train: int = 5000,
                   val: int = 500) -> dict[str, Path]:
    """`<data_dir>/textured/{train,val}.lmdb`; returns split → path."""
    return {split: write_split(split_path(data_dir, "textured", split), config, split, count)
            for split, count in (("train", train), ("val", val))}
