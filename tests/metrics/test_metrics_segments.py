"""Attention maps → predicted segments: upsampling against an independent bilinear, first-index tie-breaking,
and the proof that n one-hot channels give the same metrics as the authors' `batch max + 1`."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from metric_oracles import one_hot

from harness.metrics import attention_to_index, attention_to_segments, segmentation_metrics


def bilinear_reference(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Bilinear resize with half-pixel centres (align_corners=False), float64, written from the definition:
    source coordinate (dst + ½)·in/out − ½, clamped at 0, neighbours clamped at the border."""
    *lead, h, w = x.shape

    def axis(n_in, n_out):
        src = np.maximum((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0.0)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, src - lo

    y0, y1, fy = axis(h, out_h)
    x0, x1, fx = axis(w, out_w)
    top = x[..., y0, :][..., :, x0] * (1 - fx) + x[..., y0, :][..., :, x1] * fx
    bottom = x[..., y1, :][..., :, x0] * (1 - fx) + x[..., y1, :][..., :, x1] * fx
    return top * (1 - fy)[:, None] + bottom * fy[:, None]


def first_argmax(x: np.ndarray, axis: int) -> np.ndarray:
    return np.argmax(x, axis=axis)  # numpy documents: first occurrence on ties


def test_upsampling_and_ties_exactly_on_integer_attention():
    """Integer attention on 16² → 256²: the bilinear weights are multiples of 1/32, so float32 and float64
    agree exactly and ties survive; the index must be the first maximal slot, as argmax gives it."""
    rng = np.random.default_rng(0)
    attn = rng.integers(0, 4, (3, 7, 16, 16)).astype(np.float32)  # many exact ties
    reference = bilinear_reference(attn.astype(np.float64), 256, 256)
    got = attention_to_index(torch.from_numpy(attn), 256)
    assert got.dtype == torch.int64 and got.shape == (3, 256, 256)
    assert np.array_equal(got.numpy(), first_argmax(reference, axis=1))
    ties = np.sum(reference == reference.max(1, keepdims=True), axis=1) > 1
    assert ties.sum() > 5000  # the test does exercise tie-breaking


def test_upsampling_to_a_non_square_size_within_float_tolerance():
    rng = np.random.default_rng(1)
    attn = rng.random((2, 5, 7, 9)).astype(np.float32)
    reference = bilinear_reference(attn.astype(np.float64), 20, 30)
    got = attention_to_index(torch.from_numpy(attn), (20, 30)).numpy()
    top2 = np.sort(reference, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 1e-5
    assert clear.mean() > 0.95
    assert np.array_equal(got[clear], first_argmax(reference, axis=1)[clear])


def test_max_indices_break_ties_like_argmax():
    rng = np.random.default_rng(2)
    x = torch.from_numpy(rng.integers(0, 3, (4, 7, 64, 64)).astype(np.float32))
    assert torch.equal(x.max(1).indices, x.argmax(1))
    x16 = x.half()
    assert torch.equal(x16.max(1).indices, x16.argmax(1))
    tied = torch.ones(1, 5, 2, 2)
    assert (attention_to_index(tied, 2) == 0).all()


def test_segments_are_one_hot_over_all_slots():
    rng = np.random.default_rng(3)
    attn = torch.from_numpy(rng.random((2, 6, 4, 4)).astype(np.float32))
    seg = attention_to_segments(attn, 8)
    index = attention_to_index(attn, 8)
    assert seg.dtype == torch.bool and seg.shape == (2, 64, 6)
    assert (seg.sum(-1) == 1).all()
    assert torch.equal(seg.float().argmax(-1), index.flatten(1))


@pytest.mark.parametrize("protocol", ["dias-v3", "exact"])
def test_n_channels_give_the_same_metrics_as_the_authors_batch_max_plus_one(protocol):
    """The authors: one_hot(index) with num_classes = batch max + 1. Ours: n channels. Slots 7–10 never win
    (trailing all-False channels for us only), slot 2 wins nowhere in image 0 (all-False for both). With 11
    vs 7 channels and 12 gt channels the matched IoUs would be summed in a different float32 order unless
    the trailing channels are dropped before the matching: values must be equal to the bit."""
    rng = np.random.default_rng(4)
    attn = torch.from_numpy(rng.random((16, 11, 16, 16)).astype(np.float32))
    attn[:, 7:] -= 2
    attn[0, 2] -= 2
    index = attention_to_index(attn, 64)
    authors = F.one_hot(index.flatten(1)).bool()
    ours = attention_to_segments(attn, 64)
    assert authors.shape[-1] == 7 and ours.shape[-1] == 11
    gt = rng.integers(-1, 12, (16, 64 * 64))
    gt = np.where(rng.random((16, 1)) < 0.5, np.sort(gt, axis=1), gt)
    gt_oh = one_hot(gt, 12)
    a = segmentation_metrics(authors, gt_oh, protocol)
    b = segmentation_metrics(ours, gt_oh, protocol)
    for key in a:
        assert torch.equal(a[key], b[key]), key
