"""Baseline builders: the VQ-VAE stages' outputs, config consistency checks, pretrained parts loaded only when asked.
The forward contract of every method is checked in tests/contract/."""

import dataclasses

import pytest
import torch
from diffusers import AutoencoderTiny
from transformers import Dinov2Config, Dinov2Model

from baselines.common import BaselineConfigError
from harness.registry import METHODS, create_model, get_config


@pytest.mark.parametrize("stage", ["vqvae-c256", "vqvae-c4"])
def test_full_size_stage_on_meta(stage):
    with torch.device("meta"):
        out = create_model(stage, "clevrtex")(torch.empty(2, 3, 256, 256))
    dim = 256 if stage == "vqvae-c256" else 4
    assert out.slots is None and set(out.losses) == {"recon", "align", "commit"}
    assert out.extras["quant"].shape == (2, dim, 16, 16) and out.extras["decode"].shape == (2, 3, 128, 128)


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
    config = dataclasses.replace(config, backbone_weights=str(tmp_path / "dino"))
    want = hf.embeddings.patch_embeddings.projection.weight
    build = METHODS.get("dinosaur").build
    assert torch.equal(build(config, pretrained=True).encode_backbone[1].state_dict()["patch_embed.proj.weight"],
                       want)
    assert not torch.equal(build(config).encode_backbone[1].state_dict()["patch_embed.proj.weight"], want)

    stage = get_config("vqvae-c4", "synthetic")
    taesd = stage.tokenizer.taesd
    ae = AutoencoderTiny(encoder_block_out_channels=(taesd.width,) * 3, decoder_block_out_channels=(taesd.width,) * 3,
                         num_encoder_blocks=taesd.encoder_blocks, num_decoder_blocks=taesd.decoder_blocks)
    ae.save_pretrained(tmp_path / "taesd")
    stage = dataclasses.replace(stage, taesd_weights=str(tmp_path / "taesd"))
    build = METHODS.get("vqvae-c4").build
    want = ae.decoder.layers[-1].weight.detach().half().float()
    assert torch.equal(build(stage, pretrained=True).decode[2][-1].weight, want)
    assert not torch.equal(build(stage).decode[2][-1].weight, want)
