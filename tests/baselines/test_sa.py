"""Vanilla Slot Attention (Locatello et al. 2020)."""

import pytest
import torch
import torch.nn.functional as F

from baselines.common import BaselineConfigError
from baselines.sa import BroadcastCNNDecoder, coordinate_grid
from harness.nn.checkpoint import load_weights, save_weights
from harness.recipes import random_vit as synthetic
from harness.registry import create_model, get_config


def test_coordinate_grid():
    g = coordinate_grid(3, 5)
    assert g.shape == (3, 5, 4)
    assert g[0, 0].tolist() == [0, 0, 1, 1] and g[2, 4].tolist() == [1, 1, 0, 0]
    assert torch.allclose(g[1, 2], torch.tensor([0.5, 0.5, 0.5, 0.5]))


def test_full_size_forward_resizes_to_128_and_masks_stay_there(full_model):
    model = full_model("sa")
    torch.manual_seed(0)
    with torch.no_grad():
        out = model(torch.randn(1, 3, 256, 256))
    assert out.slots.shape == (1, 7, 64)
    assert out.masks["decoder"].shape == out.masks["aggregator"].shape == (1, 7, 128, 128)
    c = get_config("sa", "clevrtex")
    assert (c.num_slots, c.internal_resolution, c.eval.mask, c.eval.resolution) == (11, 128, "decoder", 256)


def test_reconstruction_is_the_alpha_mixture_of_slot_images():
    torch.manual_seed(0)
    model = create_model("sa", "synthetic")
    images = torch.randn(2, 3, 32, 32)
    out = model(images)
    alpha = out.masks["decoder"]
    assert alpha.shape == (2, synthetic.SLOTS, 32, 32) and torch.allclose(alpha.sum(1), torch.ones(2, 32, 32), atol=1e-6)
    recon = (alpha[:, :, None] * out.extras["rgb"]).sum(1)
    assert torch.allclose(out.extras["recon"], recon, atol=1e-6)
    assert torch.allclose(out.losses["recon"], F.mse_loss(recon, images))
    assert torch.allclose(out.masks["aggregator"].sum(1), torch.ones(2, 32, 32), atol=1e-5)


def test_decoder_needs_a_power_of_two_upsampling():
    with pytest.raises(BaselineConfigError, match="power of 2"):
        BroadcastCNNDecoder(64, 32, 5, 8, 48)


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    a = create_model("sa", "synthetic").eval()
    save_weights(a, tmp_path / "sa.pth")
    torch.manual_seed(1)
    b = create_model("sa", "synthetic").eval()
    load_weights(b, tmp_path / "sa.pth")
    images = torch.randn(2, 3, 32, 32)
    outs = []
    for model in (a, b):
        torch.manual_seed(2)  # the shared Gaussian initialiser samples at evaluation too (Locatello's)
        with torch.no_grad():
            outs.append(model(images))
    assert torch.equal(outs[0].masks["decoder"], outs[1].masks["decoder"])
    assert torch.equal(outs[0].losses["recon"], outs[1].losses["recon"])
