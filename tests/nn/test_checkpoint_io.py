"""Checkpoint I/O in the authors' "m." layout, the keys_*.txt listing format, and ckpt_map loading by order."""

import os
from pathlib import Path

import pytest
import torch
from torch import nn

from harness.errors import HarnessError
from harness.nn.checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    format_listing,
    load_by_prefix_order,
    load_weights,
    parse_listing,
    read_weights,
    save_weights,
    state_dict_listing,
)
from harness.nn.dinov2 import DinoV2Spec, make_encoder


class Toy(nn.Module):
    def __init__(self, width: int = 4):
        super().__init__()
        self.encode = nn.Sequential(nn.Linear(3, width), nn.LayerNorm(width))
        self.head = nn.Linear(width, 2, bias=False)
        self.register_buffer("steps", torch.tensor(3, dtype=torch.long))


def test_save_then_load_round_trip(tmp_path):
    a, b = Toy(), Toy()
    a.half()
    path = tmp_path / "sub" / "w.pth"
    save_weights(a, path)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert list(raw) == ["m.steps", "m.encode.0.weight", "m.encode.0.bias", "m.encode.1.weight",
                         "m.encode.1.bias", "m.head.weight"]
    assert all(v.dtype == torch.float32 for k, v in raw.items() if k != "m.steps")
    assert raw["m.steps"].dtype == torch.long and raw["m.steps"].item() == 3
    assert all(v.device.type == "cpu" for v in raw.values())
    load_weights(b, path)
    assert all(torch.equal(v.float(), a.state_dict()[k].float()) for k, v in b.state_dict().items())
    assert [p.name for p in path.parent.iterdir()] == ["w.pth"]  # nothing temporary left behind


def test_saved_views_do_not_carry_their_base_storage(tmp_path):
    """pos_embed of the reg4 backbone is a slice of HF's (1, 1+g², c) table: the file must hold only the slice."""
    encoder = make_encoder(DinoV2Spec(hidden=32, layers=1, heads=2, patch=4, image_size=16), False, 1.0)
    save_weights(encoder, tmp_path / "e.pth")
    pos = torch.load(tmp_path / "e.pth", weights_only=True)["m.1.pos_embed"]
    assert pos.shape == (1, 16, 32) and pos.untyped_storage().nbytes() == 16 * 32 * 4


def test_mismatch_keeps_every_bad_key_and_summarises_them_in_at_most_ten_lines(tmp_path):
    model = Toy()
    state = {"m." + k: v for k, v in model.state_dict().items()}
    del state["m.encode.1.bias"], state["m.steps"]
    state["m.extra"] = torch.zeros(5)
    state["m.head.weight"] = torch.zeros(3, 4)
    state["m.encode.0.weight"] = torch.zeros(4, 2)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointMismatchError) as info:
        load_weights(model, path)
    err = info.value
    assert isinstance(err, HarnessError)
    assert [k for k, _, _ in err.missing] == ["m.steps", "m.encode.1.bias"]
    assert [k for k, _, _ in err.unexpected] == ["m.extra"]
    assert err.mismatched == [("m.encode.0.weight", (4, 2), (4, 3)), ("m.head.weight", (3, 4), (2, 4))]
    text = str(err)
    assert str(path) in text and "does not fit Toy: 2 missing, 1 unexpected, 2 mis-shaped" in text
    for line in ["  missing: m.steps (); m.encode.1.bias (4,)", "  unexpected: m.extra (5,)",
                 "  mis-shaped: m.encode.0.weight checkpoint (4, 2) model (4, 3); m.head.weight checkpoint (3, 4) "
                 "model (2, 4)"]:
        assert line in text.splitlines()


def test_a_checkpoint_of_another_model_is_summarised_not_listed():
    model, other = Toy(), torch.nn.Sequential(*[torch.nn.Linear(3, 3) for _ in range(40)])
    state = {"m." + k: v for k, v in other.state_dict().items()}
    with pytest.raises(CheckpointMismatchError) as info:
        load_weights(model, state, described="toy (synthetic config)")
    lines = str(info.value).splitlines()
    assert len(lines) <= 10 and len(info.value.unexpected) == 80
    assert lines[0].startswith("checkpoint <state_dict> does not fit toy (synthetic config): 6 missing, 80 unexpected")
    assert lines[2] == "  unexpected: m.0.weight (3, 3); m.0.bias (3,); m.1.weight (3, 3) … and 77 more"


def test_keys_without_the_m_prefix_are_unexpected():
    model = Toy()
    own = model.state_dict()
    with pytest.raises(CheckpointMismatchError) as info:
        load_weights(model, own)
    assert len(info.value.unexpected) == len(own) and len(info.value.missing) == len(own)
    assert "<state_dict>" in str(info.value)


def test_non_strict_tolerates_missing_but_never_wrong_shapes():
    model = Toy()
    state = {"m.head.weight": torch.ones(2, 4)}
    result = load_weights(model, state, strict=False)
    assert torch.equal(model.head.weight, torch.ones(2, 4)) and "head.weight" not in result.missing_keys
    with pytest.raises(CheckpointMismatchError):
        load_weights(model, {"m.head.weight": torch.ones(4, 2)}, strict=False)


def test_unreadable_files_are_harness_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        read_weights(tmp_path / "absent.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pth is not a torch checkpoint") as info:
        read_weights(tmp_path / "junk.pth")
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pth is empty"):
        read_weights(tmp_path / "empty.pth")
    save_weights(Toy(), tmp_path / "whole.pth")
    (tmp_path / "cut.pth").write_bytes((tmp_path / "whole.pth").read_bytes()[:300])
    with pytest.raises(CheckpointError, match="cut.pth is truncated or corrupt") as cut:
        read_weights(tmp_path / "cut.pth")
    torch.save({"m.x": torch.zeros(1), "note": object.__new__(Toy)}, tmp_path / "objects.pth")
    with pytest.raises(CheckpointError, match="holds Python objects other than tensors") as objects:
        read_weights(tmp_path / "objects.pth")
    for e in (info, cut, objects):  # torch's advice to load unsafely never reaches the user
        assert "weights_only=False" not in str(e.value) and len(str(e.value).splitlines()) == 1
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="not a plain state_dict"):
        read_weights(tmp_path / "list.pth")


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "w.pth"
    save_weights(Toy(), path)
    before = path.read_bytes()

    real_write = Path.write_bytes

    def broken(self, data):
        real_write(self, data[: len(data) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_bytes", broken)
    with pytest.raises(OSError):
        save_weights(Toy(), path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["w.pth"]


def test_listing_format_parses_back_and_reads_reference_files(tmp_path, reference_dir):
    listing = state_dict_listing(Toy())
    assert listing[0] == ("m.steps", (), "int64") and listing[1] == ("m.encode.0.weight", (4, 3), "float32")
    text = format_listing(listing)
    assert "m.encode.0.bias (4,) float32\n" in text
    (tmp_path / "k.txt").write_text("# header\n" + text)
    assert parse_listing(tmp_path / "k.txt") == listing
    for path in sorted(reference_dir.glob("keys_*.txt")):
        rows = parse_listing(path)
        header = [line for line in path.read_text().splitlines() if line.startswith("# total keys")][0].split()
        assert len(rows) == int(header[3]), path.name
        assert sum(torch.Size(s).numel() for _, s, _ in rows) == int(header[6]), path.name
    (tmp_path / "bad.txt").write_text("m.a (1, 2) float32\nm.b 1,2 float32\n")
    with pytest.raises(CheckpointError, match=r"bad.txt:2"):
        parse_listing(tmp_path / "bad.txt")


def test_load_by_prefix_order_matches_by_position_not_name():
    """The authors' ckpt_map: target keys receive source values in order, whatever the names after the prefix."""
    source = nn.Module()
    source.encode = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    source.codebook = nn.Embedding(5, 4)
    target = nn.Module()
    target.mediat = nn.Module()
    target.mediat.encode = nn.Sequential(nn.Identity(), nn.Linear(3, 4), nn.LayerNorm(4))  # other indices
    target.mediat.codebook = nn.Module()
    target.mediat.codebook.templat = nn.Embedding(5, 4)
    target.other = nn.Linear(2, 2)
    other_before = target.other.weight.detach().clone()
    ckpt = {"m." + k: v for k, v in source.state_dict().items()}
    loaded = load_by_prefix_order(target, ckpt, [("mediat.encode.", "encode."), ("mediat.codebook.", "codebook.")])
    assert loaded == [("mediat.encode.1.weight", "encode.0.weight"), ("mediat.encode.1.bias", "encode.0.bias"),
                      ("mediat.encode.2.weight", "encode.1.weight"), ("mediat.encode.2.bias", "encode.1.bias"),
                      ("mediat.codebook.templat.weight", "codebook.weight")]
    assert torch.equal(target.mediat.encode[1].weight, source.encode[0].weight)
    assert torch.equal(target.mediat.codebook.templat.weight, source.codebook.weight)
    assert torch.equal(target.other.weight, other_before)


def test_load_by_prefix_order_errors():
    a, b = Toy(), Toy(width=5)
    with pytest.raises(CheckpointError, match=r"0 model key\(s\) vs"):
        load_by_prefix_order(a, a.state_dict(), [("nothing.", "encode.")])
    with pytest.raises(CheckpointError, match=r"2 model key\(s\) vs 4"):
        load_by_prefix_order(a, b.state_dict(), [("encode.0.", "encode.")])
    with pytest.raises(CheckpointError, match="shapes differ"):
        load_by_prefix_order(a, b.state_dict(), [("encode.", "encode.")])


def test_load_by_prefix_order_reaches_parameters_behind_state_dict_hooks():
    """The DINOv2 backbone exports derived tensors (qkv concatenation): loading must still reach its parameters."""
    spec = DinoV2Spec(hidden=32, layers=1, heads=2, patch=4, image_size=16)
    src, dst = make_encoder(spec, False, 1.0), make_encoder(spec, False, 1.0)
    load_by_prefix_order(dst, src.state_dict(), [("1.blocks.", "1.blocks.")])
    assert torch.equal(dst[1].hf.encoder.layer[0].attention.k_proj.weight,
                       src[1].hf.encoder.layer[0].attention.k_proj.weight)
    assert not torch.equal(dst.state_dict()["1.cls_token"], src.state_dict()["1.cls_token"])
