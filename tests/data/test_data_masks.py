"""Per-dataset mask rules (docs/reference.md#data-format) on hand-made index maps with hand-written expected channels.
"""

import torch

from harness.data.collate import collate
from harness.data.masks import clevrtex_masks, coco_instance_masks, voc_masks

T, F = True, False


def _m(*rows):
    return torch.tensor(rows, dtype=torch.uint8)


def _channels(masks):
    return [masks[:, :, i].tolist() for i in range(masks.shape[2])]


def test_clevrtex_keeps_background_and_empty_channels():
    masks = clevrtex_masks(_m([0, 0, 2], [2, 0, 0]))
    assert masks.dtype == torch.bool
    assert _channels(masks) == [
        [[T, T, F], [F, T, T]],  # 0: background
        [[F, F, F], [F, F, F]],  # 1: cropped away, kept (no removal in v3)
        [[F, F, T], [T, F, F]],
    ]


def test_clevrtex_channel_count_is_max_index_plus_one():
    assert clevrtex_masks(_m([0, 1], [1, 0])).shape == (2, 2, 2)
    assert clevrtex_masks(_m([0, 0], [0, 0])).shape == (2, 2, 1)


def test_voc_drops_boundary_and_empty_channels():
    index_map = _m([0, 1, 1], [1, 3, 3], [0, 3, 1])  # 0 boundary, 1 background, 2 absent, 3 object
    assert _channels(voc_masks(index_map)) == [
        [[F, T, T], [T, F, F], [F, F, T]],  # background first
        [[F, F, F], [F, T, T], [F, T, F]],
    ]


def test_voc_without_background_puts_an_object_first():
    assert _channels(voc_masks(_m([0, 2], [2, 3]))) == [[[F, T], [T, F]], [[F, F], [F, T]]]


def test_coco_stuff_union_first_then_things_in_index_order():
    # 0 VOID; 1 stuff, 2 thing, 3 stuff, 4 thing, 5 thing (absent after a crop)
    isthing = torch.tensor([F, T, F, T, T])
    index_map = _m([0, 1, 2, 2], [3, 3, 4, 0], [1, 4, 4, 0])
    assert _channels(coco_instance_masks(index_map, isthing)) == [
        [[F, T, F, F], [T, T, F, F], [T, F, F, F]],  # stuff 1 ∪ stuff 3
        [[F, F, T, T], [F, F, F, F], [F, F, F, F]],  # thing 2
        [[F, F, F, F], [F, F, T, F], [F, T, T, F]],  # thing 4; VOID pixels are in no channel
    ]


def test_coco_without_stuff_has_an_empty_first_channel():
    masks = coco_instance_masks(_m([0, 1], [2, 2]), torch.tensor([T, T]))
    assert _channels(masks) == [[[F, F], [F, F]], [[F, T], [F, F]], [[F, F], [T, T]]]


def test_coco_only_stuff_and_no_segments():
    assert _channels(coco_instance_masks(_m([1, 2], [0, 1]), torch.tensor([F, F]))) == [[[T, T], [F, T]]]
    assert _channels(coco_instance_masks(_m([0, 0], [0, 0]), torch.zeros(0, dtype=torch.bool))) == [
        [[F, F], [F, F]]]


def test_collate_pads_slots_with_false():
    a = {"image": torch.zeros(3, 2, 2), "segment": torch.ones(2, 2, 1, dtype=torch.bool)}
    b = {"image": torch.ones(3, 2, 2), "segment": torch.ones(2, 2, 3, dtype=torch.bool)}
    batch = collate([a, b])
    assert batch["image"].shape == (2, 3, 2, 2) and batch["image"].dtype == torch.float32
    assert batch["segment"].shape == (2, 2, 2, 3) and batch["segment"].dtype == torch.bool
    assert batch["segment"][0, :, :, 0].all() and not batch["segment"][0, :, :, 1:].any()
    assert batch["segment"][1].all()
