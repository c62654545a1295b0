"""DinoV2Backbone: the timm key layout, its numerical meaning, strict loading, and the HF from_pretrained path.

The oracle is `timm_forward` below: a ViT forward written from the timm parameter names alone (patch conv, prefix
tokens, position embedding with/without class row, pre-norm blocks with LayerScale, GELU MLP, final LN).
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.nn.checkpoint import parse_listing
from harness.nn.dinov2 import (
    DinoV2Backbone,
    DinoV2Spec,
    PretrainedWeightsError,
    hf_attention_names,
    make_encoder,
    resample_pos_embed,
    sincos_position_table,
)

TINY = dict(hidden=48, layers=2, heads=3, mlp_ratio=4, patch=4, image_size=16, layer_norm_eps=1e-6)


def timm_forward(sd: dict, spec: DinoV2Spec, norm_out: bool, x: torch.Tensor) -> torch.Tensor:
    b, c, eps = x.shape[0], spec.hidden, spec.layer_norm_eps
    t = F.conv2d(x, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=spec.patch)
    t = t.flatten(2).transpose(1, 2)
    cls = sd["cls_token"].expand(b, -1, -1)
    if spec.registers:  # timm reg4: no class position embedding; prefix = [cls, registers]
        t = torch.cat([cls, sd["reg_token"].expand(b, -1, -1), t + sd["pos_embed"]], 1)
    else:
        t = torch.cat([cls, t], 1) + sd["pos_embed"]
    n, heads = t.shape[1], spec.heads
    for i in range(spec.layers):
        p = f"blocks.{i}."
        h = F.layer_norm(t, (c,), sd[p + "norm1.weight"], sd[p + "norm1.bias"], eps)
        q, k, v = F.linear(h, sd[p + "attn.qkv.weight"], sd[p + "attn.qkv.bias"]) \
            .reshape(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1) * (c // heads) ** -0.5).softmax(-1)
        h = (attn @ v).transpose(1, 2).reshape(b, n, c)
        t = t + sd[p + "ls1.gamma"] * F.linear(h, sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"])
        h = F.layer_norm(t, (c,), sd[p + "norm2.weight"], sd[p + "norm2.bias"], eps)
        h = F.linear(F.gelu(F.linear(h, sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"])),
                     sd[p + "mlp.fc2.weight"], sd[p + "mlp.fc2.bias"])
        t = t + sd[p + "ls2.gamma"] * h
    if norm_out:
        t = F.layer_norm(t, (c,), sd["norm.weight"], sd["norm.bias"], eps)
    g = spec.grid
    return t[:, 1 + spec.registers:].transpose(1, 2).reshape(b, c, g, g)


def random_timm_state(model: nn.Module, seed: int = 0) -> dict:
    """Random values for every key of the model's (timm-named) state_dict: LayerScale, biases, LN affine all
    randomised so that a wrong mapping of any of them shows."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in model.state_dict().items():
        r = torch.randn(v.shape, generator=g)
        if k.endswith("gamma"):
            out[k] = 0.5 + r * 0.3
        elif "norm" in k and k.endswith("weight"):
            out[k] = 1 + 0.2 * r
        elif k.endswith("weight"):
            out[k] = r * v.shape[-1] ** -0.5 if v.dim() == 2 else r * 0.1
        else:
            out[k] = 0.2 * r
    return out


@pytest.mark.parametrize("registers", [4, 0])
@pytest.mark.parametrize("norm_out", [True, False])
def test_mapping_matches_timm_reference_forward(registers, norm_out):
    spec = DinoV2Spec(registers=registers, **TINY)
    model = DinoV2Backbone(spec, norm_out=norm_out).eval()
    sd = random_timm_state(model, seed=registers + 10 * norm_out)
    model.load_state_dict(sd, strict=True)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, ref = model(x), timm_forward(sd, spec, norm_out, x)
    assert ours.shape == (2, 48, 4, 4)
    assert (ours - ref).abs().max() <= 1e-5
    # a wrong mapping is caught: the oracle with the qkv thirds rotated disagrees
    wrong = dict(sd)
    for i in range(spec.layers):
        key = f"blocks.{i}.attn.qkv.weight"
        wrong[key] = torch.cat(sd[key].chunk(3)[::-1])
    assert (ours - timm_forward(wrong, spec, norm_out, x)).abs().max() > 1e-2


def test_norm_out_false_is_before_the_final_layernorm():
    spec = DinoV2Spec(**TINY)
    with_norm = DinoV2Backbone(spec, norm_out=True).eval()
    without = DinoV2Backbone(spec, norm_out=False).eval()
    sd = random_timm_state(with_norm)
    with_norm.load_state_dict(sd)
    without.load_state_dict({k: v for k, v in sd.items() if not k.startswith("norm.")})
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        pre = without(x)
        post = with_norm(x)
    ln = F.layer_norm(pre.permute(0, 2, 3, 1), (48,), sd["norm.weight"], sd["norm.bias"], 1e-6).permute(0, 3, 1, 2)
    assert torch.allclose(post, ln, atol=1e-5)
    assert not torch.allclose(pre, post, atol=1e-2)


def test_full_size_keys_match_the_authors_listings(reference_dir):
    """ViT-S/14 reg4 without norm (DIAS) and without registers with norm (VVO baselines), keys/shapes/order.
    Built on the meta device: the hooks' export works on shapes alone."""
    def backbone_rows(name):
        return [(k.removeprefix("m.encode_backbone."), s, d) for k, s, d in parse_listing(reference_dir / name)
                if k.startswith("m.encode_backbone.")]

    for spec, norm_out, listing in [(DinoV2Spec(), False, "keys_dias.txt"),
                                    (DinoV2Spec(registers=0), True, "keys_dinosaur_r-coco.txt")]:
        with torch.device("meta"):
            encoder = make_encoder(spec, norm_out)
        ours = [(k, tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in encoder.state_dict().items()]
        assert ours == backbone_rows(listing)


def test_state_dict_hides_hf_names_and_mask_token():
    model = DinoV2Backbone(DinoV2Spec(**TINY), norm_out=False)
    keys = list(model.state_dict())
    assert keys[:3] == ["cls_token", "reg_token", "pos_embed"]
    assert not any(k.startswith("hf.") or "mask_token" in k or k.startswith("norm.") for k in keys)
    assert model.state_dict()["pos_embed"].shape == (1, 16, 48)
    assert DinoV2Backbone(DinoV2Spec(registers=0, **TINY), True).state_dict()["pos_embed"].shape == (1, 17, 48)


def test_round_trip_is_exact_and_mask_token_untouched():
    spec = DinoV2Spec(**TINY)
    a, b = DinoV2Backbone(spec, False), DinoV2Backbone(spec, False)
    sd = random_timm_state(a, seed=3)
    a.load_state_dict(sd)
    with torch.no_grad():
        b.hf.embeddings.mask_token.fill_(7.0)
    b.load_state_dict(a.state_dict(), strict=True)
    assert all(torch.equal(v, sd[k]) for k, v in b.state_dict().items())
    assert torch.equal(b.hf.embeddings.mask_token, torch.full_like(b.hf.embeddings.mask_token, 7.0))
    assert b.hf.embeddings.position_embeddings[0, 0].abs().max() == 0  # timm reg4 has no class position


def test_class_position_row_is_folded_into_cls_token_on_export():
    """HF adds position row 0 to the class token only, timm reg4 has no such row: export must keep the function."""
    spec = DinoV2Spec(**TINY)
    model = DinoV2Backbone(spec, True).eval()
    with torch.no_grad():
        model.hf.embeddings.position_embeddings[:, 0].normal_()
    x = torch.randn(1, 3, 16, 16)
    sd = model.state_dict()
    with torch.no_grad():
        assert (model(x) - timm_forward(sd, spec, True, x)).abs().max() <= 1e-5
        # registers attend to the class token, so the fold is visible in the patch features
        assert (model(x) - timm_forward({**sd, "cls_token": model.hf.embeddings.cls_token}, spec, True, x)
                ).abs().max() > 1e-4


def test_strict_load_reports_timm_names():
    model = DinoV2Backbone(DinoV2Spec(**TINY), norm_out=False)
    sd = model.state_dict()
    bad = {k: v for k, v in sd.items() if k != "blocks.1.ls2.gamma"}
    bad["norm.weight"] = torch.ones(48)
    bad["pos_embed"] = torch.zeros(1, 17, 48)
    bad["hf.embeddings.cls_token"] = torch.zeros(1, 1, 48)
    with pytest.raises(RuntimeError) as info:
        model.load_state_dict(bad)
    text = str(info.value)
    assert '"blocks.1.ls2.gamma"' in text and '"norm.weight"' in text and '"hf.embeddings.cls_token"' in text
    assert "size mismatch for pos_embed" in text and "(1, 17, 48)" in text
    assert "layer_scale" not in text and "position_embeddings" not in text  # no HF duplicates


def test_hf_attention_names_both_transformers_layouts():
    v5 = nn.Module()
    v5.attention = nn.Module()
    for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
        setattr(v5.attention, name, nn.Linear(2, 2))
    v4 = nn.Module()
    v4.attention = nn.Module()
    v4.attention.attention = nn.Module()
    for name in ("query", "key", "value"):
        setattr(v4.attention.attention, name, nn.Linear(2, 2))
    v4.attention.output = nn.Module()
    v4.attention.output.dense = nn.Linear(2, 2)
    assert hf_attention_names(v5) == ("attention.q_proj", "attention.k_proj", "attention.v_proj", "attention.o_proj")
    assert hf_attention_names(v4) == ("attention.attention.query", "attention.attention.key",
                                      "attention.attention.value", "attention.output.dense")
    with pytest.raises(TypeError):
        hf_attention_names(nn.Module())


def _randomise(model: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2 + (1.0 if p.dim() == 1 else 0.0))


def test_from_pretrained_directory_with_registers_resamples_like_hf(tmp_path):
    """A tiny HF model saved at 24² (6×6 positions) loads into a 16² spec; HF itself interpolates its position
    table at run time (bicubic, antialias) — the same resampling timm applies at load time."""
    from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    config = Dinov2WithRegistersConfig(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, mlp_ratio=4,
                                       patch_size=4, image_size=24, num_register_tokens=4, layer_norm_eps=1e-6)
    hf = Dinov2WithRegistersModel(config).eval()
    _randomise(hf, seed=5)
    hf.save_pretrained(tmp_path)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        out = hf(pixel_values=x, output_hidden_states=True)
    for norm_out, expected in [(True, out.last_hidden_state), (False, out.hidden_states[-1])]:
        ours = DinoV2Backbone(DinoV2Spec(**TINY), norm_out, weights=str(tmp_path)).eval()
        with torch.no_grad():
            features = ours(x)
        expected = expected[:, 5:].transpose(1, 2).reshape(2, 48, 4, 4)
        assert (features - expected).abs().max() <= 1e-5
        assert ours.state_dict()["pos_embed"].shape == (1, 16, 48)


def test_from_pretrained_directory_without_registers(tmp_path):
    from transformers import Dinov2Config, Dinov2Model

    config = Dinov2Config(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, mlp_ratio=4, patch_size=4,
                          image_size=16, layer_norm_eps=1e-6)
    hf = Dinov2Model(config).eval()
    _randomise(hf, seed=6)
    hf.save_pretrained(tmp_path)
    ours = DinoV2Backbone(DinoV2Spec(registers=0, **TINY), True, weights=str(tmp_path)).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = hf(pixel_values=x).last_hidden_state[:, 1:].transpose(1, 2).reshape(2, 48, 4, 4)
        assert (ours(x) - expected).abs().max() <= 1e-5
    assert torch.equal(ours.state_dict()["cls_token"], hf.embeddings.cls_token.detach())


def test_resample_keeps_prefix_rows_and_matches_interpolate():
    pos = torch.randn(1, 1 + 36, 8)
    out = resample_pos_embed(pos, grid=4, prefix_rows=1)
    assert out.shape == (1, 17, 8) and torch.equal(out[:, :1], pos[:, :1])
    grid = pos[:, 1:].reshape(1, 6, 6, 8).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(4, 4), mode="bicubic", antialias=True, align_corners=False)
    assert torch.allclose(out[:, 1:], expected.permute(0, 2, 3, 1).reshape(1, 16, 8))
    assert resample_pos_embed(pos, grid=6, prefix_rows=1) is pos


def test_pretrained_errors_are_harness_errors(tmp_path):
    from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    Dinov2WithRegistersModel(Dinov2WithRegistersConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                                       patch_size=4, image_size=16)).save_pretrained(tmp_path)
    with pytest.raises(PretrainedWeightsError, match=r"hidden=32 \(spec wants 48\)"):
        DinoV2Backbone(DinoV2Spec(**TINY), False, weights=str(tmp_path))
    with pytest.raises(PretrainedWeightsError, match="absent do not exist"):
        DinoV2Backbone(DinoV2Spec(**TINY), False, weights=str(tmp_path / "absent"))


def test_make_encoder_resizes_bicubic_then_encodes():
    spec = DinoV2Spec(**TINY)
    encoder = make_encoder(spec, norm_out=False, scale=0.5).eval()
    assert list(encoder.state_dict())[0] == "1.cls_token"
    x = torch.randn(1, 3, 32, 32)
    resized = F.interpolate(x, size=(16, 16), mode="bicubic", align_corners=False)
    with torch.no_grad():
        assert torch.equal(encoder(x), encoder[1](resized))
    with pytest.raises(ValueError, match="16² inputs"):
        encoder[1](x)


def test_sincos_position_table_by_hand():
    """Hand-computed rows: channel blocks sin x, cos x, sin y, cos y with frequencies 100^(-i/(dim/4))."""
    grid, dim = 3, 8
    table = sincos_position_table(grid, dim)
    raw = []
    for row in range(grid):
        for col in range(grid):
            freqs = [1.0, 0.1]  # 100^(-0/2), 100^(-1/2)
            raw.append([math.sin(col * f) for f in freqs] + [math.cos(col * f) for f in freqs]
                       + [math.sin(row * f) for f in freqs] + [math.cos(row * f) for f in freqs])
    raw = torch.tensor(raw, dtype=torch.float64)
    assert table.shape == (9, 8)
    assert torch.allclose(table.double(), raw / raw.std(), atol=1e-6)
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_position_table(grid, 6)


@pytest.mark.parametrize("registers", [4, 0])
def test_sincos_pos_std_sets_the_patch_rows_of_random_weights(registers):
    spec = DinoV2Spec(**TINY, registers=registers, sincos_pos_std=0.5)
    model = DinoV2Backbone(spec, norm_out=True)
    rows = model.hf.embeddings.position_embeddings[0]
    assert torch.allclose(rows[1:], 0.5 * sincos_position_table(spec.grid, spec.hidden))
    assert rows[1:].std().item() == pytest.approx(0.5, rel=1e-5)
    if registers:
        assert rows[0].abs().max() == 0  # timm reg4 has no class position
    # the table is a function of the spec alone, and the checkpoint still decides the weights
    again = DinoV2Backbone(spec, norm_out=True)
    assert torch.equal(again.hf.embeddings.position_embeddings[0, 1:], rows[1:])
    sd = random_timm_state(model, seed=5)
    model.load_state_dict(sd, strict=True)
    assert torch.equal(model.state_dict()["pos_embed"], sd["pos_embed"])
