"""VQ-VAE stages (docs/reference.md#vq-vae-tokenizers): TAESD slicing, nearest-code matching, straight-through losses,
the stage → method hand-over by the authors' ckpt_map, configs, LPIPS from a local file."""

import dataclasses
import re

import pytest
import torch
import torch.nn.functional as F
from diffusers import AutoencoderTiny

from baselines.common import BaselineConfigError
from baselines.lpips import LPIPS, LPIPSWeightsError
from baselines.taesd import TaesdDecoder, TaesdEncoder, TaesdSpec
from baselines.vqvae import FROZEN_PRETRAINED_TAESD, STAGE_CKPT_MAP, VQVAE, Codebook, stage_config, synthetic_tokenizer
from harness.nn.checkpoint import CheckpointError, checkpoint_state_dict
from harness.registry import METHODS, create_model, get_config

SMALL = TaesdSpec(width=16, encoder_blocks=(1, 2, 1), decoder_blocks=(1, 2, 1))


def test_taesd_slices_are_diffusers_encoder_and_decoder_minus_their_ends():
    """Our encoder + diffusers' final conv = diffusers' EncoderTiny (which maps x→(x+1)/2 itself); diffusers'
    conv_in + ReLU + our decoder = DecoderTiny on the tanh-clamped latent (both output ·2−1)."""
    torch.manual_seed(0)
    ae = AutoencoderTiny(encoder_block_out_channels=(16,) * 3, decoder_block_out_channels=(16,) * 3,
                         num_encoder_blocks=(1, 2, 1), num_decoder_blocks=(1, 2, 1)).eval()
    enc, dec = TaesdEncoder(SMALL, autoencoder=ae), TaesdDecoder(SMALL, autoencoder=ae)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(ae.encoder.layers[-1](enc(x)), ae.encoder(x), atol=1e-6)
        z = torch.randn(2, 4, 4, 4)
        head = ae.decoder.layers[1](ae.decoder.layers[0](torch.tanh(z / 3) * 3))
        assert torch.allclose(dec(head), ae.decoder(z), atol=1e-6)
    assert enc(x).shape == (2, 16, 4, 4) and SMALL.downsample == 4


def test_pretrained_taesd_is_read_from_a_local_directory_through_float16(tmp_path):
    torch.manual_seed(1)
    ae = AutoencoderTiny(encoder_block_out_channels=(16,) * 3, decoder_block_out_channels=(16,) * 3,
                         num_encoder_blocks=(1, 2, 1), num_decoder_blocks=(1, 2, 1))
    ae.save_pretrained(tmp_path)
    enc = TaesdEncoder(SMALL, pretrained=str(tmp_path))
    want = ae.encoder.layers[0].weight.detach().half().float()
    assert torch.equal(enc[0].weight, want)
    with pytest.raises(BaselineConfigError, match="width"):
        TaesdEncoder(TaesdSpec(width=32, encoder_blocks=(1, 2, 1), decoder_blocks=(1, 2, 1)), pretrained=str(tmp_path))


def test_codebook_init_and_nearest_code_match_brute_force():
    torch.manual_seed(0)
    book = Codebook(4096, 8)
    w = book.templat.weight
    assert w.abs().max() <= 1 / 4096 and w.std() > 1 / 4096 / 3
    book.templat.weight.data.normal_()
    encode = torch.randn(3, 8, 5, 6)
    zidx = book.match(encode)
    dist = torch.cdist(encode.permute(0, 2, 3, 1).reshape(-1, 8), book.templat.weight)
    assert torch.equal(zidx.flatten(), dist.argmin(1))
    assert zidx.shape == (3, 5, 6)


def test_losses_straight_through_and_targets():
    torch.manual_seed(0)
    model = VQVAE(synthetic_tokenizer(8))
    images = torch.randn(2, 3, 32, 32)
    out = model(images)
    e, q, d = out.extras["encode"], out.extras["quant"], out.extras["decode"]
    assert e.shape == q.shape == (2, 8, 8, 8) and d.shape == (2, 3, 32, 32)
    assert torch.equal(q, model.codebook.templat.weight[out.extras["zidx"]].permute(0, 3, 1, 2))
    target = F.interpolate(images, size=(32, 32), mode="bicubic", antialias=True)
    assert torch.allclose(out.losses["recon"], (d - target).square().mean())
    assert torch.allclose(out.losses["align"], (q - e).square().mean())
    assert torch.allclose(out.losses["commit"], out.losses["align"])
    # recon reaches the encoder through the straight-through estimator; align only the codebook; commit only
    # the encoder.
    grads = {}
    for name in ("recon", "align", "commit"):
        model.zero_grad()
        out = model(images)
        out.losses[name].backward()
        grads[name] = (model.encode[3].weight.grad is not None and model.encode[3].weight.grad.abs().sum() > 0,
                       model.codebook.templat.weight.grad is not None
                       and model.codebook.templat.weight.grad.abs().sum() > 0)
    assert grads == {"recon": (True, False), "align": (False, True), "commit": (True, False)}


def test_training_the_c4_recipe_needs_lpips_weights():
    config = get_config("vqvae-c4", "coco")
    assert config.lpips and not get_config("vqvae-c256", "coco").lpips and not get_config("vqvae-c4", "synthetic").lpips
    with pytest.raises(BaselineConfigError, match="lpips_weights=PATH"):
        METHODS.get("vqvae-c4").build(config, pretrained=True)
    assert METHODS.get("vqvae-c4").build(config)._lpips == []  # evaluation builds without it


def test_full_size_stage_shapes_and_config(full_model):
    config = get_config("vqvae-c4", "coco")
    assert config.train.steps == 30_000 and config.train.batch_size == 64 and config.train.lr == 2e-3
    assert config.train.loss_weights["commit"].end == 0.25
    model = full_model("vqvae-c4")
    out = model(torch.randn(1, 3, 256, 256))
    assert out.extras["zidx"].shape == (1, 16, 16) and out.extras["decode"].shape == (1, 3, 128, 128)
    frozen = {n for n, _ in model.named_parameters() if re.match(FROZEN_PRETRAINED_TAESD, n)}
    assert {n.split(".")[2] for n in frozen} == {str(i) for i in range(11)}
    assert not any(n.startswith(("encode.1.11", "encode.1.12", "encode.1.13")) for n in frozen)


@pytest.mark.parametrize("method", ["slate", "slotdiffusion"])
@pytest.mark.parametrize("dataset", ["clevrtex", "coco", "voc", "synthetic"])
def test_method_and_stage_configs_describe_one_tokenizer(method, dataset):
    config = get_config(method, dataset)
    assert METHODS.get(config.stage).kind == "stage"
    assert stage_config(config).tokenizer == config.tokenizer
    with pytest.raises(BaselineConfigError, match="tokenizer differs"):
        stage_config(dataclasses.replace(config, tokenizer=dataclasses.replace(config.tokenizer, num_codes=7)))


@pytest.mark.parametrize("method,stage", [("slate", "vqvae-c256"), ("slotdiffusion", "vqvae-c4")])
def test_stage_weights_loaded_into_a_method_give_identical_tokens(method, stage):
    """Train-free round trip: a (perturbed) stage's encoder and codebook, copied by the authors' ckpt_map into the
    method's mediat, tokenize images exactly as the stage does."""
    torch.manual_seed(0)
    vq = create_model(stage, "synthetic")
    with torch.no_grad():
        for p in vq.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    model = create_model(method, "synthetic")
    images = torch.randn(3, 3, 32, 32)
    before = model.tokens(images)[0]
    model.load_stage(checkpoint_state_dict(vq))
    zidx, quant = model.tokens(images)
    _, want_zidx, want_quant = vq.tokenize(images)
    assert torch.equal(zidx, want_zidx) and torch.equal(quant, want_quant)
    assert not torch.equal(before, zidx)
    assert [p for p, _ in STAGE_CKPT_MAP] == ["mediat.encode.", "mediat.codebook."]


def test_loading_a_stage_of_another_shape_fails():
    wrong = create_model("vqvae-c4", "synthetic")
    with pytest.raises(CheckpointError, match="mediat.codebook"):
        create_model("slate", "synthetic").load_stage(checkpoint_state_dict(wrong))


def lpips_file(path, seed=0):
    """A random state_dict in the lpips package's LPIPS(net="alex") layout."""
    g = torch.Generator().manual_seed(seed)
    convs = {1: (0, 64, 3, 11), 2: (3, 192, 64, 5), 3: (6, 384, 192, 3), 4: (8, 256, 384, 3), 5: (10, 256, 256, 3)}
    state = {"scaling_layer.shift": torch.tensor([-0.030, -0.088, -0.188])[None, :, None, None],
             "scaling_layer.scale": torch.tensor([0.458, 0.448, 0.450])[None, :, None, None]}
    for s, (i, cout, cin, k) in convs.items():
        state[f"net.slice{s}.{i}.weight"] = torch.randn(cout, cin, k, k, generator=g) * (cin * k * k) ** -0.5
        state[f"net.slice{s}.{i}.bias"] = torch.randn(cout, generator=g) * 0.1
        state[f"lin{s - 1}.model.1.weight"] = torch.rand(1, cout, 1, 1, generator=g)
    torch.save(state, path)
    return state


def reference_lpips(state, x, y):
    """Independent LPIPS(alex) from the raw tensors with functional ops."""
    def taps(t):
        t = (t - state["scaling_layer.shift"]) / state["scaling_layer.scale"]
        out = []
        for s, (i, stride, pad, pool) in enumerate([(0, 4, 2, False), (3, 1, 2, True), (6, 1, 1, True),
                                                    (8, 1, 1, False), (10, 1, 1, False)], 1):
            if pool:
                t = F.max_pool2d(t, 3, 2)
            t = F.relu(F.conv2d(t, state[f"net.slice{s}.{i}.weight"], state[f"net.slice{s}.{i}.bias"], stride, pad))
            out.append(t)
        return out
    total = 0
    for s, (a, b) in enumerate(zip(taps(x), taps(y))):
        na = a / (a.norm(dim=1, keepdim=True) + 1e-10)
        nb = b / (b.norm(dim=1, keepdim=True) + 1e-10)
        total = total + ((na - nb) ** 2 * state[f"lin{s}.model.1.weight"]).sum(1).mean((1, 2))
    return total


def test_lpips_from_a_local_file(tmp_path):
    state = lpips_file(tmp_path / "alex.pth")
    lpips = LPIPS.from_file(tmp_path / "alex.pth")
    x, y = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    d = lpips(x, y)
    assert torch.allclose(d, reference_lpips(state, x, y), rtol=1e-4)
    assert torch.allclose(lpips(x, x), torch.zeros(2), atol=1e-6)
    assert not any(p.requires_grad for p in lpips.parameters())
    del state["lin2.model.1.weight"]
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(LPIPSWeightsError, match="lins.2.weight"):
        LPIPS.from_file(tmp_path / "broken.pth")


def test_lpips_term_joins_the_stage_losses_and_stays_out_of_its_checkpoint(tmp_path):
    lpips_file(tmp_path / "alex.pth")
    model = create_model("vqvae-c4", "synthetic", lpips=True, lpips_weights=str(tmp_path / "alex.pth"))
    images = torch.randn(2, 3, 64, 64)
    out = model(images)
    assert set(out.losses) == {"recon", "align", "commit", "lpips"} and out.losses["lpips"] > 0
    assert set(checkpoint_state_dict(model)) == set(checkpoint_state_dict(create_model("vqvae-c4", "synthetic")))
