"""The paper's extension (not the released code): redundancy reduction and re-initialised aggregation."""

import pytest
import torch
from torch import nn

from dias.extension import ExtensionConfig, redundancy_mask, restrict_to_slots, soft_iou
from harness.errors import HarnessError
from harness.registry import create_model


def test_soft_iou_by_hand():
    maps = torch.tensor([[[0.5, 0.5, 0.0, 0.0],
                          [0.5, 0.5, 0.0, 0.0],
                          [0.25, 0.0, 1.0, 0.0]]])
    iou = soft_iou(maps)
    assert iou[0, 0, 1] == 1.0
    assert iou[0, 0, 2].item() == pytest.approx(0.25 / (0.5 + 0.5 + 1.0))
    assert torch.allclose(iou, iou.transpose(1, 2))


def test_iou_criterion_drops_the_duplicate_of_a_heavier_slot():
    maps = torch.tensor([[[0.4, 0.4, 0.0, 0.0, 0.1],    # slot 0
                          [0.0, 0.0, 0.9, 0.9, 0.1],    # slot 1: heaviest
                          [0.4, 0.4, 0.0, 0.0, 0.1],    # duplicate of slot 0 → dropped (visited after 0)
                          [0.2, 0.2, 0.1, 0.1, 0.1]]])  # lightest; IoU with slot 0 = 0.5/1.1, with 1 = 0.3/2.3
    assert redundancy_mask(maps, "iou", 0.5).tolist() == [[True, True, False, True]]
    assert redundancy_mask(maps, "iou", 0.2).tolist() == [[True, True, False, False]]
    assert redundancy_mask(maps, "iou", 1.0).tolist() == [[True] * 4]


def test_mass_criterion_and_the_heaviest_slot_is_always_kept():
    maps = torch.tensor([[[0.7, 0.7], [0.2, 0.3], [0.1, 0.0]],
                         [[0.3, 0.3], [0.3, 0.3], [0.4, 0.4]]])
    assert redundancy_mask(maps, "mass", 0.1).tolist() == [[True, True, False], [True, True, True]]
    assert redundancy_mask(maps, "mass", 1.0).tolist() == [[True, False, False], [False, False, True]]


def test_restriction_is_the_softmax_over_kept_logits():
    logits = torch.randn(2, 4, 6)
    smask = torch.tensor([[True, False, True, True], [False, True, True, False]])
    restricted = restrict_to_slots(logits.softmax(1), smask)
    expected = logits.masked_fill(~smask[:, :, None], -torch.inf).softmax(1)
    assert torch.allclose(restricted, expected, atol=1e-6)


def test_config_validation():
    with pytest.raises(HarnessError, match="criterion"):
        ExtensionConfig(criterion="cosine")
    with pytest.raises(HarnessError, match="threshold"):
        ExtensionConfig(threshold=1.5)
    with pytest.raises(HarnessError, match="reinit_iters"):
        ExtensionConfig(reinit_iters=0)
    assert not ExtensionConfig().active and ExtensionConfig(reinit=True).active


class FixedSlots(nn.Module):
    """An initialiser returning given slots: slot 1 duplicates slot 0, so Slot Attention keeps them identical."""

    def __init__(self, slots):
        super().__init__()
        self.slots = slots

    def forward(self, b):
        return self.slots.expand(b, -1, -1)


def model_with(extension: dict, duplicate: bool = True):
    torch.manual_seed(0)
    overrides = {f"extension.{k}": v for k, v in extension.items()}
    model = create_model("dias", "synthetic", **overrides).eval()
    slots = torch.randn(1, 5, 64)
    if duplicate:
        slots[:, 1] = slots[:, 0]
    model.initializ = FixedSlots(slots)
    return model


@pytest.mark.parametrize("reinit", [True, False])
def test_duplicate_slot_is_dropped_from_attention_and_decoding(reinit):
    model = model_with({"prune": True, "criterion": "iou", "threshold": 0.9, "reinit": reinit})
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    smask = out.extras["smask"]
    assert smask.sum(1).tolist() == [4, 4] and not (smask[:, 0] & smask[:, 1]).any()
    dropped = ~smask
    g = out.masks["decoder"].shape[-1]
    hidden = dropped.view(2, 1, 1, 5).expand(-1, g, g, -1)
    assert out.masks["aggregator"].permute(0, 2, 3, 1)[hidden].abs().max() == 0
    assert out.masks["decoder"].permute(0, 2, 3, 1)[hidden].abs().max() == 0
    assert torch.allclose(out.masks["aggregator"].sum(1), torch.ones(2, g, g), atol=1e-5)
    assert torch.allclose(out.masks["decoder"].sum(1), torch.ones(2, g, g), atol=1e-5)
    assert len(out.extras["attenta"]) == (6 if reinit else 3)


def test_reinit_runs_extra_iterations_from_the_aggregated_slots():
    model = model_with({"reinit": True, "reinit_iters": 2})
    released = model_with({})
    with torch.no_grad():
        images = torch.randn(2, 3, 32, 32)
        out, ref = model(images), released(images)
        encode = released.encode_project(ref.extras["feature"].flatten(2).transpose(1, 2))
        slots, maps = released.aggregat(encode, ref.slots, num_iter=2)
    assert "smask" not in out.extras  # no pruning: every slot stays
    assert len(out.extras["attenta"]) == 5
    assert all(torch.equal(a, b) for a, b in zip(out.extras["attenta"][:3], ref.extras["attenta"]))
    assert torch.allclose(out.slots, slots, atol=1e-6)
    assert torch.allclose(out.masks["aggregator"].flatten(2), maps[-1], atol=1e-6)
    assert out.losses["distill"].item() == pytest.approx(
        torch.nn.functional.cross_entropy(out.extras["attenta"][0], out.extras["attenta"][-1]).item(), rel=1e-6)


def test_extension_off_is_the_released_path_exactly():
    images = torch.randn(2, 3, 32, 32)
    off = model_with({"prune": False, "reinit": False}, duplicate=False).train()
    released = model_with({}, duplicate=False).train()
    released.load_state_dict(off.state_dict())
    keep_all = model_with({"prune": True, "criterion": "mass", "threshold": 0.0}, duplicate=False).train()
    keep_all.load_state_dict(off.state_dict())
    outs = []
    for model in (off, released, keep_all):
        torch.manual_seed(3)
        with torch.no_grad():
            outs.append(model(images))
    a, b, c = outs
    for key in ("recon", "attentd", "feature"):
        assert torch.equal(a.extras[key], b.extras[key])
    assert torch.equal(a.slots, b.slots) and a.losses["recon"] == b.losses["recon"]
    # pruning that drops nothing changes nothing but float round-off (an all-False padding mask)
    assert c.extras["smask"].all()
    assert torch.allclose(a.extras["recon"], c.extras["recon"], atol=1e-5)
    assert torch.allclose(a.extras["attentd"], c.extras["attentd"], atol=1e-6)


def test_released_checkpoint_loads_with_the_extension_on():
    """No new parameters: the checkpoint layout is the same with the extension on."""
    on = create_model("dias", "synthetic", **{"extension.prune": True, "extension.reinit": True})
    off = create_model("dias", "synthetic")
    assert [(k, v.shape) for k, v in on.state_dict().items()] == [(k, v.shape) for k, v in off.state_dict().items()]
