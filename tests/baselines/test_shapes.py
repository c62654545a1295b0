"""Forward contract of every baseline config: mask names and shapes, loss terms, slots — full-size configs on the
meta device (shapes without compute), small configs for real; builders load pretrained parts only when asked."""

import dataclasses

import pytest
import torch
from diffusers import AutoencoderTiny
from transformers import Dinov2Config, Dinov2Model

from baselines.common import BaselineConfigError
from harness.registry import METHODS, create_model, get_config

# method → (mask names, loss names, slot dim, mask side at 256² input)
CONTRACT = {
    "sa": ({"decoder", "aggregator"}, {"recon"}, 64, 128),
    "dinosaur": ({"decoder", "aggregator"}, {"recon"}, 256, 16),
    "slate": ({"aggregator"}, {"recon"}, 256, 16),
    "slotdiffusion": ({"aggregator"}, {"recon"}, 256, 16),
}


@pytest.mark.parametrize("method", CONTRACT)
@pytest.mark.parametrize("dataset", ["clevrtex", "coco", "voc"])
def test_full_size_contract_on_meta(method, dataset):
    masks, losses, dim, side = CONTRACT[method]
    config = get_config(method, dataset)
    with torch.device("meta"):
        out = create_model(method, config=config).train()(torch.empty(2, 3, 256, 256))
    assert set(out.masks) == masks and set(out.losses) == losses and config.eval.mask in masks
    assert out.slots.shape == (2, config.num_slots, dim)
    for m in out.masks.values():
        assert m.shape == (2, config.num_slots, side, side)
    assert all(v.shape == () for v in out.losses.values())


@pytest.mark.parametrize("stage", ["vqvae-c256", "vqvae-c4"])
def test_full_size_stage_on_meta(stage):
    with torch.device("meta"):
        out = create_model(stage, "clevrtex")(torch.empty(2, 3, 256, 256))
    dim = 256 if stage == "vqvae-c256" else 4
    assert out.slots is None and set(out.losses) == {"recon", "align", "commit"}
    assert out.extras["quant"].shape == (2, dim, 16, 16) and out.extras["decode"].shape == (2, 3, 128, 128)


@pytest.mark.parametrize("method", [*CONTRACT, "vqvae-c256", "vqvae-c4", "grid", "single-segment",
                                    "colour-kmeans"])
def test_small_configs_run_for_real(method):
    torch.manual_seed(0)
    config = get_config(method, "synthetic")
    model = create_model(method, config=config)
    out = model(torch.randn(2, 3, config.resolution, config.resolution))
    if METHODS.get(method).kind != "stage":
        mask = out.masks[config.eval.mask]
        assert mask.shape[:2] == (2, config.num_slots)
        assert torch.allclose(mask.sum(1), torch.ones_like(mask[:, 0]), atol=1e-5)
    assert all(torch.isfinite(v) for v in out.losses.values())


def test_backbone_and_resolution_must_agree():
    config = dataclasses.replace(get_config("dinosaur", "synthetic"), resolution=48)
    with pytest.raises(BaselineConfigError, match="backbone.image_size"):
        create_model("dinosaur", config=config)
    config = dataclasses.replace(get_config("slate", "synthetic"), slot_dim=32)
    with pytest.raises(BaselineConfigError, match="code_dim"):
        create_model("slate", config=config)


def test_builders_load_pretrained_parts_only_when_asked(tmp_path):
    torch.manual_seed(0)
    config = get_config("dinosaur", "synthetic")
    spec = config.backbone
    hf = Dinov2Model(Dinov2Config(hidden_size=spec.hidden, num_hidden_layers=spec.layers,
                                  num_attention_heads=spec.heads, patch_size=spec.patch, image_size=spec.image_size,
                                  layerscale_value=spec.layerscale_init, layer_norm_eps=spec.layer_norm_eps))
    hf.save_pretrained(tmp_path / "dino")
    config = dataclasses.replace(config, pretrained=str(tmp_path / "dino"))
    want = hf.embeddings.patch_embeddings.projection.weight
    build = METHODS.get("dinosaur").build
    assert torch.equal(build(config, load_pretrained=True).encode_backbone[1].state_dict()["patch_embed.proj.weight"],
                       want)
    assert not torch.equal(build(config).encode_backbone[1].state_dict()["patch_embed.proj.weight"], want)

    stage = get_config("vqvae-c4", "synthetic")
    taesd = stage.tokenizer.taesd
    ae = AutoencoderTiny(encoder_block_out_channels=(taesd.width,) * 3, decoder_block_out_channels=(taesd.width,) * 3,
                         num_encoder_blocks=taesd.encoder_blocks, num_decoder_blocks=taesd.decoder_blocks)
    ae.save_pretrained(tmp_path / "taesd")
    stage = dataclasses.replace(stage, pretrained=str(tmp_path / "taesd"))
    build = METHODS.get("vqvae-c4").build
    want = ae.decoder.layers[-1].weight.detach().half().float()
    assert torch.equal(build(stage, load_pretrained=True).decode[2][-1].weight, want)
    assert not torch.equal(build(stage).decode[2][-1].weight, want)
