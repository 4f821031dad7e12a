"""Every trained model in the book backpropagates through attnlib: its gradients against torch's (and transformers'
rotary positions), in float64, where rounding is about 1e-16 and a tolerance of 1e-10 leaves room only for it."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd import gradcheck
from torch.testing import assert_close
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

from attnlib import (
    MultiHeadCrossAttention,
    MultiHeadSelfAttention,
    apply_rotary,
    attention,
    causal_mask,
    grouped_query_attention,
    softmax,
)

F64 = torch.float64


def leaves(*shapes):
    return [torch.randn(*s, dtype=F64, requires_grad=True) for s in shapes]


def grads(out, inputs, upstream):
    return torch.autograd.grad(out, inputs, upstream)


def masks(lead, n_q, n_k):
    """A random mask with one fully masked row and one key nobody may see."""
    mask = torch.rand(*lead, n_q, n_k) > 0.3
    mask[..., 0] = True
    mask[..., 1, :] = False  # query 1 sees nothing
    mask[..., :, n_k - 1] = False  # the last key is hidden from every query
    return mask


@pytest.mark.parametrize("n_q, n_k", [(6, 6), (4, 9), (9, 4)])
@pytest.mark.parametrize("kind", ["none", "mask", "causal", "mask+causal"])
def test_attention_gradients_match_sdpa(n_q, n_k, kind):
    q, k, v = leaves((2, 3, n_q, 8), (2, 3, n_k, 8), (2, 3, n_k, 5))
    mask = masks((2, 1), n_q, n_k) if "mask" in kind else None
    causal = "causal" in kind
    upstream = torch.randn(2, 3, n_q, 5, dtype=F64)
    ours, _ = attention(q, k, v, mask=mask, causal=causal)
    full = causal_mask(n_q, n_k) if causal else None
    if mask is not None:
        full = mask if full is None else mask & full
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=full)
    assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    for g_ours, g_ref in zip(grads(ours, (q, k, v), upstream), grads(ref, (q, k, v), upstream), strict=True):
        assert torch.isfinite(g_ours).all()
        assert_close(g_ours, g_ref, rtol=1e-10, atol=1e-10)


def test_masked_keys_and_empty_rows_get_zero_gradient():
    q, k, v = leaves((5, 4), (6, 4), (6, 3))
    mask = masks((), 5, 6)
    out, _ = attention(q, k, v, mask=mask)
    gq, gk, gv = grads(out, (q, k, v), torch.randn(5, 3, dtype=F64))
    assert (gk[-1] == 0).all() and (gv[-1] == 0).all()  # nobody sees the last key
    assert (gq[1] == 0).all()  # query 1 sees nothing: its output is a constant 0


def test_attention_passes_gradcheck():
    q, k, v = leaves((2, 4, 3), (2, 5, 3), (2, 5, 2))
    mask = masks((2,), 4, 5)
    assert gradcheck(lambda q, k, v: attention(q, k, v, mask=mask, causal=True)[0], (q, k, v))
    weight = torch.randn(3, 3, dtype=F64, requires_grad=True)
    assert gradcheck(lambda q, k, w: attention(q, k, v, score="bilinear", weight=w)[0], (q, k, weight))


def test_softmax_gradient_matches_torch_and_masked_rows_stay_finite():
    (s,) = leaves((3, 4, 6))
    mask = masks((3,), 4, 6)
    upstream = torch.randn(3, 4, 6, dtype=F64)
    ours = softmax(s, mask)
    ref = torch.softmax(s.masked_fill(~mask, float("-inf")), dim=-1)  # (torch: NaN on the fully masked row 1)
    (g_ours,) = grads(ours, (s,), upstream)
    (g_ref,) = grads(ref, (s,), upstream)
    seen = mask.any(-1)  # (3, 4): rows with something to attend to
    assert_close(ours[seen], ref[seen], rtol=1e-12, atol=1e-12)
    assert_close(g_ours[seen], g_ref[seen], rtol=1e-12, atol=1e-12)
    assert (g_ours[~seen] == 0).all() and (g_ours[~mask] == 0).all()  # ours: finite, zero
    assert gradcheck(lambda s: softmax(s, mask), (s,))


@pytest.mark.parametrize("causal", [False, True])
def test_multihead_gradients_match_torch_multihead_attention(causal):
    ref = nn.MultiheadAttention(12, 3, batch_first=True, dtype=F64)
    ours = MultiHeadSelfAttention.from_torch(ref)
    x = torch.randn(2, 6, 12, dtype=F64)
    x_ref, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()
    real = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])  # (batch, n): the second has 2 pads
    upstream = torch.randn(2, 6, 12, dtype=F64)
    # torch's boolean masks mean the opposite of ours: True = may NOT attend.
    attn_mask = ~causal_mask(6) if causal else None
    expected, _ = ref(x_ref, x_ref, x_ref, key_padding_mask=~real, attn_mask=attn_mask)
    out, _ = ours(x_ours, mask=real[:, None, None, :], causal=causal)
    assert_close(out, expected, rtol=1e-12, atol=1e-12)
    expected.backward(upstream)
    out.backward(upstream)
    assert_close(x_ours.grad, x_ref.grad, rtol=1e-10, atol=1e-10)
    assert_close(ours.qkv.weight.grad, ref.in_proj_weight.grad, rtol=1e-10, atol=1e-10)
    assert_close(ours.qkv.bias.grad, ref.in_proj_bias.grad, rtol=1e-10, atol=1e-10)
    assert_close(ours.out.weight.grad, ref.out_proj.weight.grad, rtol=1e-10, atol=1e-10)
    assert_close(ours.out.bias.grad, ref.out_proj.bias.grad, rtol=1e-10, atol=1e-10)


def test_multihead_passes_gradcheck():
    layer = MultiHeadSelfAttention(6, 2).to(F64)
    (x,) = leaves((2, 4, 6))
    assert gradcheck(lambda x: layer(x, causal=True)[0], (x,))


@pytest.mark.parametrize("h, h_kv", [(4, 4), (4, 2), (6, 1)])
@pytest.mark.parametrize("kind", ["none", "mask", "causal"])
def test_grouped_query_gradients_match_sdpa_enable_gqa(h, h_kv, kind):
    q, k, v = leaves((2, h, 5, 8), (2, h_kv, 7, 8), (2, h_kv, 7, 4))
    mask = masks((2, h), 5, 7) if kind == "mask" else None
    causal = kind == "causal"
    upstream = torch.randn(2, h, 5, 4, dtype=F64)
    ours, _ = grouped_query_attention(q, k, v, mask=mask, causal=causal)
    allowed = causal_mask(5, 7) if causal else mask
    if mask is not None:  # torch gives NaN where a row sees nothing; compare the rows that see something
        allowed = mask | ~mask.any(-1, keepdim=True)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, enable_gqa=True)
    if mask is not None:
        ref = ref * mask.any(-1, keepdim=True)  # the formula for an empty row: output 0, gradient 0
    assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    for g_ours, g_ref in zip(grads(ours, (q, k, v), upstream), grads(ref, (q, k, v), upstream), strict=True):
        assert_close(g_ours, g_ref, rtol=1e-10, atol=1e-10)


def test_grouped_query_passes_gradcheck():
    q, k, v = leaves((1, 4, 3, 2), (1, 2, 4, 2), (1, 2, 4, 3))
    assert gradcheck(lambda q, k, v: grouped_query_attention(q, k, v, causal=True)[0], (q, k, v))


@pytest.mark.parametrize("bias", [True, False])
def test_cross_attention_gradients_match_torch_multihead_attention(bias):
    ref = nn.MultiheadAttention(12, 3, bias=bias, batch_first=True, dtype=F64)
    ours = MultiHeadCrossAttention.from_torch(ref)
    x, memory = torch.randn(2, 4, 12, dtype=F64), torch.randn(2, 7, 12, dtype=F64)
    x_ref, m_ref = x.clone().requires_grad_(), memory.clone().requires_grad_()
    x_ours, m_ours = x.clone().requires_grad_(), memory.clone().requires_grad_()
    real = torch.tensor([[True] * 7, [True] * 5 + [False] * 2])  # (batch, n_k): the second memory has 2 pads
    upstream = torch.randn(2, 4, 12, dtype=F64)
    expected, _ = ref(x_ref, m_ref, m_ref, key_padding_mask=~real)  # torch: True = may NOT attend
    out, _ = ours(x_ours, m_ours, mask=real[:, None, None, :])
    assert_close(out, expected, rtol=1e-12, atol=1e-12)
    expected.backward(upstream)
    out.backward(upstream)
    assert_close(x_ours.grad, x_ref.grad, rtol=1e-10, atol=1e-10)
    assert_close(m_ours.grad, m_ref.grad, rtol=1e-10, atol=1e-10)
    d = 12
    assert_close(ours.q.weight.grad, ref.in_proj_weight.grad[:d], rtol=1e-10, atol=1e-10)
    assert_close(ours.kv.weight.grad, ref.in_proj_weight.grad[d:], rtol=1e-10, atol=1e-10)
    assert_close(ours.out.weight.grad, ref.out_proj.weight.grad, rtol=1e-10, atol=1e-10)
    if bias:
        assert_close(ours.kv.bias.grad, ref.in_proj_bias.grad[d:], rtol=1e-10, atol=1e-10)
    assert (m_ours.grad[1, 5:] == 0).all()  # the padded memory positions get no gradient


@pytest.mark.parametrize("base", [10000.0, 500000.0])
def test_rotary_gradients_match_transformers_llama(base):
    # Llama computes its angles in float32 (cos and sin good to about 1e-7 times the angle, here up to 28 rad),
    # so the float64 gradients agree to 1e-5, not to float64's precision; gradcheck below checks ours exactly.
    d, h, n = 16, 2, 23
    config = LlamaConfig(hidden_size=d * h, num_attention_heads=h, num_key_value_heads=h,
                         max_position_embeddings=64, rope_theta=base)
    q, k = leaves((3, h, n, d), (3, h, n, d))
    position_ids = torch.arange(5, 5 + n)[None].expand(3, n)  # (batch, n), not starting at 0
    cos, sin = LlamaRotaryEmbedding(config)(q, position_ids)  # (batch, n, d) each, in q's dtype
    q_ref, k_ref = apply_rotary_pos_emb(q, k, cos, sin)
    q_ours, k_ours = apply_rotary(q, position_ids[0], base=base), apply_rotary(k, position_ids[0], base=base)
    upstream_q, upstream_k = torch.randn(3, h, n, d, dtype=F64), torch.randn(3, h, n, d, dtype=F64)
    g_ref = torch.autograd.grad((q_ref * upstream_q).sum() + (k_ref * upstream_k).sum(), (q, k))
    g_ours = torch.autograd.grad((q_ours * upstream_q).sum() + (k_ours * upstream_k).sum(), (q, k))
    for a, b in zip(g_ours, g_ref, strict=True):
        assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pairing", ["half", "interleaved"])
def test_rotary_passes_gradcheck(pairing):
    (x,) = leaves((2, 5, 6))
    positions = torch.tensor([0, 1, 7, 30, 1000])
    assert gradcheck(lambda x: apply_rotary(x, positions, pairing=pairing), (x,))
