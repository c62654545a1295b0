"""SLATE as the authors' VVO port (docs/reference.md#slate)."""

import copy

import torch
import torch.nn.functional as F

from harness.registry import create_model, get_config


def test_full_size_forward_on_one_image(full_model):
    model = full_model("slate").eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 256, 256))
    assert out.slots.shape == (1, 7, 256) and set(out.masks) == {"aggregator"}
    assert out.masks["aggregator"].shape == (1, 7, 16, 16)
    assert out.extras["zidx"].shape == (1, 16, 16) and out.extras["recon"].shape == (1, 4096, 16, 16)
    assert torch.allclose(out.losses["recon"], F.cross_entropy(out.extras["recon"], out.extras["zidx"]))
    c = get_config("slate", "coco")
    assert (c.stage, c.eval.mask) == ("vqvae-c256", "aggregator")
    assert c.train.freeze == [r"encode_backbone\..*", r"mediat\..*"]


def test_decoder_is_causal_and_shifted_by_bos():
    torch.manual_seed(0)
    dec = create_model("slate", "synthetic").decode.eval()
    target, slots = torch.randn(2, 64, 64), torch.randn(2, 5, 64)
    base = dec(target, slots)
    j = 20
    changed = target.clone()
    changed[:, j] += 1
    diff = (dec(changed, slots) - base).abs().amax((0, 2))
    assert (diff[: j + 1] == 0).all() and (diff[j + 1:] > 0).all()  # position i sees targets < i only
    assert (dec(target, slots + 1)[:, 0] != base[:, 0]).any()  # ... and the slots everywhere


def test_norm0_is_layer0_first_norm_moved_out():
    """The authors move layer 0's norm1 in front of the stack: the query is normalised once and layer 0's residual
    stream starts from the normalised query (not the same as a plain pre-norm stack). Assembled by hand here with
    torch's own float causal mask."""
    torch.manual_seed(0)
    dec = create_model("slate", "synthetic").decode.eval()
    assert isinstance(dec.backbone.layers[0].norm1, torch.nn.Identity)
    assert not isinstance(dec.backbone.layers[1].norm1, torch.nn.Identity) and dec.norm0.bias is None
    target, slots = torch.randn(2, 64, 64), torch.randn(2, 5, 64)
    query = torch.cat([dec.bos.expand(2, -1, -1), target[:, :-1]], 1) + dec.posit_embed.pe
    mask = torch.nn.Transformer.generate_square_subsequent_mask(64)
    want = dec.readout(dec.backbone(dec.norm0(query), slots, tgt_mask=mask))
    assert torch.allclose(dec(target, slots), want, atol=1e-5)
    plain = copy.deepcopy(dec.backbone)
    plain.layers[0].norm1 = dec.norm0
    assert not torch.allclose(dec.readout(plain(query, slots, tgt_mask=mask)), want, atol=1e-3)


def test_loss_is_cross_entropy_of_the_codes():
    torch.manual_seed(0)
    model = create_model("slate", "synthetic")
    out = model(torch.randn(2, 3, 32, 32))
    logits, zidx = out.extras["recon"], out.extras["zidx"]
    picked = logits.log_softmax(1).gather(1, zidx[:, None])
    assert torch.allclose(out.losses["recon"], -picked.mean(), atol=1e-6)
    out.losses["recon"].backward()
    assert all(p.grad is None for p in model.mediat.parameters())
    assert model.aggregat.proj_q.weight.grad.abs().sum() > 0
