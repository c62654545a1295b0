"""The loader's fast paths give exactly what the authors' recipe gives: libspng against cv2 on every kind of PNG,
the gathered one-hot against F.one_hot, the in-place normalisation against (x − mean) / std, and whole ClevrTex-
like items against `harness.tools.bench.reference_item` (cv2 decode, F.interpolate, F.one_hot), bit for bit."""

import io

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from data_helpers import index_buf, jpeg, random_image, write_authors_lmdb

from harness.data import DATASETS, codec
from harness.data.datasets import LmdbSplit
from harness.data.masks import one_hot_bool
from harness.data.transforms import IMAGENET_MEAN, IMAGENET_STD, normalize
from harness.tools.bench import reference_item


def _authors_decode(data: bytes):
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _pngs(rng):
    """name → PNG bytes of every colour type and depth the decoder may meet."""
    from PIL import Image

    rgb = random_image(rng, 23, 31)
    rgba = np.dstack([rgb, rng.integers(0, 256, (23, 31), dtype=np.uint8)])
    out = {"rgb": cv2.imencode(".png", rgb)[1].tobytes(),
           "rgba": cv2.imencode(".png", rgba)[1].tobytes(),
           "grey": cv2.imencode(".png", rgb[..., 0])[1].tobytes(),
           "rgb16": cv2.imencode(".png", rgb.astype(np.uint16) * 257)[1].tobytes()}
    for name, image, kw in [("rgb-trns", Image.fromarray(rgb), {"transparency": tuple(int(v) for v in rgb[0, 0])}),
                            ("palette", Image.fromarray(rgb).quantize(17), {}),
                            ("grey-alpha", Image.fromarray(rgba[..., :2]).convert("LA"), {}),
                            ("rgb-best", Image.fromarray(rgb), {"compress_level": 9, "optimize": True})]:
        buf = io.BytesIO()
        image.save(buf, format="PNG", **kw)
        out[name] = buf.getvalue()
    return out


@pytest.mark.parametrize("name", ["rgb", "rgba", "grey", "rgb16", "rgb-trns", "palette", "grey-alpha", "rgb-best"])
def test_png_decoding_equals_cv2_for_every_colour_type(name):
    data = _pngs(np.random.default_rng(0))[name]
    expected = _authors_decode(data) if name != "rgb16" else None  # 16-bit: no 8-bit image, as before
    out = codec.decode_image(data)
    if expected is None:
        assert out is None
    else:
        assert out.dtype == np.uint8 and out.shape == expected.shape
        np.testing.assert_array_equal(out, expected)


def test_libspng_decodes_the_8bit_rgb_and_rgba_pngs():
    pytest.importorskip("pyspng")
    pngs = _pngs(np.random.default_rng(1))
    assert [n for n, d in pngs.items() if codec._is_8bit_rgb_png(d)] == ["rgb", "rgba", "rgb-trns", "rgb-best"]
    assert not codec._is_8bit_rgb_png(jpeg(random_image(np.random.default_rng(2), 8, 8)))


def test_jpeg_is_decoded_by_cv2():
    data = jpeg(random_image(np.random.default_rng(3), 40, 56))
    np.testing.assert_array_equal(codec.decode_image(data), _authors_decode(data))


@pytest.mark.parametrize("num_classes", [1, 2, 7, 8, 9, 11, 24, 200, 256])
def test_one_hot_bool_equals_f_one_hot(num_classes):
    g = torch.Generator().manual_seed(num_classes)
    index_map = (torch.rand(37, 19, generator=g) * num_classes).to(torch.uint8)
    for classes in (None, num_classes + 3, 300):
        expected = F.one_hot(index_map.long(), -1 if classes is None else classes).bool()
        out = one_hot_bool(index_map, classes)
        assert out.dtype == torch.bool and torch.equal(out, expected)


def test_one_hot_bool_refuses_an_index_beyond_its_classes():
    with pytest.raises(IndexError):
        one_hot_bool(torch.tensor([[0, 5]], dtype=torch.uint8), 3)


def test_normalize_equals_the_plain_formula():
    image = torch.arange(3 * 256, dtype=torch.int64).remainder(256).to(torch.uint8).view(3, 16, 16)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    assert torch.equal(normalize(image), (image - mean) / std)


@pytest.mark.parametrize("alpha", [False, True])
def test_clevrtex_items_equal_the_reference_recipe_bit_for_bit(tmp_path, alpha):
    rng = np.random.default_rng(4)
    records = []
    for i in range(6):
        image = random_image(rng, 240, 320)
        if alpha:
            image = np.dstack([image, rng.integers(0, 256, (240, 320), dtype=np.uint8)])
        index_map = rng.integers(0, 4 + i, (240, 320), dtype=np.uint8)
        records.append({"image": cv2.imencode(".png", image)[1].tobytes(), "segment": index_buf(index_map),
                        "depth": index_buf(index_map)})
    path = write_authors_lmdb(tmp_path / "clevrtex" / "val.lmdb", records)
    split = LmdbSplit(path, DATASETS.get("clevrtex"), "val")
    for i, record in enumerate(records):
        ours, reference = split[i], reference_item(record, 256)
        for key in ("image", "segment"):
            assert ours[key].dtype == reference[key].dtype and torch.equal(ours[key], reference[key])


def test_one_hot_bool_is_contiguous_like_f_one_hot():
    """A strided result made the collate's cat and stack several times slower."""
    out = one_hot_bool(torch.tensor([[0, 9], [3, 1]], dtype=torch.uint8))
    assert out.is_contiguous() and out.stride() == F.one_hot(torch.tensor([[0, 9], [3, 1]])).stride()
