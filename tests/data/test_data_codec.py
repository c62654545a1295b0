"""Record encodings: v3 WebP and v4 PNG index maps read identically; images decode like the authors'."""

import io

import cv2
import numpy as np
import pytest
from data_helpers import index_buf

from harness.data.codec import decode_image, decode_index_map, encode_index_map, encode_png_rgb, index_map_version


@pytest.mark.parametrize("shape", [(240, 320), (7, 5), (1, 1)])
def test_v3_and_v4_index_maps_decode_identically(shape):
    rng = np.random.default_rng(0)
    index_map = rng.integers(0, 256, shape).astype(np.uint8)
    v3, v4 = encode_index_map(index_map, "v3"), encode_index_map(index_map, "v4")
    assert index_map_version(v3) == "v3" and index_map_version(v4) == "v4"
    np.testing.assert_array_equal(decode_index_map(v3), index_map)
    np.testing.assert_array_equal(decode_index_map(v4), index_map)


def test_our_encodings_match_what_the_authors_store():
    index_map = np.arange(48, dtype=np.uint8).reshape(6, 8)
    # Same cv2 call, same default parameters ⇒ the same bytes as their converters write.
    assert bytes(encode_index_map(index_map, "v3")) == bytes(index_buf(index_map, ".webp"))
    assert bytes(encode_index_map(index_map, "v4")) == bytes(index_buf(index_map, ".png"))


def test_version_of_other_bytes_is_none():
    assert index_map_version(np.frombuffer(b"GIF89a....xxxxxx", np.uint8)) is None
    assert index_map_version(np.zeros(0, np.uint8)) is None


def test_undecodable_buffers_give_none():
    assert decode_index_map(np.frombuffer(b"RIFF\x00\x00\x00\x00WEBPjunk", np.uint8)) is None
    assert decode_index_map(b"") is None
    assert decode_image(b"not an image") is None
    assert decode_image(b"") is None


def test_image_decode_is_rgb_and_expands_grey_and_alpha():
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[..., 0] = 200  # red
    np.testing.assert_array_equal(decode_image(encode_png_rgb(rgb)), rgb)
    grey = np.full((4, 6), 77, np.uint8)
    out = decode_image(cv2.imencode(".png", grey)[1].tobytes())
    assert out.shape == (4, 6, 3) and (out == 77).all()
    bgra = np.zeros((4, 6, 4), np.uint8)
    bgra[..., 2] = 150  # red in BGR(A) order
    bgra[..., 3] = 10
    out = decode_image(cv2.imencode(".png", bgra)[1].tobytes())
    assert out.shape == (4, 6, 3) and (out[..., 0] == 150).all() and (out[..., 1:] == 0).all()


def test_image_decode_ignores_exif_orientation():
    from PIL import Image

    array = np.zeros((10, 30, 3), np.uint8)
    array[:, :15] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° CW to display": a viewer would show 30×10
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", exif=exif, quality=95)
    out = decode_image(buf.getvalue())
    assert out.shape == (10, 30, 3)
    assert out[:, :10].mean() > 200 and out[:, 20:].mean() < 50


def test_encode_rejects_non_uint8_maps():
    with pytest.raises(ValueError, match="2-D uint8"):
        encode_index_map(np.zeros((3, 3), np.int32))
