"""The random-order masked decoder: layer loop = nn.TransformerDecoder, keep rule, (un)shuffling, eval path."""

import pytest
import torch

import dias.decoder as decoder_module
from dias.decoder import FIXED_KEEP, RandomOrderDecoder, random_orders, sample_keep_counts


def make_decoder(m: int = 16, seed: int = 0) -> RandomOrderDecoder:
    torch.manual_seed(seed)
    dec = RandomOrderDecoder(dim=32, slot_dim=24, num_tokens=m, num_layers=3, num_heads=4, ffn_dim=64)
    with torch.no_grad():  # layers are deep copies of one layer: make them differ so that order matters
        for p in dec.backbone.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return dec


def authors_style(dec: RandomOrderDecoder, query, memory, key_padding_mask=None):
    """Oracle: nn.TransformerDecoder's own forward, with the last cross-attention's weights taken by forward hooks
    (need_weights forced on), as the authors do."""
    captured = {}
    attn = dec.backbone.layers[-1].multihead_attn

    def pre(module, args, kwargs):
        kwargs["need_weights"] = True
        return args, kwargs

    def post(module, args, output):
        captured["w"] = output[1]

    handles = [attn.register_forward_pre_hook(pre, with_kwargs=True), attn.register_forward_hook(post)]
    try:
        out = dec.backbone(query, memory, memory_key_padding_mask=key_padding_mask)
    finally:
        for h in handles:
            h.remove()
    return out, captured["w"]


@pytest.mark.parametrize("training", [False, True])
def test_layer_loop_equals_transformer_decoder(training):
    dec = make_decoder().train(training)
    query, memory = torch.randn(2, 16, 32), torch.randn(2, 5, 32)
    padding = torch.tensor([[False, False, True, False, False], [False] * 5])
    for mask in (None, padding):
        with torch.no_grad():
            ours, weights = dec.decode_layers(query, memory, mask)
            ref, ref_weights = authors_style(dec, query, memory, mask)
        assert torch.equal(ours, ref) and torch.equal(weights, ref_weights)
    assert weights.shape == (2, 16, 5)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 16))
    assert weights[0, :, 2].abs().max() == 0  # a padded slot gets no weight


def test_keep_counts_follow_the_authors_rule():
    torch.manual_seed(0)
    keep = sample_keep_counts(20_000, 64)
    assert keep.shape == (20_000, 1) and FIXED_KEEP == 24
    fixed = (keep == 24).float().mean().item()
    assert abs(fixed - (0.5 + 0.5 / 63)) < 0.015  # 24 w.p. 0.5, plus the uniform draw landing on 24
    assert keep.min() == 0 and keep.max() == 62  # randint(0, m-1): m-1 itself never drawn
    assert (sample_keep_counts(1000, 16) <= 24).all()  # 24 is kept even when m < 25 (all tokens visible)


def test_orders_are_permutations():
    orders = random_orders(8, 16)
    assert torch.equal(orders.sort(1).values, torch.arange(16).expand(8, -1))
    assert len({tuple(o.tolist()) for o in orders}) == 8


def capture_query(dec):
    """The decoder's query (the input of norm0) on the next forward."""
    store = {}
    handle = dec.norm0.register_forward_pre_hook(lambda mod, args: store.__setitem__("q", args[0].detach()))
    return store, handle


def test_training_masks_visible_tokens_of_a_random_order():
    """Re-drawing the same random numbers (same seed, same order of draws) predicts the query exactly."""
    m, b = 16, 4
    dec = make_decoder(m).train()
    features, slots = torch.randn(b, m, 32), torch.randn(b, 5, 24)
    store, handle = capture_query(dec)
    torch.manual_seed(123)
    with torch.no_grad():
        dec(features, slots)
    handle.remove()
    torch.manual_seed(123)
    order = random_orders(b, m)
    keep = sample_keep_counts(b, m)
    with torch.no_grad():
        tokens, pe = dec.project1(features), dec.posit_embed.table[0]
    for i in range(b):
        for j in range(m):
            src = order[i, j]
            visible_row = tokens[i, src] + pe[src]
            masked_row = dec.mask_token[0, 0] + pe[src]
            expected = visible_row if j < keep[i, 0] else masked_row
            assert torch.allclose(store["q"][i, j], expected, atol=1e-6)
    visible = (store["q"] - (dec.mask_token[0] + pe[order]).detach()).abs().amax(-1) > 1e-6
    assert torch.equal(visible.sum(1), keep[:, 0].clamp(max=m))


def test_unshuffling_restores_token_order(monkeypatch):
    """With every token visible, training = evaluation up to float error: the decoder is permutation-equivariant
    (no causal mask, positions travel with tokens), so this holds only if outputs and attention are un-shuffled."""
    m = 16
    dec = make_decoder(m)
    features, slots = torch.randn(3, m, 32), torch.randn(3, 5, 24)
    with torch.no_grad():
        recon_eval, attn_eval = dec.eval()(features, slots)
        monkeypatch.setattr(decoder_module, "sample_keep_counts", lambda b, m, p, device: torch.full((b, 1), m))
        recon_train, attn_train = dec.train()(features, slots)
        monkeypatch.setattr(decoder_module, "random_orders", lambda b, m, device: torch.arange(m).expand(b, -1))
        recon_plain, _ = dec(features, slots)
    assert attn_train.shape == (3, 5, m)
    assert torch.allclose(recon_train, recon_eval, atol=1e-5) and torch.allclose(attn_train, attn_eval, atol=1e-6)
    assert not torch.allclose(recon_train[:, 0], recon_train[:, 1])  # tokens differ, so order was tested
    assert torch.allclose(recon_plain, recon_eval, atol=1e-5)


def test_eval_path_is_unmasked_unshuffled_and_deterministic():
    m = 16
    dec = make_decoder(m).eval()
    features, slots = torch.randn(2, m, 32), torch.randn(2, 5, 24)
    store, handle = capture_query(dec)
    with torch.no_grad():
        recon, attn = dec(features, slots)
        recon2, attn2 = dec(features, slots)
        expected_query = dec.project1(features) + dec.posit_embed.table
        expected, weights = dec.decode_layers(dec.norm0(expected_query), dec.project2(slots))
    handle.remove()
    assert torch.equal(store["q"], expected_query)
    assert torch.equal(recon, expected) and torch.equal(attn, weights.transpose(1, 2))
    assert torch.equal(recon, recon2) and torch.equal(attn, attn2)


def test_dropped_slots_get_no_decoder_attention():
    dec = make_decoder().eval()
    smask = torch.tensor([[True, False, True, True, False], [True] * 5])
    with torch.no_grad():
        _, attn = dec(torch.randn(2, 16, 32), torch.randn(2, 5, 24), smask)
    assert attn[0, [1, 4]].abs().max() == 0 and attn[1].min() > 0
    assert torch.allclose(attn.sum(1), torch.ones(2, 16))


def test_token_count_is_checked():
    with pytest.raises(ValueError, match="16 tokens"):
        make_decoder(16)(torch.randn(1, 9, 32), torch.randn(1, 5, 24))
