"""SPOT as the DIAS authors run it (docs/reference.md#spot): checkpoint layouts against their listing, the nine patch
orders written out by hand, the causal decoder against nn.TransformerDecoder, which order a forward uses, stage 2's
freezing, stage loading and matched cross-entropy, and evaluation of a checkpoint through the CLI."""

import itertools
import json
import math

import pytest
import torch
import torch.nn.functional as F

from baselines.spot import AR9Decoder, causal_mask, patch_orders
from baselines.spot_distill import matched_cross_entropy, matched_targets
from harness.cli import main
from harness.data import SynthConfig, write_synthetic
from harness.nn.checkpoint import load_weights, parse_listing, read_weights, save_weights, state_dict_listing
from harness.registry import create_model, get_config
from harness.run.train import build_model, freeze

CPU = torch.device("cpu")
LISTING = "keys_spot_r-coco.txt"


def meta_model(method, dataset="coco"):
    config = get_config(method, dataset)
    with torch.device("meta"):
        model = create_model(method, dataset)
    freeze(model, config.train.freeze)
    return model


def trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# --- checkpoint layouts --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dataset", ["clevrtex", "coco", "voc"])
def test_stage1_state_dict_is_the_authors_listing(dataset, reference_dir):
    reference = parse_listing(reference_dir / LISTING)
    assert len(reference) == 241 and sum(torch.Size(s).numel() for _, s, _ in reference) == 32_802_944
    assert state_dict_listing(meta_model("spot", dataset)) == reference


def test_stage2_state_dict_is_teacher_then_student(reference_dir):
    """docs/reference.md#checkpoints: teacher = the stage-1 keys; student = the stage-1 keys with per-slot
    initialiser shapes and the frozen backbone copy `encode_backbone2` right after `encode_backbone`."""
    stage1 = parse_listing(reference_dir / LISTING)
    backbone = [(k, s, d) for k, s, d in stage1 if k.startswith("m.encode_backbone.")]
    student = []
    for key, shape, dtype in stage1:
        if key.startswith("m.initializ."):
            shape = (1, 7, 256)
        student.append((key, shape, dtype))
        if key == backbone[-1][0]:
            student += [(k.replace("m.encode_backbone.", "m.encode_backbone2."), s, d) for k, s, d in backbone]
    expected = [("m.teacher." + k[2:], s, d) for k, s, d in stage1] + [("m.student." + k[2:], s, d)
                                                                       for k, s, d in student]
    assert len(expected) == 655 and sum(torch.Size(s).numel() for _, s, _ in expected) == 87_238_144
    assert state_dict_listing(meta_model("spot-distill")) == expected


def test_stage2_trains_exactly_the_students_last_four_blocks_and_its_heads():
    stage1, stage2 = meta_model("spot"), meta_model("spot-distill")
    assert trainable(stage1) == 11_173_760 and trainable(stage2) == 18_277_760
    backbone = {n.split(".hf.")[1] for n, p in stage2.named_parameters()
                if p.requires_grad and "encode_backbone" in n}
    blocks = {n.split(".")[2] for n in backbone}
    assert all(n.startswith("encoder.layer.") for n in backbone) and blocks == {"8", "9", "10", "11"}
    assert not any(p.requires_grad for p in stage2.teacher.parameters())
    assert not any(p.requires_grad for p in stage2.student.encode_backbone2.parameters())
    heads = {n.split(".")[1] for n, p in stage2.named_parameters() if p.requires_grad and "encode_backbone" not in n}
    assert heads == {"encode_project", "initializ", "aggregat", "decode"}


# --- the nine orders and the causal decoder ------------------------------------------------------------------------

ORDERS_4X4 = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],  # raster
    [0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15],  # down each column, columns left → right
    [3, 7, 11, 15, 2, 6, 10, 14, 1, 5, 9, 13, 0, 4, 8, 12],  # down, columns right → left
    [3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12],  # rows top → bottom, each right → left
    [15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0],  # up, columns right → left
    [15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0],  # raster reversed
    [12, 8, 4, 0, 13, 9, 5, 1, 14, 10, 6, 2, 15, 11, 7, 3],  # up, columns left → right
    [12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3],  # rows bottom → top, each left → right
    [5, 9, 10, 6, 2, 1, 0, 4, 8, 12, 13, 14, 15, 11, 7, 3],  # spiral out from the centre to the top-right corner
]


def test_orders_on_a_4x4_grid_written_out():
    assert patch_orders(4, 4).tolist() == ORDERS_4X4


def test_orders_on_the_16x16_grid():
    orders = patch_orders(16, 16)
    assert orders.shape == (9, 256)
    assert all(sorted(o.tolist()) == list(range(256)) for o in orders)
    assert (orders[8, 0].item(), orders[8, -1].item()) == (119, 15)  # spiral: row 7, column 7 → top-right corner
    steps = (orders[8, 1:] - orders[8, :-1]).abs()
    assert set(steps.tolist()) == {1, 16}  # every step of the spiral goes to a neighbour
    assert orders[1, :17].tolist() == list(range(0, 256, 16)) + [1]
    for forward, backward in ((0, 5), (1, 4), (2, 6), (3, 7)):
        assert torch.equal(orders[backward], orders[forward].flip(0))


def test_causal_mask():
    assert causal_mask(4).tolist() == [[False, True, True, True], [False, False, True, True],
                                       [False, False, False, True], [False, False, False, False]]


def make_decoder(seed=0) -> AR9Decoder:
    torch.manual_seed(seed)
    decoder = AR9Decoder(dim=16, slot_dim=8, grid=(4, 4), num_layers=2, num_heads=2, ffn_dim=32)
    with torch.no_grad():  # the layers are copies of one layer and LayerNorms start at 1/0: make everything differ
        for p in decoder.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return decoder


def reference_decode(decoder: AR9Decoder, features, slots, k: int):
    """Oracle: nn.TransformerDecoder's own forward with tgt_mask and the last cross-attention taken by hooks, as the
    authors do, on BOS + the features in order k, put back in raster order."""
    captured = {}
    attn = decoder.backbone.layers[-1].multihead_attn

    def pre(module, args, kwargs):
        kwargs["need_weights"] = True
        return args, kwargs

    def post(module, args, output):
        captured["w"] = output[1]

    handles = [attn.register_forward_pre_hook(pre, with_kwargs=True), attn.register_forward_hook(post)]
    order = torch.tensor(ORDERS_4X4[k])
    query = torch.cat([decoder.bos[k].expand(len(features), -1, -1), features[:, order][:, :-1]], 1)
    try:
        out = decoder.backbone(decoder.norm0(decoder.project1(query)), decoder.project2(slots),
                               tgt_mask=torch.triu(torch.ones(16, 16, dtype=torch.bool), 1))
    finally:
        for h in handles:
            h.remove()
    inverse = order.argsort()
    return out[:, inverse], captured["w"][:, inverse].transpose(1, 2)


def test_evaluation_decodes_raster_order_like_nn_transformer_decoder():
    decoder = make_decoder().eval()
    features, slots = torch.randn(2, 16, 16), torch.randn(2, 3, 8)
    with torch.no_grad():
        recon, attention = decoder(features, slots)
        ref_recon, ref_attention = reference_decode(decoder, features, slots, 0)
    assert torch.allclose(recon, ref_recon, atol=1e-5) and torch.allclose(attention, ref_attention, atol=1e-6)
    assert attention.shape == (2, 3, 16) and torch.allclose(attention.sum(1), torch.ones(2, 16))


@pytest.mark.parametrize("seed", range(4))
def test_training_decodes_one_drawn_order_for_the_whole_batch(seed):
    decoder = make_decoder().train()
    features, slots = torch.randn(3, 16, 16), torch.randn(3, 3, 8)
    torch.manual_seed(seed)
    k = int(torch.randint(9, ()))
    torch.manual_seed(seed)
    with torch.no_grad():
        recon, attention = decoder(features, slots)
        ref_recon, ref_attention = reference_decode(decoder, features, slots, k)
    assert torch.allclose(recon, ref_recon, atol=1e-5) and torch.allclose(attention, ref_attention, atol=1e-6)


def test_order_choice_training_uniform_evaluation_raster():
    decoder = make_decoder()
    torch.manual_seed(0)
    drawn = torch.tensor([decoder.train().choose_order() for _ in range(1800)])
    counts = torch.bincount(drawn, minlength=9)
    assert counts.min() > 150 and counts.max() < 250  # 200 expected each
    assert {decoder.eval().choose_order() for _ in range(50)} == {0}


def test_a_token_is_predicted_from_the_tokens_before_it_only():
    """Causal: in raster order, output i depends on BOS and tokens 0..i-1, not on token i or later ones."""
    decoder = make_decoder().eval()
    features, slots = torch.randn(1, 16, 16), torch.randn(1, 3, 8)
    changed = features.clone()
    changed[0, 6] += 5.0
    with torch.no_grad():
        a, b = decoder(features, slots)[0], decoder(changed, slots)[0]
    assert torch.equal(a[:, :7], b[:, :7])
    assert not torch.allclose(a[:, 7:], b[:, 7:])


# --- the model on its CPU config ----------------------------------------------------------------------------------

def test_synthetic_forward_backward_mse_on_detached_features_and_inf_norm_clip():
    config = get_config("spot", "synthetic")
    assert (config.train.grad_clip, config.train.grad_clip_norm_type) == (0.3, float("inf"))
    torch.manual_seed(0)
    model = build_model(config, CPU).train()
    out = model(torch.randn(2, 3, 32, 32))
    feature, recon = out.extras["feature"], out.extras["recon"]
    assert not feature.requires_grad and set(out.losses) == {"recon"}
    assert torch.allclose(out.losses["recon"], ((recon - feature) ** 2).mean())
    assert out.masks["decoder"] is out.extras["attentd"] and out.masks["aggregator"] is out.extras["attenta"]
    (out.losses["recon"] * 1e3).backward()
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert params and all(not n.startswith("encode_backbone.") for n, _ in params)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for _, p in params), \
        [n for n, p in params if p.grad is None or p.grad.abs().sum() == 0]
    before = max(p.grad.abs().max() for _, p in params)
    assert torch.isclose(model.clip_gradients(config.train), before)
    assert before > 0.3 and max(p.grad.abs().max() for _, p in params) <= 0.3 + 1e-6


def test_stage2_loads_the_stage1_checkpoint_as_the_authors_ckpt_map(tmp_path):
    torch.manual_seed(0)
    stage1 = build_model(get_config("spot", "synthetic"), CPU)
    with torch.no_grad():
        for p in stage1.parameters():  # "trained": unlike any fresh build
            p.add_(torch.randn_like(p))
    save_weights(stage1, tmp_path / "stage1.pth")
    config = get_config("spot-distill", "synthetic")
    torch.manual_seed(0)  # the same seed: the student's frozen copy is the stage's (random) backbone as built
    model = build_model(config, CPU, stage_weights=tmp_path / "stage1.pth")
    ours = stage1.state_dict()
    assert all(torch.equal(v, ours[k]) for k, v in model.teacher.state_dict().items())
    student = model.student.state_dict()
    for key, value in ours.items():
        if key.startswith("initializ."):
            assert student[key].shape == (1, config.num_slots, config.slot_dim)
        else:
            assert torch.equal(student[key], value), key
    backbone2 = {k[len("encode_backbone2."):]: v for k, v in student.items() if k.startswith("encode_backbone2.")}
    torch.manual_seed(0)
    fresh = build_model(get_config("spot", "synthetic"), CPU).encode_backbone.state_dict()
    assert backbone2.keys() == fresh.keys() and all(torch.equal(backbone2[k], fresh[k]) for k in fresh)
    assert not model.train().teacher.training and model.student.training


def test_stage2_forward_backward_reaches_only_the_trained_parts():
    config = get_config("spot-distill", "synthetic")
    torch.manual_seed(0)
    model = build_model(config, CPU, initial=False).train()
    out = model(torch.randn(2, 3, 32, 32))
    assert set(out.losses) == {"recon", "match"} and out.extras["attentd2"].shape == (2, 4, 16, 16)
    assert not out.extras["attentd2"].requires_grad
    sum(out.losses.values()).backward()
    trained = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert trained == {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith("student.encode_backbone.1.hf.encoder.layer.1.") for n in trained)
    assert not any(n.startswith(("teacher.", "student.encode_backbone2.")) for n in trained)


# --- matched cross-entropy ----------------------------------------------------------------------------------------

STUDENT = torch.tensor([[[0.9, 0.8, 0.3, 0.4], [0.1, 0.2, 0.7, 0.6]]])  # (1, 2 slots, 4 pixels): argmax 0 0 1 1
TEACHER = torch.tensor([[[0.2, 0.1, 0.4, 0.9], [0.8, 0.9, 0.6, 0.1]]])  # argmax 1 1 1 0


def test_matched_targets_by_hand():
    # IoU(s0, t1) = 2/3, IoU(s1, t0) = 1/2 beat IoU(s0, t0) + IoU(s1, t1) = 0 + 1/4: t1 → s0, t0 → s1
    assert matched_targets(STUDENT, TEACHER).tolist() == [[0, 0, 0, 1]]


def test_matched_cross_entropy_quirk_and_logits_by_hand():
    target = [0, 0, 0, 1]
    pixels = STUDENT[0].t().tolist()
    quirk = [-(p[t] - math.log(sum(math.exp(q) for q in p))) for p, t in zip(pixels, target)]
    proper = [-math.log(p[t]) for p, t in zip(pixels, target)]
    assert matched_cross_entropy(STUDENT, TEACHER).item() == pytest.approx(sum(quirk) / 4, rel=1e-6)
    assert matched_cross_entropy(STUDENT, TEACHER, "logits").item() == pytest.approx(sum(proper) / 4, rel=1e-6)
    logits = torch.randn(2, 5, 3, 3)
    teacher = torch.randn(2, 5, 3, 3).softmax(1)
    target = matched_targets(logits.softmax(1).flatten(2), teacher.flatten(2))
    assert matched_cross_entropy(logits.softmax(1), teacher, "logits").item() == pytest.approx(
        F.cross_entropy(logits.flatten(2), target).item(), rel=1e-5)  # log(softmax) ≡ logits under cross-entropy


@pytest.mark.parametrize("seed", range(5))
def test_matching_maximises_total_iou_like_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    n, m = 4, 30
    student, teacher = torch.rand(1, n, m, generator=g), torch.rand(1, n, m, generator=g)
    s, t = student.argmax(1)[0], teacher.argmax(1)[0]

    def iou(i, j):
        inter, union = ((s == i) & (t == j)).sum().item(), ((s == i) | (t == j)).sum().item()
        return inter / union if union else 0.0

    best = max(itertools.permutations(range(n)), key=lambda p: sum(iou(p[j], j) for j in range(n)))
    got = matched_targets(student, teacher)[0]
    assert sum(iou(got[t == j][0].item(), j) for j in t.unique().tolist()) == pytest.approx(
        sum(iou(best[j], j) for j in t.unique().tolist()))


# --- checkpoints evaluate through the CLI -------------------------------------------------------------------------

TINY = ["eval.batch_size=8"]


@pytest.mark.parametrize("method", ["spot", "spot-distill"])
def test_checkpoint_round_trips_strictly_and_evaluates_through_the_cli(method, tmp_path, capsys):
    write_synthetic(tmp_path / "data", SynthConfig(resolution=32, seed=3), train=8, val=8)
    config = get_config(method, "synthetic")
    torch.manual_seed(0)
    model = build_model(config, CPU, initial=False)
    save_weights(model, tmp_path / "ours.pth")
    state = read_weights(tmp_path / "ours.pth")
    assert all(k.startswith("m.") for k in state)
    reloaded = build_model(config, CPU, initial=False)
    load_weights(reloaded, tmp_path / "ours.pth", strict=True)
    assert all(torch.equal(v, state["m." + k]) for k, v in reloaded.state_dict().items())
    args = ["eval", "--method", method, "--dataset", "synthetic", "--data-dir", str(tmp_path / "data"),
            "--checkpoint", str(tmp_path / "ours.pth"), "--output", str(tmp_path / "out.json"), "--gallery", "0"]
    assert main(args + [a for o in TINY for a in ("--set", o)]) == 0
    record = json.loads((tmp_path / "out.json").read_text())
    assert record["identity"]["method"] == method and len(record["per_image"]["ari"]) == 8
    assert 0 <= record["means"]["mbo"] <= 1
    capsys.readouterr()


# --- tables and the runner ----------------------------------------------------------------------------------------

def test_v3_shows_the_published_spot_rows_per_seed():
    """docs/reference.md#published-numbers: SmoothSA's acc-v3.xlsx rows spot_r-<ds>-<seed> (stage 1 only)."""
    from harness.report.published import published_frame
    from harness.tables import TABLES

    frame = published_frame(TABLES.get("v3"))
    spot = frame[frame["method"] == "spot"]
    assert sorted(set(spot["label"])) == ["spot_r-clevrtex", "spot_r-coco", "spot_r-voc"]
    coco_ari = spot[(spot["label"] == "spot_r-coco") & (spot["metric"] == "ari")].set_index("seed")["value"]
    assert coco_ari.to_dict() == pytest.approx({42: 0.24065737, 43: 0.23927119, 44: 0.23215151})
    assert 100 * coco_ari.mean() == pytest.approx(23.736, abs=5e-4)
    assert not (frame["method"] == "spot-distill").any()


def test_the_runner_trains_spot_per_seed_under_the_learned_budget_before_spot_distill(tmp_path):
    from harness.engine import plan
    from harness.engine.discovery import Runner
    from harness.tables import TABLES, Row

    mini = TABLES.get("spot-ablation")
    assert "spot" in [r.method for r in mini.rows] and "spot-distill" in [r.method for r in mini.rows]
    runner = Runner(mini, data_dir=tmp_path, results=tmp_path, device="cpu", checkpoints=None, progress=False)
    cells = [c for c in plan(mini, tmp_path)[0] if c.row == Row("spot-distill", "synthetic", "spot-distill")]
    assert [runner.stage_of(c) for c in cells] == [("spot", "synthetic", seed) for seed in mini.seeds]
    config = mini.stage_config("spot", "synthetic")
    assert (config.train.steps, config.train.batch_size) == (mini.budget.steps, mini.budget.batch_size)
    assert "spot-distill" not in [r.method for r in TABLES.get("mini-random").rows]  # not at the table's budget
