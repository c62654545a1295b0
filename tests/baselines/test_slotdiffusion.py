"""SlotDiffusion as the authors' VVO port (docs/reference.md#slotdiffusion)."""

import torch
import torch.nn.functional as F

from baselines.slotdiffusion import SCHEDULER
from harness.registry import create_model, get_config


def test_full_size_forward_on_one_image(full_model):
    model = full_model("slotdiffusion").eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 256, 256))
    assert out.slots.shape == (1, 7, 256) and out.masks["aggregator"].shape == (1, 7, 16, 16)
    assert out.extras["recon"].shape == out.extras["noise"].shape == (1, 4, 16, 16)
    assert torch.allclose(out.losses["recon"], F.mse_loss(out.extras["recon"], out.extras["noise"]))
    assert model.decode.backbone.config.block_out_channels == (128, 256, 384, 512)
    c = get_config("slotdiffusion", "voc")
    assert (c.stage, c.eval.mask, c.num_slots, c.unet_dropout) == ("vqvae-c4", "aggregator", 6, 0.1)


def test_scheduler_is_the_authors():
    config = create_model("slotdiffusion", "synthetic").decode.scheduler.config
    want = dict(beta_schedule="scaled_linear", beta_start=0.0015, beta_end=0.0195, num_train_timesteps=1000,
                prediction_type="epsilon", clip_sample=False, steps_offset=1, timestep_spacing="leading",
                variance_type="fixed_small")
    assert {k: config[k] for k in want} == want
    assert SCHEDULER["beta_schedule"] == "scaled_linear"


def test_decoder_noises_the_latent_and_predicts_with_slot_conditioning():
    """With the RNG replayed: t ~ U{0..999} then ε ~ N(0,1); noisy = √ᾱ_t·x + √(1−ᾱ_t)·ε with the scaled-linear
    ᾱ computed here by hand; the prediction is the UNet on (noisy, t, slots)."""
    torch.manual_seed(0)
    dec = create_model("slotdiffusion", "synthetic").decode.eval()
    latent, slots = torch.randn(3, 4, 8, 8), torch.randn(3, 5, 64)
    torch.manual_seed(1)
    pred, noise = dec(latent, slots)
    torch.manual_seed(1)
    t = torch.randint(0, 1000, (3,))
    eps = torch.randn_like(latent)
    assert torch.equal(noise, eps)
    betas = torch.linspace(0.0015**0.5, 0.0195**0.5, 1000, dtype=torch.float64) ** 2
    abar = torch.cumprod(1 - betas, 0)[t].float()[:, None, None, None]
    noisy = abar.sqrt() * latent + (1 - abar).sqrt() * eps
    with torch.no_grad():
        assert torch.allclose(pred, dec.backbone(noisy, t, slots).sample, atol=1e-5)
        assert not torch.allclose(pred, dec.backbone(noisy, t, slots * 2).sample, atol=1e-3)


def test_gradients_reach_the_slots_not_the_tokenizer():
    torch.manual_seed(0)
    model = create_model("slotdiffusion", "synthetic")
    out = model(torch.randn(2, 3, 32, 32))
    out.losses["recon"].backward()
    assert all(p.grad is None for p in model.mediat.parameters())
    assert all(p.grad is None for p in model.encode_backbone.parameters())
    assert model.aggregat.proj_q.weight.grad.abs().sum() > 0
