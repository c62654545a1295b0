"""Our baselines' checkpoints are the authors' (docs/reference.md#checkpoints): same keys, shapes and order as the
listings made from their code (tests/reference/keys_*.txt), strict loads of files in that layout, errors that list every
bad key."""

import pytest
import torch

from harness.nn.checkpoint import (
    CheckpointMismatchError,
    checkpoint_state_dict,
    load_weights,
    parse_listing,
    read_weights,
    save_weights,
    state_dict_listing,
)
from harness.registry import METHODS, create_model

# The listings are named after the authors' config of each method's released checkpoints (DIAS's: tests/dias).
LISTINGS = {
    **{name: f"keys_{METHODS.get(name).label('coco')}.txt" for name in METHODS.names()
       if METHODS.get(name).authors_label and name != "dias"},
    "vqvae-c256": "keys_vqvae-coco-c256.txt",
    "vqvae-c4": "keys_vqvae-coco-c4.txt",
}


def meta_model(method, dataset="coco"):
    with torch.device("meta"):
        return create_model(method, dataset)


@pytest.mark.parametrize("method", LISTINGS)
def test_state_dict_equals_the_authors_listing(method, reference_dir):
    assert state_dict_listing(meta_model(method)) == parse_listing(reference_dir / LISTINGS[method])


@pytest.mark.parametrize("method", ["dinosaur", "slate", "slotdiffusion"])
@pytest.mark.parametrize("dataset,slots", [("clevrtex", 11), ("coco", 7), ("voc", 6)])
def test_slot_count_is_the_only_dataset_dependence(method, dataset, slots, reference_dir):
    listing = dict((k, s) for k, s, _ in state_dict_listing(meta_model(method, dataset)))
    reference = dict((k, s) for k, s, _ in parse_listing(reference_dir / LISTINGS[method]))
    assert listing["m.initializ.mean"] == listing["m.initializ.logstd"] == (1, slots, 256)
    differing = {k for k in reference if reference[k] != listing[k]}
    assert differing == ({"m.initializ.mean", "m.initializ.logstd"} if slots != 7 else set())


def random_state(listing, seed=0):
    """Random tensors of the listed shapes and dtypes (SmoothSA's bool `detach_flag` False: its initial value is
    True, so a round trip shows it was loaded)."""
    g = torch.Generator().manual_seed(seed)
    return {k: torch.zeros(shape, dtype=torch.bool) if dtype == "bool" else torch.randn(shape, generator=g)
            for k, shape, dtype in listing}


@pytest.mark.parametrize("method", LISTINGS)
def test_strict_round_trip_of_a_checkpoint_in_the_listed_layout(method, reference_dir, full_model, tmp_path):
    """A checkpoint made only from the listing (random tensors of the listed shapes) loads strictly; saving gives
    back the same keys, order and values. Through files for the small models; in memory for the large ones
    (the same functions minus ~1 GB of disk traffic)."""
    listing = parse_listing(reference_dir / LISTINGS[method])
    state = random_state(listing)
    model = full_model(method)
    original = {k: v.clone() for k, v in model.state_dict().items()}  # the model is shared by other tests
    try:
        if method in ("slate", "slotdiffusion"):
            load_weights(model, state)
            back = checkpoint_state_dict(model)
        else:
            torch.save(state, tmp_path / "theirs.pth")
            load_weights(model, tmp_path / "theirs.pth")
            save_weights(model, tmp_path / "ours.pth")
            back = read_weights(tmp_path / "ours.pth")
    finally:
        model.load_state_dict(original)
    assert list(back) == [k for k, _, _ in listing]
    for k in state:
        assert torch.equal(back[k], state[k]), k


def test_mismatch_lists_every_bad_key(reference_dir, full_model, tmp_path):
    listing = parse_listing(reference_dir / LISTINGS["slate"])
    state = random_state(listing)
    del state["m.decode.bos"]
    del state["m.mediat.codebook.templat.weight"]
    state["m.decode.readout.bias"] = torch.zeros(4096)
    state["m.initializ.mean"] = torch.zeros(1, 11, 256)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointMismatchError) as info:
        load_weights(full_model("slate"), path)
    message = str(info.value)
    assert str(path) in message
    for key in ("m.decode.bos", "m.mediat.codebook.templat.weight", "m.decode.readout.bias", "m.initializ.mean"):
        assert key in message
    assert "(1, 11, 256)" in message and "(1, 7, 256)" in message
