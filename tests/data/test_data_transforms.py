"""Transforms (docs/reference.md#transforms-and-collate) against independent computations: cv2 nearest-exact for masks,
a float antialiased bilinear filter for images, hand-computed crop boxes, and the RNG draws the authors' pipeline makes.
"""

import math
import random

import cv2
import numpy as np
import pytest
import torch

from harness.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    TrainTransform,
    ValTransform,
    center_square_params,
    normalize,
    random_resized_crop_params,
    resize_image,
    resize_index_map,
    square_rescaled_scale,
)


def _aa_bilinear_weights(n_in: int, n_out: int) -> np.ndarray:
    """Antialiased bilinear (triangle filter widened by the downscale factor), rows normalised."""
    s = n_in / n_out
    support = max(s, 1.0)
    centres = (np.arange(n_out) + 0.5) * s
    w = np.clip(1 - np.abs((np.arange(n_in)[None] + 0.5 - centres[:, None]) / support), 0, None)
    return w / w.sum(axis=1, keepdims=True)


def _aa_resize_oracle(image: np.ndarray, size: int) -> np.ndarray:
    c, h, w = image.shape
    return _aa_bilinear_weights(h, size) @ image.astype(float) @ _aa_bilinear_weights(w, size).T


def test_square_rescaled_scale():
    assert square_rescaled_scale(240, 320, (0.75, 1.0)) == pytest.approx((0.5625, 0.75))
    assert square_rescaled_scale(100, 100, (0.75, 1.0)) == (0.75, 1.0)


def test_crop_params_follow_the_draws_of_torchvision_algorithm():
    """One case worked through by hand: the first trial fits, so 2 uniforms then 2 randints."""
    height, width, scale = 240, 320, (0.5625, 0.75)
    torch.manual_seed(123)
    area_frac = torch.empty(1).uniform_(*scale).item()
    log_lo, log_hi = torch.log(torch.tensor((3 / 4, 4 / 3)))  # float32, as torchvision keeps them
    ratio = math.exp(torch.empty(1).uniform_(log_lo.item(), log_hi.item()).item())
    w = round(math.sqrt(height * width * area_frac * ratio))
    h = round(math.sqrt(height * width * area_frac / ratio))
    assert 0 < w <= width and 0 < h <= height
    top = torch.randint(0, height - h + 1, (1,)).item()
    left = torch.randint(0, width - w + 1, (1,)).item()
    after = torch.rand(1)

    torch.manual_seed(123)
    assert random_resized_crop_params(height, width, scale) == (top, left, h, w)
    assert torch.equal(torch.rand(1), after)  # and the RNG stream moved on by exactly those draws


def test_crop_params_fallback_is_the_clamped_central_crop():
    # Every trial needs h ≥ √(9000·3/4) ≈ 82 > 10 rows: all 10 fail ⇒ central crop with ratio clamped to 4/3.
    torch.manual_seed(0)
    assert random_resized_crop_params(10, 1000, (0.9, 1.0)) == (0, (1000 - 13) // 2, 10, 13)
    after = torch.rand(1)
    torch.manual_seed(0)
    torch.empty(20).uniform_()  # 10 trials × 2 uniforms, no randint
    assert torch.equal(torch.rand(1), after)
    # Tall image: width kept, height = round(w / (3/4)).
    assert random_resized_crop_params(1000, 10, (0.9, 1.0)) == ((1000 - 13) // 2, 0, 13, 10)


def test_crop_params_stay_within_scale_and_ratio_bounds():
    torch.manual_seed(7)
    height, width = 240, 320
    lo, hi = square_rescaled_scale(height, width, (0.75, 1.0))
    fractions = []
    for _ in range(2000):
        top, left, h, w = random_resized_crop_params(height, width, (lo, hi))
        assert 0 <= top <= height - h and 0 <= left <= width - w
        # w and h are the true √(area·r), √(area/r) rounded, so each is within half a pixel of them.
        assert (w - 0.5) * (h - 0.5) <= hi * height * width and (w + 0.5) * (h + 0.5) >= lo * height * width
        assert (w - 0.5) / (h + 0.5) <= 4 / 3 and (w + 0.5) / (h - 0.5) >= 3 / 4
        fractions.append(h * w / (height * width))
    assert min(fractions) < lo + 0.01 and max(fractions) > hi - 0.01  # the whole range is reached


def test_center_square_params():
    assert center_square_params(240, 320) == (0, 40, 240, 240)
    assert center_square_params(320, 240) == (40, 0, 240, 240)
    assert center_square_params(5, 8) == (0, 1, 5, 5)
    assert center_square_params(9, 9) == (0, 0, 9, 9)


@pytest.mark.parametrize("h,w,size", [(375, 375, 256), (240, 240, 256), (200, 200, 32), (33, 33, 256)])
def test_resize_image_is_antialiased_bilinear_uint8(h, w, size):
    rng = np.random.default_rng(h)
    image = rng.integers(0, 256, (3, h, w)).astype(np.uint8)
    out = resize_image(torch.from_numpy(image), size)
    assert out.dtype == torch.uint8 and out.shape == (3, size, size)
    # uint8 fixed-point arithmetic differs from the float filter by at most one level.
    assert np.abs(out.numpy().astype(int) - np.round(_aa_resize_oracle(image, size))).max() <= 1


def test_resize_to_the_same_size_is_skipped():
    image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    index_map = torch.randint(0, 5, (32, 32), dtype=torch.uint8)
    assert resize_image(image, 32) is image and resize_index_map(index_map, 32) is index_map


@pytest.mark.parametrize("h,w,size", [(240, 240, 256), (375, 375, 256), (300, 300, 32), (17, 17, 256)])
def test_resize_index_map_matches_cv2_nearest_exact(h, w, size):
    rng = np.random.default_rng(w)
    index_map = rng.integers(0, 9, (h, w)).astype(np.uint8)
    out = resize_index_map(torch.from_numpy(index_map), size)
    assert out.dtype == torch.uint8
    np.testing.assert_array_equal(out.numpy(), cv2.resize(index_map, (size, size),
                                                          interpolation=cv2.INTER_NEAREST_EXACT))


def test_normalize_uses_imagenet_statistics_on_the_255_scale():
    image = torch.tensor([0, 128, 255], dtype=torch.uint8).reshape(3, 1, 1).expand(3, 2, 2)
    out = normalize(image)
    assert out.dtype == torch.float32
    expected = [(v - m) / s for v, m, s in zip((0, 128, 255), IMAGENET_MEAN, IMAGENET_STD)]
    torch.testing.assert_close(out[:, 0, 0], torch.tensor(expected, dtype=torch.float32))


@pytest.mark.parametrize("h,w", [(240, 320), (320, 240)])
def test_val_transform_on_a_non_square_image(h, w):
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    index_map = rng.integers(0, 6, (h, w)).astype(np.uint8)
    t, l = (h - 240) // 2, (w - 240) // 2
    out_image, out_map = ValTransform(256)(torch.from_numpy(image).permute(2, 0, 1), torch.from_numpy(index_map))
    crop = index_map[t:t + 240, l:l + 240]
    np.testing.assert_array_equal(out_map.numpy(), cv2.resize(crop, (256, 256), interpolation=cv2.INTER_NEAREST_EXACT))
    resized = np.round(_aa_resize_oracle(image[t:t + 240, l:l + 240].transpose(2, 0, 1), 256))
    mean, std = np.array(IMAGENET_MEAN)[:, None, None], np.array(IMAGENET_STD)[:, None, None]
    assert out_image.dtype == torch.float32 and out_image.shape == (3, 256, 256)
    assert np.abs(out_image.numpy() - (resized - mean) / std).max() <= 1.001 / min(IMAGENET_STD)


def _manual_train(image, index_map, seed, size):
    """The train pipeline spelled out: crop box from torch's RNG, flip from python's `random`."""
    torch.manual_seed(seed)
    random.seed(seed)
    h, w = index_map.shape
    top, left, ch, cw = random_resized_crop_params(h, w, square_rescaled_scale(h, w, (0.75, 1.0)))
    img = image[top:top + ch, left:left + cw]
    seg = index_map[top:top + ch, left:left + cw]
    img = resize_image(torch.from_numpy(img.copy()).permute(2, 0, 1), size)
    seg = resize_index_map(torch.from_numpy(seg.copy()), size)
    flip = random.random() <= 0.5
    if flip:
        random.choice([-1])
        img, seg = img.flip(-1), seg.flip(-1)
    return normalize(img), seg, flip, random.getstate()


def test_train_transform_is_crop_resize_flip_normalize():
    rng = np.random.default_rng(9)
    image = rng.integers(0, 256, (60, 80, 3)).astype(np.uint8)
    index_map = rng.integers(0, 4, (60, 80)).astype(np.uint8)
    flips = set()
    for seed in range(8):
        want_image, want_map, flipped, want_state = _manual_train(image, index_map, seed, 32)
        torch.manual_seed(seed)
        random.seed(seed)
        got_image, got_map = TrainTransform(32)(torch.from_numpy(image).permute(2, 0, 1), torch.from_numpy(index_map))
        torch.testing.assert_close(got_image, want_image, rtol=0, atol=0)
        assert torch.equal(got_map, want_map)
        assert random.getstate() == want_state  # the flip drew from `random` exactly as the authors' does
        flips.add(flipped)
    assert flips == {True, False}
