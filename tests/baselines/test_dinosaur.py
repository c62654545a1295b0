"""DINOSAUR as the authors' VVO port (docs/reference.md#dinosaur)."""

import torch
import torch.nn.functional as F

from harness.recipes import random_vit as synthetic
from harness.registry import create_model, get_config


def test_full_size_forward_on_one_image(full_model):
    model = full_model("dinosaur").eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 256, 256))
    assert out.slots.shape == (1, 7, 256)
    assert out.masks["decoder"].shape == out.masks["aggregator"].shape == (1, 7, 16, 16)
    assert out.extras["feature"].shape == out.extras["recon"].shape == (1, 384, 16, 16)
    assert torch.allclose(out.losses["recon"], F.mse_loss(out.extras["recon"], out.extras["feature"]))


def test_configs():
    for dataset, n in (("clevrtex", 11), ("coco", 7), ("voc", 6)):
        c = get_config("dinosaur", dataset)
        assert (c.num_slots, c.eval.mask, c.train.steps, c.train.batch_size, c.train.lr) == (n, "decoder", 50_000,
                                                                                              32, 2e-4)
        assert (c.backbone.registers, c.backbone.hidden, c.backbone.patch, c.backbone_scale) == (0, 384, 14, 0.875)
        assert c.train.warmup_steps == 2500 and c.train.val_interval == 1250 and c.train.save_since == 25_000
        assert c.train.freeze == [r"encode_backbone\..*"]
    assert get_config("dinosaur", "synthetic").feature_side == synthetic.RESOLUTION // synthetic.backbone(0).patch


def test_broadcast_decoder_against_a_per_slot_loop():
    torch.manual_seed(0)
    model = create_model("dinosaur", "synthetic").eval()
    n, tokens = 5, model.decode.posit_embed.pe.shape[1]
    slots = torch.randn(2, n, 64)
    recon, alpha = model.decode(slots, tokens)
    dec = model.decode
    outs = [dec.backbone(slots[:, s, None, :] + dec.posit_embed.pe) for s in range(n)]  # (b, tokens, 65) each
    logits = torch.stack([o[..., -1] for o in outs], 1)
    want_alpha = logits.softmax(1)
    want = sum(want_alpha[:, s, :, None] * outs[s][..., :-1] for s in range(n))
    assert torch.allclose(alpha, want_alpha, atol=1e-6) and torch.allclose(recon, want, atol=1e-5)
    assert torch.allclose(alpha.sum(1), torch.ones(2, tokens))


def test_slot_noise_only_in_training_and_frozen_backbone_gets_no_gradient():
    torch.manual_seed(0)
    model = create_model("dinosaur", "synthetic")
    images = torch.randn(2, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        a, b = model(images).masks["decoder"], model(images).masks["decoder"]
    assert torch.equal(a, b)
    model.train()
    out = model(images)
    assert not torch.equal(out.masks["decoder"], a)
    out.losses["recon"].backward()
    assert all(p.grad is None for p in model.encode_backbone.parameters())
    assert model.initializ.mean.grad.abs().sum() > 0 and model.encode_project[1].weight.grad.abs().sum() > 0


def test_biases_zeroed_as_the_authors_reset_parameters():
    model = create_model("dinosaur", "synthetic")
    for module in (model.encode_project, model.aggregat):
        for name, p in module.named_parameters():
            if name.endswith(("bias", "bias_ih", "bias_hh")) and "norm" not in name:
                assert not p.any(), name
    assert model.decode.backbone[0].bias.any()  # the decoder keeps PyTorch's init
