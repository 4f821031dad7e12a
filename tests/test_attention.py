import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch.testing import assert_close

from attnlib import attention, causal_mask

DTYPES = [torch.float32, torch.float64]


def qkv(*lead, n_q=5, n_k=7, d=8, d_v=6, dtype=torch.float64):
    return (
        torch.randn(*lead, n_q, d, dtype=dtype),
        torch.randn(*lead, n_k, d, dtype=dtype),
        torch.randn(*lead, n_k, d_v, dtype=dtype),
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lead", [(), (3,), (2, 4)])
def test_matches_torch_sdpa(dtype, lead):
    q, k, v = qkv(*lead, dtype=dtype)
    out, _ = attention(q, k, v)
    assert_close(out, F.scaled_dot_product_attention(q, k, v))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_q,n_k", [(6, 6), (4, 9), (9, 4)])
def test_causal_matches_torch_sdpa(dtype, n_q, n_k):
    q, k, v = qkv(2, 3, n_q=n_q, n_k=n_k, dtype=dtype)
    out, _ = attention(q, k, v, causal=True)
    assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True))


@pytest.mark.parametrize("dtype", DTYPES)
def test_boolean_mask_matches_torch_sdpa(dtype):
    q, k, v = qkv(2, 3, dtype=dtype)
    mask = torch.rand(2, 1, 5, 7) > 0.4
    mask[..., 0] = True  # keep every row attending somewhere; fully masked rows are tested below
    out, _ = attention(q, k, v, mask=mask)
    assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))


def test_mask_and_causal_combine_like_torch():
    q, k, v = qkv(2, n_q=6, n_k=6)
    mask = torch.rand(2, 6, 6) > 0.3
    mask[..., 0] = True
    out, w = attention(q, k, v, mask=mask, causal=True)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask & causal_mask(6))
    assert_close(out, expected)
    assert (w[..., ~causal_mask(6)] == 0).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_fully_masked_row_gives_zeros_as_torch(dtype):
    q, k, v = qkv(2, dtype=dtype)
    mask = torch.ones(2, 5, 7, dtype=torch.bool)
    mask[0, 3] = False
    out, w = attention(q, k, v, mask=mask)
    assert (w[0, 3] == 0).all() and (out[0, 3] == 0).all()
    assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))


def test_causal_mask_direction_and_diagonal():
    m = causal_mask(3)
    assert m.tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    assert causal_mask(2, 4).tolist() == [[True, False, False, False], [True, True, False, False]]


def test_causal_output_ignores_the_future():
    q, k, v = qkv(n_q=6, n_k=6)
    out, _ = attention(q, k, v, causal=True)
    k2, v2 = k.clone(), v.clone()
    k2[4:], v2[4:] = torch.randn(2, 8, dtype=k.dtype), torch.randn(2, 6, dtype=v.dtype)
    out2, _ = attention(q, k2, v2, causal=True)
    assert_close(out2[:4], out[:4])
    assert not torch.allclose(out2[4:], out[4:])


def test_dot_and_bilinear_scores_in_attention():
    q, k, v = qkv(3)
    qk = q @ k.transpose(-2, -1)  # the formulas, written out
    _, w_dot = attention(q, k, v, score="dot")
    assert_close(w_dot, torch.softmax(qk, -1))
    w = torch.randn(8, 8, dtype=torch.float64)
    _, w_bil = attention(q, k, v, score="bilinear", weight=w)
    assert_close(w_bil, torch.softmax(q @ w @ k.transpose(-2, -1), -1))
    _, w_sc = attention(q, k, v)
    assert_close(w_sc, torch.softmax(qk / math.sqrt(8), -1))


@given(
    n_q=st.integers(1, 6),
    n_k=st.integers(1, 6),
    d=st.integers(1, 5),
    causal=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_weights_are_distributions_or_zero(n_q, n_k, d, causal, seed):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(2, n, d, generator=g) * 10 for n in (n_q, n_k, n_k))
    mask = torch.rand(2, n_q, n_k, generator=g) > 0.5
    out, w = attention(q, k, v, mask=mask, causal=causal)
    allowed = mask & causal_mask(n_q, n_k) if causal else mask
    assert (w >= 0).all() and (w[~allowed] == 0).all()
    sums = w.sum(-1)
    assert_close(sums, allowed.any(-1).to(sums.dtype))
    assert torch.isfinite(out).all()


@given(n=st.integers(2, 8), seed=st.integers(0, 2**16))
def test_self_attention_is_permutation_equivariant(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g, dtype=torch.float64)
    w_q, w_k, w_v = (torch.randn(4, 4, generator=g, dtype=torch.float64) for _ in range(3))
    perm = torch.randperm(n, generator=g)

    def layer(x):
        return attention(x @ w_q, x @ w_k, x @ w_v)[0]

    assert_close(layer(x[perm]), layer(x)[perm])


@given(scale=st.floats(1.0, 1e4, width=32), seed=st.integers(0, 2**16))
def test_extreme_logits_stay_finite(scale, seed):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(4, 3, generator=g) for _ in range(3))
    q = q / q.abs().amax() * scale  # logits up to about ±1e4 in float32
    out, w = attention(q, k, v, score="dot")
    assert torch.isfinite(out).all() and torch.isfinite(w).all()
    assert_close(w.sum(-1), torch.ones(4))


def test_k_and_v_lengths_must_match():
    q, k, v = qkv()
    with pytest.raises(ValueError, match=r"same number of positions n_k.*\(7, 8\).*\(6, 6\)"):
        attention(q, k, v[:6])


def test_q_and_k_widths_must_match():
    q, k, v = qkv()
    with pytest.raises(ValueError, match=r"same feature size.*\(5, 3\).*\(7, 8\)"):
        attention(q[:, :3], k, v)


def test_integer_inputs_are_rejected():
    q, k, v = qkv()
    with pytest.raises(TypeError, match="v must be a floating-point tensor .*got dtype torch.int64"):
        attention(q, k, v.long())


def test_mixed_dtypes_are_rejected():
    q, k, v = qkv()
    with pytest.raises(TypeError, match="one dtype"):
        attention(q.float(), k, v)


def test_mask_that_does_not_broadcast():
    q, k, v = qkv(2)
    with pytest.raises(ValueError, match=r"mask of shape \(5, 6\) does not broadcast.*\(2, 5, 7\)"):
        attention(q, k, v, mask=torch.ones(5, 6, dtype=torch.bool))


def test_unknown_score_names_allowed_values():
    q, k, v = qkv()
    with pytest.raises(ValueError, match="unknown score 'cosine'; allowed: 'dot', 'scaled_dot', 'bilinear'"):
        attention(q, k, v, score="cosine")


def test_bilinear_without_weight():
    q, k, v = qkv()
    with pytest.raises(ValueError, match=r"bilinear' needs weight: \(d_q, d_k\)"):
        attention(q, k, v, score="bilinear")


def test_weight_without_bilinear():
    q, k, v = qkv()
    with pytest.raises(ValueError, match="only used by score='bilinear'"):
        attention(q, k, v, weight=torch.eye(8, dtype=torch.float64))


def test_q_and_v_batch_dimensions_must_broadcast():
    # q (2, 4, 8) and k (1, 5, 8) broadcast, and so do k and v; q and v do not.
    q, k, v = torch.randn(2, 4, 8), torch.randn(1, 5, 8), torch.randn(3, 5, 4)
    with pytest.raises(ValueError, match=r"do not broadcast: q \(2, 4, 8\), k \(1, 5, 8\), v \(3, 5, 4\)"):
        attention(q, k, v)


def test_no_keys_gives_a_zero_output_like_torch():
    q, k, v = torch.randn(2, 3, 4), torch.randn(2, 0, 4), torch.randn(2, 0, 5)
    out, w = attention(q, k, v)
    assert w.shape == (2, 3, 0) and out.shape == (2, 3, 5)
    assert (out == 0).all()
    assert_close(out, F.scaled_dot_product_attention(q, k, v))
