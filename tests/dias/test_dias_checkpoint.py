"""DIAS checkpoints: our state_dict is the authors' (keys_dias.txt), and their layout round-trips strictly.

Listings are checked on the meta device (shapes without values, no initialisation cost).
"""

import pytest
import torch

from harness.nn.checkpoint import CheckpointMismatchError, load_weights, parse_listing, save_weights, state_dict_listing
from harness.registry import create_model


@pytest.mark.parametrize("dataset", ["clevrtex", "coco", "voc"])
def test_state_dict_is_the_authors_listing_exactly(dataset, reference_dir):
    """Keys, shapes, dtypes and order. The slot count is not stored: the three configs share one layout."""
    reference = parse_listing(reference_dir / "keys_dias.txt")
    assert len(reference) == 242 and sum(torch.Size(s).numel() for _, s, _ in reference) == 32_898_176
    with torch.device("meta"):
        model = create_model("dias", dataset)
    assert state_dict_listing(model) == reference


def test_strict_round_trip_of_a_checkpoint_built_from_the_listing(full_dias, reference_dir, tmp_path):
    coco_model = full_dias[0]
    g = torch.Generator().manual_seed(0)
    released = {k: torch.randn(s, generator=g) for k, s, _ in parse_listing(reference_dir / "keys_dias.txt")}
    torch.save(released, tmp_path / "released.pth")
    load_weights(coco_model, tmp_path / "released.pth", strict=True)
    save_weights(coco_model, tmp_path / "ours.pth")
    ours = torch.load(tmp_path / "ours.pth", map_location="cpu", weights_only=True)
    assert list(ours) == list(released)
    assert all(torch.equal(ours[k], v) for k, v in released.items())


def test_loaded_weights_drive_the_forward(tmp_path):
    """A checkpoint is self-contained: two randomly built models agree after one saves and the other loads."""
    torch.manual_seed(1)
    a, b = create_model("dias", "synthetic").eval(), create_model("dias", "synthetic").eval()
    save_weights(a, tmp_path / "a.pth")
    load_weights(b, tmp_path / "a.pth")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.manual_seed(0)
        out_a = a(x)
        torch.manual_seed(0)
        out_b = b(x)
    assert torch.equal(out_a.masks["decoder"], out_b.masks["decoder"])
    assert torch.equal(out_a.extras["recon"], out_b.extras["recon"])


def test_mismatched_released_checkpoint_lists_every_bad_key(full_dias, reference_dir, tmp_path):
    coco_model = full_dias[0]
    state = {k: torch.zeros(s) for k, s, _ in parse_listing(reference_dir / "keys_dias.txt")}
    del state["m.decode.norm0.weight"]
    state["m.decode.backbone.layers.0.norm1.weight"] = torch.zeros(384)  # an unmoved norm1
    state["m.initializ.mean"] = torch.zeros(1, 7, 256)  # NormalSeparat-shaped
    state["m.encode_backbone.1.norm.weight"] = torch.zeros(384)  # a norm_out=True backbone
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointMismatchError) as info:
        load_weights(coco_model, tmp_path / "bad.pth")
    err = info.value
    assert [k for k, _, _ in err.missing] == ["m.decode.norm0.weight"]
    assert sorted(k for k, _, _ in err.unexpected) == ["m.decode.backbone.layers.0.norm1.weight",
                                                       "m.encode_backbone.1.norm.weight"]
    assert err.mismatched == [("m.initializ.mean", (1, 7, 256), (1, 1, 256))]
