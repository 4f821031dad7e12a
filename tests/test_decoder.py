"""The decoder's key-value cache, causal masks for n_q != n_k, and sampling (top-k, top-p, greedy)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F
from torch.testing import assert_close

from attnlib import Config, KVCache, TransformerLM, attention, causal_mask, filter_logits, generate, kv_cache_bytes
from attnlib.experiments.language_modelling import LSTMLM

VOCAB, CONTEXT = 11, 16
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def _model(dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    return TransformerLM(Config(VOCAB, CONTEXT, d_model=16, n_heads=4, n_layers=2)).to(dtype).eval()


# ---------------------------------------------------------------- causal masks when n_q != n_k


@settings(deadline=None, max_examples=40)
@given(st.integers(1, 6), st.integers(0, 6), st.integers(0, 1000))
def test_bottom_right_mask_equals_sdpa_with_that_explicit_mask_and_the_last_rows_of_full_causal(n_q, n_past, seed):
    n_k = n_past + n_q
    g = torch.Generator().manual_seed(seed)
    q_all, k, v = (torch.randn(2, 3, n_k, 8, generator=g, dtype=torch.float64) for _ in range(3))
    q = q_all[..., n_past:, :]  # the last n_q positions: a block of new queries after n_past cached keys
    i, j = torch.arange(n_q)[:, None], torch.arange(n_k)[None, :]
    explicit = j <= i + n_k - n_q  # (n_q, n_k): query i stands at position n_k - n_q + i
    out, _ = attention(q, k, v, mask=causal_mask(n_q, n_k, align="bottom_right"))
    assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=explicit), rtol=0, atol=1e-12)
    full = F.scaled_dot_product_attention(q_all, k, v, is_causal=True)  # (2, 3, n_k, 8)
    assert_close(out, full[..., n_past:, :], rtol=0, atol=1e-12)


@pytest.mark.parametrize("n_q,n_k", [(2, 5), (3, 3), (1, 4)])
def test_top_left_mask_is_sdpas_is_causal_and_wrong_for_a_cached_block(n_q, n_k):
    g = torch.Generator().manual_seed(0)
    q_all, k, v = (torch.randn(1, 2, n_k, 8, generator=g, dtype=torch.float64) for _ in range(3))
    q = q_all[..., n_k - n_q :, :]
    out, _ = attention(q, k, v, mask=causal_mask(n_q, n_k))  # align="top_left", the default
    assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True), rtol=0, atol=1e-12)
    right = F.scaled_dot_product_attention(q_all, k, v, is_causal=True)[..., n_k - n_q :, :]
    if n_q == n_k:
        assert_close(out, right, rtol=0, atol=1e-12)  # no cache: both alignments agree
    else:
        assert not torch.allclose(out, right)  # the trap: queries lose sight of their latest keys


def test_causal_mask_rejects_unknown_alignment():
    with pytest.raises(ValueError, match="unknown align 'bottom'"):
        causal_mask(2, 5, align="bottom")


# ---------------------------------------------------------------- the key-value cache


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cached_logits_equal_a_full_recomputation(dtype):
    model = _model(dtype)
    ids = torch.randint(VOCAB, (3, CONTEXT), generator=torch.Generator().manual_seed(1))
    full = model(ids)  # (3, CONTEXT, VOCAB), no cache
    cache = KVCache(model.config.n_layers)
    steps = [model(ids[:, :5], cache)]  # a prompt of 5 tokens fills the cache
    steps.append(model(ids[:, 5:8], cache))  # a block of 3 new tokens (bottom-right mask)
    for t in range(8, CONTEXT):
        steps.append(model(ids[:, t : t + 1], cache))  # one token at a time
    assert len(cache) == CONTEXT
    assert_close(torch.cat(steps, dim=1), full, rtol=0, atol=TOL[dtype])


def test_a_cached_step_computes_one_query_and_keeps_every_key():
    model = _model()
    cache = KVCache(model.config.n_layers)
    model(torch.randint(VOCAB, (2, 7)), cache)
    _, weights = model.forward_with_weights(torch.randint(VOCAB, (2, 1)), cache)
    assert all(w.shape == (2, 4, 1, 8) for w in weights)  # one query, 7 cached keys + its own
    assert all(k.shape == v.shape == (2, 4, 8, 4) for k, v in zip(cache.keys, cache.values, strict=True))


def test_cache_memory_is_two_layers_positions_width_bytes():
    model = _model(torch.float32)
    cache = KVCache(model.config.n_layers)
    model(torch.randint(VOCAB, (1, 9)), cache)
    assert cache.nbytes() == kv_cache_bytes(n_layers=2, n=9, d_model=16, bytes_per_number=4) == 2 * 2 * 9 * 16 * 4


def test_cache_cannot_grow_past_the_context():
    model = _model()
    cache = KVCache(model.config.n_layers)
    model(torch.randint(VOCAB, (1, CONTEXT)), cache)
    with pytest.raises(ValueError, match=rf"cached {CONTEXT} \+ new 1\) must be between 1 and context={CONTEXT}"):
        model(torch.randint(VOCAB, (1, 1)), cache)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("temperature,top_k,top_p", [(0, None, None), (1.0, None, None), (0.8, 4, None),
                                                     (1.0, None, 0.7)])
def test_cached_generation_equals_uncached_token_for_token_also_past_the_context(dtype, temperature, top_k, top_p):
    model = _model(dtype)
    prompt = torch.tensor([1, 2, 3, 4, 5])

    def run(use_cache):
        return generate(model, prompt, 3 * CONTEXT, temperature=temperature, top_k=top_k, top_p=top_p,
                        generator=torch.Generator().manual_seed(7), use_cache=use_cache)

    cached, uncached = run(True), run(False)
    assert cached.shape == (5 + 3 * CONTEXT,)
    assert torch.equal(cached, uncached)


class _Recording(TransformerLM):
    """A TransformerLM that remembers the token ids of its first call and the logits it returned."""

    def forward(self, idx, cache=None):
        logits = super().forward(idx, cache)
        self.calls = getattr(self, "calls", []) + [(idx.clone(), logits.clone())]
        return logits


@pytest.mark.parametrize("use_cache", [True, False])
def test_generate_reads_exactly_the_last_context_tokens(use_cache):
    torch.manual_seed(0)
    model = _Recording(Config(VOCAB, CONTEXT, d_model=16, n_heads=4, n_layers=2)).double()
    prompt = torch.randint(VOCAB, (CONTEXT + 5,), generator=torch.Generator().manual_seed(2))
    before, inside = prompt.clone(), prompt.clone()
    before[-CONTEXT - 1] = (prompt[-CONTEXT - 1] + 1) % VOCAB  # the newest token outside the window
    inside[-CONTEXT] = (prompt[-CONTEXT] + 1) % VOCAB  # the oldest token inside it
    runs = {}
    for name, p in [("prompt", prompt), ("before", before), ("inside", inside)]:
        model.calls = []
        ids = generate(model, p, 6, temperature=1.0, generator=torch.Generator().manual_seed(0), use_cache=use_cache)
        runs[name] = ids[len(p) :], model.calls[0]
    new, (first_idx, first_logits) = runs["prompt"]
    assert torch.equal(first_idx, prompt[-CONTEXT:][None])  # the first call reads the window, nothing more
    assert torch.equal(runs["before"][0], new)  # a token before the window changes nothing
    assert torch.equal(runs["before"][1][1], first_logits)
    assert not torch.allclose(runs["inside"][1][1][0, -1], first_logits[0, -1])  # one inside it changes the logits


# ---------------------------------------------------------------- sampling: temperature, top-k, top-p


def _top_p_reference(logits, p):
    """Keep tokens in order of probability until the kept mass reaches p (a plain Python loop)."""
    probs = torch.softmax(logits.double(), -1).tolist()
    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    kept, mass = set(), 0.0
    for i in order:
        if mass >= p:
            break
        kept.add(i)
        mass += probs[i]
    return kept


@settings(deadline=None, max_examples=60)
@given(st.lists(st.floats(-5, 5), min_size=2, max_size=12, unique=True), st.integers(1, 12),
       st.floats(0.05, 0.95))
def test_filters_keep_what_their_definitions_say(values, k, p):
    logits = torch.tensor(values, dtype=torch.float64)
    kept_k = filter_logits(logits, top_k=k).isfinite()
    assert set(kept_k.nonzero().flatten().tolist()) == set(logits.topk(min(k, len(values))).indices.tolist())
    kept_p = filter_logits(logits, top_p=p).isfinite()
    assert set(kept_p.nonzero().flatten().tolist()) == _top_p_reference(logits, p)
    assert torch.equal(filter_logits(logits, top_p=p)[kept_p], logits[kept_p])  # kept logits unchanged


def test_filters_that_remove_nothing_give_exactly_the_plain_draw():
    model = _model(torch.float32)
    prompt = torch.tensor([3])

    def run(**filters):
        return generate(model, prompt, 60, temperature=1.0, generator=torch.Generator().manual_seed(4), **filters)

    plain = run()
    assert torch.equal(run(top_k=VOCAB), plain)
    assert torch.equal(run(top_p=1.0), plain)
    assert not torch.equal(run(top_k=2), plain)  # a filter that removes something changes the text


@pytest.mark.parametrize("filters", [{"top_k": 1}, {"top_p": 1e-6}])
def test_top_1_and_a_tiny_nucleus_are_greedy(filters):
    model = _model(torch.float32)
    greedy = torch.tensor([4])
    with torch.no_grad():
        for _ in range(30):
            greedy = torch.cat([greedy, model(greedy[-CONTEXT:][None])[0, -1].argmax()[None]])  # the argmax loop
    assert torch.equal(generate(model, torch.tensor([4]), 30, temperature=0, generator=None), greedy)
    sampled = generate(model, torch.tensor([4]), 30, temperature=1.5, generator=torch.Generator().manual_seed(0),
                       **filters)
    assert torch.equal(sampled, greedy)


class _FixedLogits(nn.Module):
    """A 'model' whose next-token logits are always the same: isolates the sampling step."""

    def __init__(self, logits, context=4):
        super().__init__()
        self.logits, self.context = logits, context

    def forward(self, idx):
        return self.logits.expand(*idx.shape, -1)  # (batch, n, vocab)


@pytest.mark.parametrize("temperature,top_k", [(0.5, None), (1.0, None), (2.0, None), (1.0, 2), (2.0, 3)])
def test_sampling_follows_softmax_of_the_filtered_logits_over_temperature(temperature, top_k):
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    n = 4000
    ids = generate(_FixedLogits(logits), torch.tensor([0]), n, temperature=temperature, top_k=top_k,
                   generator=torch.Generator().manual_seed(0), use_cache=False)[1:]
    freq = torch.bincount(ids, minlength=4).double() / n
    p = torch.softmax(logits.double() / temperature, -1)
    if top_k is not None:
        p[top_k:] = 0  # the logits are sorted: top-k keeps the first k, renormalised
        p = p / p.sum()
    assert ((freq - p).abs() <= 5 * (p * (1 - p) / n).sqrt()).all()  # within 5 standard errors
    assert (freq[p == 0] == 0).all()


def test_sampling_with_a_seed_is_reproducible_and_another_seed_differs():
    model = _model(torch.float32)

    def sample(seed):
        generator = torch.Generator().manual_seed(seed)
        return generate(model, torch.tensor([1, 2, 3]), 40, temperature=1.0, generator=generator)

    a, b, c = sample(0), sample(0), sample(1)
    assert a.shape == (43,) and torch.equal(a[:3], torch.tensor([1, 2, 3]))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_generate_works_for_the_lstm_without_a_cache():
    torch.manual_seed(0)
    lstm = LSTMLM(VOCAB, CONTEXT, d_model=8)
    ids = generate(lstm, torch.tensor([1]), 20, temperature=1.0, generator=torch.Generator().manual_seed(0),
                   use_cache=False)
    assert ids.shape == (21,)
    with pytest.raises(ValueError, match="use_cache=True needs a TransformerLM, got LSTMLM"):
        generate(lstm, torch.tensor([1]), 2, temperature=1.0, generator=torch.Generator())


@pytest.mark.parametrize("kwargs,error,match", [
    ({"temperature": -1.0}, ValueError, r"temperature must be a number >= 0 \(0 = greedy\), got -1.0"),
    ({"temperature": 1.0, "top_k": 0}, ValueError, "top_k must be >= 1, got 0"),
    ({"temperature": 1.0, "top_k": 2.5}, TypeError, "top_k must be an int, got float"),
    ({"temperature": 1.0, "top_p": 0.0}, ValueError, r"top_p must lie in \(0, 1\], got 0.0"),
    ({"temperature": 1.0, "top_p": 1.5}, ValueError, r"top_p must lie in \(0, 1\], got 1.5"),
    ({"temperature": 1.0, "top_p": -0.1}, ValueError, r"top_p must lie in \(0, 1\], got -0.1"),
    ({"temperature": 1.0, "generator": None}, TypeError, "needs a torch.Generator, got NoneType"),
])
def test_bad_sampling_arguments_get_clear_errors(kwargs, error, match):
    kwargs = {"generator": torch.Generator(), **kwargs}
    with pytest.raises(error, match=match):
        generate(_model(), torch.tensor([1]), 3, **kwargs)


def test_generate_rejects_an_empty_prompt_and_a_negative_count():
    with pytest.raises(ValueError, match=r"n >= 1"):
        generate(_model(), torch.tensor([], dtype=torch.long), 3, temperature=0, generator=None)
    with pytest.raises(ValueError, match="n_new must be an int >= 0, got -1"):
        generate(_model(), torch.tensor([1]), -1, temperature=0, generator=None)
