"""The cache picture draws what a real KVCache held during a real generation."""

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

import attnlib
from attnlib import KVCache
from attnlib.pictures.cache import draw_cache, record_cached_generation

try:  # the decoder's configuration (attnlib.block) or the older keyword arguments
    from attnlib.block import Config

    def _model(vocab, context):
        return attnlib.TransformerLM(Config(vocab, context, d_model=16, n_heads=2, n_layers=2))
except ImportError:  # pragma: no cover
    def _model(vocab, context):
        return attnlib.TransformerLM(vocab, context, d_model=16, n_heads=2, n_layers=2)


class CountingCache(KVCache):
    """A KVCache that notes the number of positions it holds after every append of layer 0."""

    def __init__(self, n_layers):
        super().__init__(n_layers)
        self.lengths = []

    def append(self, layer, k, v):
        k, v = super().append(layer, k, v)
        if layer == 0:
            self.lengths.append(k.shape[-2])
        return k, v


@pytest.fixture
def model():
    torch.manual_seed(0)
    return _model(11, 32).double()


def test_the_generation_is_the_library_s_greedy_generation(model):
    prompt = torch.tensor([1, 2, 3, 4])
    record = record_cached_generation(model, prompt, 9)
    assert torch.equal(record["ids"], attnlib.generate(model, prompt, 9, temperature=0, generator=None))
    assert torch.equal(record["ids"], attnlib.generate(model, prompt, 9, temperature=0, generator=None,
                                                       use_cache=False))


def test_rows_drawn_are_the_cache_s_lengths(model):
    prompt = torch.tensor([5, 1, 7])
    cache = CountingCache(len(model.blocks))
    record = record_cached_generation(model, prompt, 6, cache=cache)
    picture = draw_cache(record, [str(i) for i in record["ids"].tolist()])
    assert picture.drawn["cache_lengths"] == cache.lengths == [3, 4, 5, 6, 7, 8]
    rows = picture.drawn["rows"]
    assert [p for _, p, _ in rows] == list(range(len(prompt) + 6 - 1))  # one row per position fed
    assert [s for s, _, _ in rows] == [0, 0, 0, 1, 2, 3, 4, 5]  # the prompt's rows, then one per step
    after_prompt = [n_k for s, _, n_k in rows if s > 0]
    assert after_prompt == cache.lengths[1:]  # a new query reads every key the cache holds
    assert [n_k for s, _, n_k in rows if s == 0] == [1, 2, 3]  # the prompt's queries, causally


def test_recorded_weights_are_the_full_computation_s_rows(model):
    prompt = torch.tensor([2, 9, 4, 4, 1])
    record = record_cached_generation(model, prompt, 4, layer=1, head=1)
    ids = record["ids"][:-1]  # every position that was fed
    with torch.no_grad():
        _, full = model.forward_with_weights(ids[None])  # per layer (1, heads, n, n)
    for step in record["steps"]:
        p0, p1, n_k = step["positions"][0], step["positions"][-1] + 1, step["cache_length"]
        torch.testing.assert_close(step["weights"], full[1][0, 1, p0:p1, :n_k])


def test_a_generation_past_the_context_is_refused(model):
    with pytest.raises(ValueError, match="context"):
        record_cached_generation(model, torch.arange(30) % 11, 4)
