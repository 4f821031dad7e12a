"""Chapter 12's pictures show what the objects do: rotary turns, head sharing, windows and sinks."""

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from attnlib import Config, KVCache, TransformerLM, sliding_window_mask  # noqa: E402
from attnlib.pictures import modern  # noqa: E402


@pytest.mark.parametrize("pairing", ["half", "interleaved"])
def test_each_drawn_pair_turns_by_its_frequency_at_every_position_and_keeps_its_length(pairing):
    d = 8
    x = torch.randn(d, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    picture = modern.rotary_pair(x, (0, 2), 6, pairing=pairing)
    plt.close(picture.figure)
    for j, points in picture.drawn["points"].items():
        theta = 10000.0 ** (-2 * j / d)  # RoFormer's frequencies, written out here
        first, second = (j, j + d // 2) if pairing == "half" else (2 * j, 2 * j + 1)
        start = complex(x[first].item(), x[second].item())
        for m, a, b in points:  # the pair as a complex number, multiplied by e^{i m theta}
            expected = start * complex(math.cos(m * theta), math.sin(m * theta))
            assert abs(complex(a, b) - expected) < 1e-12


def _sdpa_reads(h, h_kv):
    """Which key/value head each query head reads in torch's own grouped attention (enable_gqa)."""
    q, k = torch.zeros(1, h, 1, 1), torch.zeros(1, h_kv, 1, 1)
    v = torch.arange(h_kv, dtype=torch.float32).view(1, h_kv, 1, 1)
    out = F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    return [(i, int(out[0, i, 0, 0])) for i in range(h)]


def test_the_head_groups_drawn_are_torchs_and_the_models_cache_holds_that_many_heads():
    models = [TransformerLM(Config(10, 6, d_model=32, n_heads=8, n_layers=1, n_kv_heads=h_kv)) for h_kv in (8, 2, 1)]
    picture = modern.head_groups([m.blocks[0].attn for m in models])
    plt.close(picture.figure)
    for row, model in zip(picture.drawn["rows"], models, strict=True):
        assert row["reads"] == _sdpa_reads(8, row["n_kv_heads"])
        cache = KVCache(1)
        model(torch.zeros(1, 3, dtype=torch.long), cache)
        assert cache.keys[0].shape[1] == row["n_kv_heads"] == len({g for _, g in row["reads"]})


def test_the_window_pattern_drawn_is_where_a_model_under_that_mask_puts_weight():
    n, window, sinks = 10, 3, 1
    picture = modern.window_pattern(n, window, sinks)
    plt.close(picture.figure)
    drawn = picture.drawn
    torch.manual_seed(0)
    model = TransformerLM(Config(7, n, d_model=16, n_heads=2, n_layers=1, rotary=True)).eval()
    mask = sliding_window_mask(n, window, sinks=sinks)
    with torch.no_grad():
        _, (weights,) = model.forward_with_weights(torch.randint(7, (2, n)), mask=mask)  # (2, 2, n, n)
    everywhere = {(i, j) for i, j in (weights > 0).all(0).all(0).nonzero().tolist()}  # every row, every head
    anywhere = {(i, j) for i, j in (weights > 0).any(0).any(0).nonzero().tolist()}
    assert everywhere == anywhere == (drawn["window"] | drawn["sink"])  # nothing on evicted or future keys
    for i in range(n):  # a plain loop over the rule of Xiao et al.: the last `window` keys and the first `sinks`
        for j in range(n):
            kind = ("future" if j > i else "window" if i - window < j else "sink" if j < sinks else "evicted")
            assert (i, j) in drawn[kind]
