"""SmoothSA as the DIAS authors release it (docs/reference.md#smoothsa): the checkpoint layout against their listing,
the preheater against a from-scratch re-implementation, which parameters each loss term trains, the detach schedule,
the random draws of a forward, the configs, and a short training run."""

import contextlib
import dataclasses
import math
import statistics

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from baselines.smoothsa import NormalSharedPreheated, build
from harness.config import WeightSchedule
from harness.errors import HarnessError
from harness.nn.checkpoint import load_weights, parse_listing, read_weights, save_weights, state_dict_listing
from harness.registry import create_model, get_config
from harness.run.train import freeze

LISTING = "keys_smoothsa_r-coco.txt"


def meta_model(dataset: str = "coco"):
    with torch.device("meta"):
        model = create_model("smoothsa", dataset)
    freeze(model, get_config("smoothsa", dataset).train.freeze)
    return model


def small_model(dtype=torch.float32, seed: int = 0, **overrides):
    """The synthetic config's model (frozen backbone as configured) with every parameter moved off its initial value,
    so that no gradient or output is zero by construction (LayerNorm weights 1, zero means and biases)."""
    config = get_config("smoothsa", "synthetic", overrides)
    torch.manual_seed(seed)
    model = create_model("smoothsa", config=config).to(dtype)
    freeze(model, config.train.freeze)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def images(b: int = 2, seed: int = 1, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(b, 3, 32, 32, generator=torch.Generator().manual_seed(seed)).to(dtype)


# --- checkpoint layout -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dataset", ["clevrtex", "coco", "voc"])
def test_state_dict_is_the_authors_listing_in_their_order(dataset, reference_dir):
    """docs/reference.md#checkpoints: 254 keys, 34 046 081 elements (the bool buffer counts 1), the preheater's 14
    entries between encode_project and aggregat; names, shapes, dtypes and order equal for every dataset."""
    reference = parse_listing(reference_dir / LISTING)
    assert len(reference) == 254 and sum(torch.Size(s).numel() for _, s, _ in reference) == 34_046_081
    assert state_dict_listing(meta_model(dataset)) == reference
    keys = [k for k, _, _ in reference]
    preheater = [i for i, k in enumerate(keys) if k.startswith("m.initializ.")]
    assert len(preheater) == 14 and preheater == list(range(preheater[0], preheater[0] + 14))
    assert keys[preheater[0] - 1] == "m.encode_project.3.bias" and keys[preheater[-1] + 1].startswith("m.aggregat.")
    assert ("m.initializ.detach_flag", (), "bool") in reference


def test_trainable_parameters_are_the_authors_count():
    """docs/reference.md#smoothsa: 12 416 896 trainable parameters, 1 148 416 of them the preheater's."""
    model = meta_model()
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 12_416_896
    assert sum(p.numel() for p in model.initializ.parameters()) == 1_148_416


def test_initial_values_follow_the_authors_reset():
    """Zero mean, logstd and logstd2; detach_flag True; qproj_kv's bias keeps its default init while the biases of
    encode_project and Slot Attention (GRU included) are zeroed."""
    torch.manual_seed(0)
    model = create_model("smoothsa", "synthetic")
    init = model.initializ
    assert all(torch.equal(p, torch.zeros(1, 1, 64)) for p in (init.mean, init.logstd, init.logstd2))
    assert init.detach_flag.dtype == torch.bool and init.detach_flag.shape == () and bool(init.detach_flag)
    assert init.qproj_kv.bias.abs().min() > 0
    zeroed = ["encode_project.1.bias", "encode_project.3.bias", "aggregat.rnn.bias_ih", "aggregat.rnn.bias_hh",
              "aggregat.ffn.0.bias", "aggregat.ffn.2.bias"]
    assert all(model.state_dict()[name].abs().max() == 0 for name in zeroed)
    assert not hasattr(init.qinit, "norm2")


# --- the preheater against a re-implementation -----------------------------------------------------------------------

def attention(q, k, v, in_proj, out_proj, heads):
    """Multi-head attention without biases, from its definition: q|k|v projections, softmax over the keys."""
    wq, wk, wv = in_proj.chunk(3)

    def split(x):
        return x.unflatten(-1, (heads, -1)).transpose(1, 2)  # (b, heads, length, head dim)

    q, k, v = split(q @ wq.T), split(k @ wk.T), split(v @ wv.T)
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1)
    return (weights @ v).transpose(1, 2).flatten(2) @ out_proj.T


def preheater_oracle(p, encode, eps1, eps2):
    """docs/reference.md#smoothsa, the preheater's steps 1–4 with plain matmuls; p: its state_dict. eps2 None:
    evaluation (no query noise)."""
    dim = p["mean"].shape[-1]
    x = p["mean"] + eps1 * p["logstd"].exp()
    memory = encode @ p["qproj_kv.weight"].T + p["qproj_kv.bias"]
    x = x + attention(x, memory, memory, p["qinit.multihead_attn.in_proj_weight"],
                      p["qinit.multihead_attn.out_proj.weight"], 4)
    h = F.layer_norm(x, (dim,), p["qinit.norm1.weight"], None, 1e-5)
    x = x + attention(h, h, h, p["qinit.self_attn.in_proj_weight"], p["qinit.self_attn.out_proj.weight"], 4)
    h = F.layer_norm(x, (dim,), p["qinit.norm3.weight"], None, 1e-5)
    qinit = x + F.gelu(h @ p["qinit.linear1.weight"].T) @ p["qinit.linear2.weight"].T
    return qinit, qinit if eps2 is None else qinit + eps2 * p["logstd2"].exp()


def random_preheater(eval_noise="sample", b=3, n=5, dim=16, kv_dim=24):
    """A float64 preheater with every parameter random (the zero-initialised ones too) and its input."""
    torch.manual_seed(0)
    module = NormalSharedPreheated(n, dim, kv_dim, eval_noise).double()
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    return module, torch.randn(b, 11, kv_dim, dtype=torch.float64)


@pytest.mark.parametrize("detach", [True, False])
def test_preheater_in_training_equals_the_re_implementation(detach):
    """Both noises pinned by the seed: ε1 then ε2, each N(0, 1) of shape (b, n, dim). The flag changes gradients
    only, never values."""
    module, encode = random_preheater()
    module.detach_flag.fill_(detach)
    torch.manual_seed(7)
    qinit, query = module.train()(encode)
    torch.manual_seed(7)
    eps1, eps2 = torch.randn(3, 5, 16, dtype=torch.float64), torch.randn(3, 5, 16, dtype=torch.float64)
    want_qinit, want_query = preheater_oracle(module.state_dict(), encode, eps1, eps2)
    assert (qinit - want_qinit).abs().max() < 1e-12 and (query - want_query).abs().max() < 1e-12
    mean_grad, logstd2_grad = torch.autograd.grad(query.sum(), [module.mean, module.logstd2], allow_unused=True)
    assert mean_grad is None and logstd2_grad.abs().min() > 0  # qinit enters the query detached, its noise does not


def test_preheater_in_evaluation_equals_the_re_implementation():
    """ε1 is still drawn; no query noise."""
    module, encode = random_preheater()
    torch.manual_seed(8)
    qinit, query = module.eval()(encode)
    torch.manual_seed(8)
    want, _ = preheater_oracle(module.state_dict(), encode, torch.randn(3, 5, 16, dtype=torch.float64), None)
    assert (qinit - want).abs().max() < 1e-12 and torch.equal(query, qinit)


def test_preheater_eval_noise_mean_starts_every_slot_alike():
    """eval_noise="mean": ε1 = 0, so the shared mean gives n identical queries (docs/reference.md#smoothsa)."""
    module, encode = random_preheater("mean")
    qinit, query = module.eval()(encode)
    want, _ = preheater_oracle(module.state_dict(), encode, torch.zeros(3, 5, 16, dtype=torch.float64), None)
    assert (qinit - want).abs().max() < 1e-12
    assert (query - query[:, :1]).abs().max() < 1e-12


# --- which parameters each loss term trains --------------------------------------------------------------------------

def group_of(name: str) -> str:
    if name.startswith("initializ."):
        return "logstd2" if name == "initializ.logstd2" else "preheater"
    return name.split(".")[0]


def trained_groups(model, loss) -> dict[str, set[str]]:
    """{group: names of its parameters with a non-zero gradient from `loss` alone}."""
    model.zero_grad(set_to_none=True)
    loss.backward()
    found = {}
    for name, p in model.named_parameters():
        if p.grad is not None and p.grad.abs().max() > 0:
            found.setdefault(group_of(name), set()).add(name)
    return found


def term(model, name: str, training: bool, flag: bool, seed: int = 3):
    model.train(training)
    model.initializ.detach_flag.fill_(flag)
    torch.manual_seed(seed)
    return model(images()).losses[name]


@pytest.mark.parametrize("flag", [True, False])
def test_reconstruction_trains_the_encoder_projection_slot_attention_decoder_and_logstd2(flag):
    """docs/reference.md#smoothsa, the table's recon column: not the preheater (its output is detached before Slot
    Attention); logstd2 through the bi-level straight-through path, in training only."""
    model = small_model()
    assert set(trained_groups(model, term(model, "recon", True, flag))) == {"encode_project", "logstd2", "aggregat",
                                                                           "decode"}
    assert set(trained_groups(model, term(model, "recon", False, flag))) == {"encode_project", "aggregat", "decode"}


def test_preheat_trains_the_preheater_and_the_encoder_projection_once_undetached():
    """The preheat columns: the whole preheater but logstd2, every one of its parameters; encode_project only once
    detach_flag is False; nothing downstream of the (detached) slots."""
    model = small_model()
    preheater = {n for n, _ in model.named_parameters() if group_of(n) == "preheater"}
    detached = trained_groups(model, term(model, "preheat", True, flag=True))
    assert detached == {"preheater": preheater}
    undetached = trained_groups(model, term(model, "preheat", True, flag=False))
    assert set(undetached) == {"preheater", "encode_project"} and undetached["preheater"] == preheater


def gradients(model, loss) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_reconstruction_reaches_slot_attention_through_its_last_iteration_only():
    """Bi-level truncation written out: iterations 0–1 without a graph, the last one from their slots with the
    query's gradient passed straight through. Same draws (seeded), same gradients for every parameter; without the
    truncation Slot Attention's would differ."""
    model = small_model(torch.float64).train()
    x = images(dtype=torch.float64)
    torch.manual_seed(5)
    full = gradients(model, model(x).losses["recon"])

    torch.manual_seed(5)
    feature = model.encode_backbone(x).detach()
    encode = model.encode_project(feature.permute(0, 2, 3, 1).flatten(1, 2))
    _, query = model.initializ(encode)
    with torch.no_grad():
        slots, _ = model.aggregat(encode, query, num_iter=2)
    slots, _ = model.aggregat(encode, slots + query - query.detach(), num_iter=1)
    recon, _ = model.decode(feature.flatten(2).transpose(1, 2), slots)
    manual = gradients(model, F.mse_loss(recon.transpose(1, 2).reshape(feature.shape), feature))
    assert full.keys() == manual.keys()
    scale = max(g.abs().max() for g in manual.values())  # norm1q.bias's gradient is zero up to rounding
    assert all((full[n] - manual[n]).abs().max() <= 1e-12 * scale for n in full)

    model.aggregat.trunc_bp = None
    torch.manual_seed(5)
    untruncated = gradients(model, model(x).losses["recon"])
    assert (untruncated["aggregat.proj_q.weight"] - full["aggregat.proj_q.weight"]).abs().max() > 1e-6


# --- the detach schedule ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("total,cut", [(50_000, 5_000), (100_000, 10_000), (800, 80), (805, 80)])
def test_detach_flag_is_the_authors_square_wave(total, cut):
    """True for steps 0 … total//10 − 1, False from total//10 to the end (the schedule's 0-based step)."""
    model = small_model()
    for step, expected in ((0, True), (cut - 1, True), (cut, False), (cut + 1, False), (total - 1, False)):
        model.before_step(step, total)
        assert model.initializ.detach_flag.item() is expected, step


@pytest.mark.parametrize("saved_at,resumed_at", [(900, 0), (0, 900)])
def test_a_loaded_flag_is_overwritten_by_the_step(saved_at, resumed_at, tmp_path):
    """The flag is saved in the checkpoint (0-dim bool, strict load) and loaded as saved, but the next step's hook
    sets the schedule's value whatever was loaded."""
    model = small_model()
    model.before_step(saved_at, 1000)
    save_weights(model, tmp_path / "w.pth")
    saved = read_weights(tmp_path / "w.pth")["m.initializ.detach_flag"]
    assert saved.dtype == torch.bool and saved.shape == () and saved.item() is (saved_at < 100)
    fresh = small_model(seed=1)
    fresh.initializ.detach_flag.fill_(not saved.item())
    load_weights(fresh, tmp_path / "w.pth")
    assert fresh.initializ.detach_flag.item() is (saved_at < 100)
    fresh.before_step(resumed_at, 1000)
    assert fresh.initializ.detach_flag.item() is (resumed_at < 100)


# --- random draws ----------------------------------------------------------------------------------------------------

class RandomDraws(TorchDispatchMode):
    """Records (op, shape) of every seeded random op: those torch tags nondeterministic_seeded, except the fused
    attention kernels, which carry the tag for a dropout that is 0 here (the generator's state shows they draw
    nothing)."""

    def __init__(self):
        super().__init__()
        self.draws = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if torch.Tag.nondeterministic_seeded in func.tags and not name.startswith("_scaled_dot_product"):
            self.draws.append((name, tuple(out.shape)))
        return out


def draws_of(model, training: bool, masks_only: bool = False) -> tuple[list, torch.Tensor]:
    """The recorded draws of one forward from seed 0, and the CPU generator's state after it."""
    model.train(training)
    x = images()
    torch.manual_seed(0)
    with torch.no_grad(), RandomDraws() as record, model.masks_only() if masks_only else contextlib.nullcontext():
        model(x)
    return record.draws, torch.get_rng_state()


def state_after(*draws) -> torch.Tensor:
    """The CPU generator's state after `draws` (functions of nothing) from seed 0."""
    torch.manual_seed(0)
    for draw in draws:
        draw()
    return torch.get_rng_state()


def test_evaluation_draws_exactly_the_slot_noise():
    """docs/reference.md#smoothsa: one draw, ε1 (b, n, slot dim), with and without masks_only; none with
    eval_noise="mean"."""
    eps1 = ("randn_like", (2, 4, 64))
    one = state_after(lambda: torch.randn(2, 4, 64))
    for masks_only in (False, True):
        draws, state = draws_of(small_model(), False, masks_only)
        assert draws == [eps1] and torch.equal(state, one)
    draws, state = draws_of(small_model(eval_noise="mean"), False)
    assert draws == [] and torch.equal(state, state_after())


def test_training_draws_both_noises_then_the_decoders():
    """ε1, ε2, then the harness decoder's permutation keys, uniform keep counts and their coin (dias/decoder.py)."""
    draws, state = draws_of(small_model(), True)
    assert draws == [("randn_like", (2, 4, 64)), ("randn_like", (2, 4, 64)), ("rand", (2, 256)),
                     ("randint", (2, 1)), ("rand", (2, 1))]
    assert torch.equal(state, state_after(lambda: torch.randn(2, 4, 64), lambda: torch.randn(2, 4, 64),
                                          lambda: torch.rand(2, 256), lambda: torch.randint(0, 255, (2, 1)),
                                          lambda: torch.rand(2, 1)))


def test_masks_only_gives_the_full_forwards_masks():
    model = small_model().eval()
    with torch.no_grad():
        torch.manual_seed(4)
        full = model(images())
        torch.manual_seed(4)
        with model.masks_only():
            masks = model(images())
    assert not masks.losses and "recon" not in masks.extras
    assert all(torch.equal(full.masks[k], masks.masks[k]) for k in ("decoder", "aggregator"))
    assert torch.equal(full.masks["aggregator"], full.extras["attenta"])


# --- configs ---------------------------------------------------------------------------------------------------------

def recipe(config) -> dict:
    """Every field of a config but its method name and loss weights."""
    fields = dataclasses.asdict(config)
    del fields["method"], fields["train"]["loss_weights"]
    return fields


@pytest.mark.parametrize("dataset,slots,steps", [("clevrtex", 11, 50_000), ("coco", 7, 100_000), ("voc", 6, 50_000)])
def test_full_size_configs_are_the_authors(dataset, slots, steps):
    """docs/reference.md#smoothsa: DIAS's recipe (batch 32, Adam 2e-4, warm-up total/20, L2 clip 1, AMP fp16,
    validation every total/40, checkpoints from total/2, frozen backbone, decoder mask) with the preheat loss at a
    constant 100 instead of the distillation; everything else as DIAS's config of the dataset."""
    config, dias = get_config("smoothsa", dataset), get_config("dias", dataset)
    t = config.train
    assert (config.num_slots, t.steps, t.batch_size, t.lr, t.warmup_steps, t.grad_clip, t.grad_clip_norm_type) == (
        slots, steps, 32, 2e-4, steps // 20, 1.0, 2.0)
    assert (t.val_interval, t.save_since, t.amp, t.freeze) == (steps // 40, steps // 2, "fp16", [r"^encode_backbone\."])
    assert t.loss_weights == {"preheat": WeightSchedule(kind="constant", end=100.0)}
    assert [t.loss_weights["preheat"](s, steps) for s in (0, steps // 2, steps)] == [100.0] * 3
    assert (config.eval.mask, config.eval_noise, config.slot_dim, config.backbone.registers) == (
        "decoder", "sample", 256, 4)
    assert recipe(config) == recipe(dias)


@pytest.mark.parametrize("dataset", ["synthetic", "textured"])
def test_small_configs_are_dias_sizes_with_the_authors_preheat_weight(dataset):
    config, dias = get_config("smoothsa", dataset), get_config("dias", dataset)
    assert config.train.loss_weights == {"preheat": WeightSchedule(kind="constant", end=100.0)}
    assert recipe(config) == recipe(dias)


def test_bad_configs_are_refused_with_one_message():
    with pytest.raises(HarnessError, match="extension"):
        build(get_config("smoothsa", "synthetic", ["extension.reinit=true"]))
    with pytest.raises(HarnessError, match="smoothsa config: resolution 64"):
        build(get_config("smoothsa", "synthetic", ["resolution=64"]))
    with pytest.raises(HarnessError, match="eval_noise"):
        build(get_config("smoothsa", "synthetic", ["eval_noise=zero"]))


# --- learning --------------------------------------------------------------------------------------------------------

def test_a_short_training_run_lowers_both_losses(scenes):
    """40 steps at batch 8 of the synthetic config (its lr, loss weights and clipping, the schedule's detach flag):
    finite losses, each term lower over the last ten steps than over the first ten."""
    config = get_config("smoothsa", "synthetic")
    model = small_model().train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.train.lr)
    data = scenes(64, resolution=config.resolution, seed=0)
    g = torch.Generator().manual_seed(0)
    losses = []
    for step in range(40):
        model.before_step(step, 40)
        out = model(data[torch.randint(0, len(data), (8,), generator=g)])
        weights = {k: w(step, 40) for k, w in config.train.loss_weights.items()}
        total = sum(v * weights.get(k, 1.0) for k, v in out.losses.items())
        optimizer.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(params, config.train.grad_clip)
        optimizer.step()
        losses.append({k: v.item() for k, v in out.losses.items()})
    assert all(math.isfinite(v) for step in losses for v in step.values())
    for name in ("recon", "preheat"):
        first, last = (statistics.mean(s[name] for s in losses[part]) for part in (slice(0, 10), slice(-10, None)))
        assert last < first, (name, first, last)


# --- tables ----------------------------------------------------------------------------------------------------------

def test_v3_shows_the_published_smoothsa_rows_per_seed():
    """docs/reference.md#published-numbers: SmoothSA's acc-v3.xlsx rows smoothsa_r-<ds>-<seed>."""
    from harness.report.published import published_frame
    from harness.tables import TABLES

    frame = published_frame(TABLES.get("v3"))
    smoothsa = frame[frame["method"] == "smoothsa"]
    assert sorted(set(smoothsa["label"])) == ["smoothsa_r-clevrtex", "smoothsa_r-coco", "smoothsa_r-voc"]
    coco_ari = smoothsa[(smoothsa["label"] == "smoothsa_r-coco") & (smoothsa["metric"] == "ari")]
    assert coco_ari.set_index("seed")["value"].to_dict() == pytest.approx({42: 0.30330905, 43: 0.2927475,
                                                                           44: 0.28331569})


def test_the_recognition_probe_reads_the_slot_attention_map():
    """docs/reference.md#object-recognition-probe: SmoothSA's probe takes the final slots (256 wide) and attenta, the
    last Slot Attention map, which the model returns as "aggregator"; threshold 1e-3 = protocol smoothsa-v3."""
    from harness.engine.recognition import probe_config
    from harness.metrics.recognition import RECOGNITION_PROTOCOLS
    from harness.tables import TABLES

    table = TABLES.get("recogn-v3")
    row = next(r for r in table.rows if r.method == "smoothsa")
    config = probe_config(table, row)
    assert (row.label, config.slot_dim, config.protocol, table.protocol) == ("smoothsa_r-coco", 256, "smoothsa-v3",
                                                                             "smoothsa-v3")
    protocol = RECOGNITION_PROTOCOLS.get("smoothsa-v3")
    assert (protocol.mask, protocol.iou_threshold) == ("aggregator", 1e-3)
