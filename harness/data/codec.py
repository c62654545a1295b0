"""Byte encodings inside a record (docs/reference.md#data-format, docs/reference.md#what-v4-changed).

`image` is the original encoded file (PNG/JPEG bytes), decoded like the authors: IMREAD_UNCHANGED (so EXIF
orientation is *not* applied) then BGR→RGB, which also turns BGRA images into 3 channels. An 8-bit RGB or RGBA PNG
(ClevrTex) is decoded by libspng (pyspng) straight to RGB when it is installed: PNG is lossless, so any conforming
decoder gives cv2's pixels (tested), about a fifth faster; every other image (JPEG above all, whose decoders
differ) goes through cv2 as the authors'.
`segment` (and ClevrTex `depth`) is the 1-D uint8 buffer of `cv2.imencode`: lossless WebP in v3 files, PNG in
v4 files. The v3 loader decodes it with IMREAD_GRAYSCALE, which reads both exactly; the encoding tells the
file's format version.
"""

from __future__ import annotations

import cv2
import numpy as np

try:
    import pyspng
except ImportError:  # a dependency (pyproject); an environment not yet updated decodes every PNG with cv2
    pyspng = None

# Format version → cv2 extension of the index-map encoding.
INDEX_MAP_EXTENSIONS = {"v3": ".webp", "v4": ".png"}

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def index_map_version(buf) -> str | None:
    """"v3" for a RIFF/WEBP buffer, "v4" for a PNG buffer, None for anything else (from the magic bytes)."""
    head = bytes(memoryview(np.asarray(buf, dtype=np.uint8).reshape(-1)[:16]))
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "v3"
    if head[:8] == _PNG_MAGIC:
        return "v4"
    return None


def encode_index_map(index_map: np.ndarray, version: str = "v3") -> np.ndarray:
    """(H,W) uint8 → the 1-D uint8 buffer the authors' converter of `version` stores."""
    if index_map.ndim != 2 or index_map.dtype != np.uint8:
        raise ValueError(f"index map must be 2-D uint8, got {index_map.dtype} {index_map.shape}")
    if version not in INDEX_MAP_EXTENSIONS:
        raise ValueError(f"unknown format version {version!r}; valid: {', '.join(INDEX_MAP_EXTENSIONS)}")
    ok, buf = cv2.imencode(INDEX_MAP_EXTENSIONS[version], index_map)
    if not ok:
        raise ValueError(f"cv2 could not encode a {index_map.shape} index map as {version}")
    if version == "v3" and bytes(buf[12:16]) != b"VP8L":
        # OpenCV's default WebP quality is lossless (VP8L); a lossy build would corrupt every index.
        raise RuntimeError("this OpenCV build writes lossy WebP; index maps would not round-trip")
    return buf


def decode_index_map(buf) -> np.ndarray | None:
    """The stored buffer → (H,W) uint8 index map, or None if it does not decode."""
    try:
        array = np.asarray(buf, dtype=np.uint8).reshape(-1)
    except (TypeError, ValueError):
        return None
    if array.size == 0:
        return None
    return cv2.imdecode(array, cv2.IMREAD_GRAYSCALE)


# IHDR: the 8-byte signature, then length, b"IHDR", width, height (4 bytes each), bit depth, colour type.
_IHDR_TAG, _DEPTH_AT, _COLOUR_AT = slice(12, 16), 24, 25
_PNG_RGB_TYPES = (2, 6)  # truecolour, truecolour with alpha


def _is_8bit_rgb_png(data: bytes) -> bool:
    return (data[:8] == _PNG_MAGIC and len(data) > _COLOUR_AT and data[_IHDR_TAG] == b"IHDR"
            and data[_DEPTH_AT] == 8 and data[_COLOUR_AT] in _PNG_RGB_TYPES)


def decode_image(data) -> np.ndarray | None:
    """Encoded image bytes → RGB uint8 (H,W,3), or None if they do not decode to an 8-bit image."""
    try:
        array = np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError):
        return None
    if array.size == 0:
        return None
    if pyspng is not None and isinstance(data, bytes) and _is_8bit_rgb_png(data):
        try:
            return pyspng.load(data, "RGB")  # alpha dropped, as BGRA→RGB does
        except Exception:  # a damaged file: let cv2 decide, as for every other image
            pass
    image = cv2.imdecode(array, cv2.IMREAD_UNCHANGED)
    if image is None or image.dtype != np.uint8 or image.ndim not in (2, 3):
        return None
    try:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    except cv2.error:
        return None


def encode_png_rgb(image_rgb: np.ndarray) -> bytes:
    """RGB uint8 (H,W,3) → PNG file bytes (how ClevrTex-like images are stored)."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"cv2 could not encode a {image_rgb.shape} image as PNG")
    return buf.tobytes()
