import pytest
import torch
from torch import nn
from torch.testing import assert_close

from attnlib import MultiHeadCrossAttention, MultiHeadSelfAttention, SelfAttention, causal_mask


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bias", [True, False])
def test_from_torch_matches_multihead_attention(dtype, bias):
    ref = nn.MultiheadAttention(16, 4, bias=bias, batch_first=True, dtype=dtype)
    ours = MultiHeadSelfAttention.from_torch(ref)
    x = torch.randn(3, 7, 16, dtype=dtype)
    expected, expected_w = ref(x, x, x)  # weights averaged over heads
    out, w = ours(x)
    assert_close(out, expected)
    assert_close(w.mean(dim=1), expected_w)


def test_from_torch_matches_with_causal_mask():
    ref = nn.MultiheadAttention(12, 3, batch_first=True, dtype=torch.float64)
    ours = MultiHeadSelfAttention.from_torch(ref)
    x = torch.randn(2, 6, 12, dtype=torch.float64)
    # torch's boolean attn_mask means the opposite of ours: True = may NOT attend.
    expected, _ = ref(x, x, x, attn_mask=~causal_mask(6))
    out, _ = ours(x, causal=True)
    assert_close(out, expected)


def test_key_padding_mask_matches_torch():
    ref = nn.MultiheadAttention(8, 2, batch_first=True, dtype=torch.float64)
    ours = MultiHeadSelfAttention.from_torch(ref)
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    real = torch.tensor([[True] * 5, [True, True, True, False, False]])  # (batch, n)
    expected, _ = ref(x, x, x, key_padding_mask=~real)
    out, _ = ours(x, mask=real[:, None, None, :])
    assert_close(out, expected)


def test_multihead_shapes_and_per_head_scale():
    m = MultiHeadSelfAttention(32, 4)
    x = torch.randn(2, 5, 32)
    out, w = m(x)
    assert out.shape == (2, 5, 32) and w.shape == (2, 4, 5, 5)
    # Head 0 by hand, scaled by the head width (8), not the model width (32).
    q, k, _ = m.qkv(x).chunk(3, -1)
    s = q[..., :8] @ k[..., :8].transpose(-2, -1) / 8**0.5
    assert_close(w[:, 0], torch.softmax(s, -1))


def test_multihead_unbatched_input():
    m = MultiHeadSelfAttention(8, 2)
    x = torch.randn(5, 8)
    out, w = m(x)
    assert out.shape == (5, 8) and w.shape == (2, 5, 5)
    assert_close(out, m(x[None])[0][0])


def test_multihead_rejects_bad_width_and_heads():
    with pytest.raises(ValueError, match="d_model=10 is not divisible by n_heads=4"):
        MultiHeadSelfAttention(10, 4)
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., n, 8\), got \(5, 6\)"):
        MultiHeadSelfAttention(8, 2)(torch.randn(5, 6))


def test_from_torch_needs_batch_first():
    with pytest.raises(ValueError, match="batch_first=True"):
        MultiHeadSelfAttention.from_torch(nn.MultiheadAttention(8, 2))


@pytest.mark.parametrize("score", ["dot", "scaled_dot", "bilinear"])
def test_self_attention_layer(score):
    layer = SelfAttention(6, d_head=4, score=score)
    x = torch.randn(3, 5, 6)
    out, w = layer(x)
    assert out.shape == (3, 5, 4) and w.shape == (3, 5, 5)
    q, k, v = x @ layer.w_q.weight.T, x @ layer.w_k.weight.T, x @ layer.w_v.weight.T  # Q = X W_q^T, ...
    scores = q @ (torch.eye(4) if score != "bilinear" else layer.weight) @ k.transpose(-2, -1)
    scores = scores / 2 if score == "scaled_dot" else scores  # sqrt(d_head) = 2
    assert_close(out, torch.softmax(scores, -1) @ v)


def test_self_attention_is_permutation_equivariant():
    layer = SelfAttention(6).double()
    x = torch.randn(7, 6, dtype=torch.float64)
    perm = torch.randperm(7)
    assert_close(layer(x[perm])[0], layer(x)[0][perm])


def test_self_attention_rejects_unknown_score():
    with pytest.raises(ValueError, match="allowed: 'dot', 'scaled_dot', 'bilinear'"):
        SelfAttention(4, score="additive")


@pytest.mark.parametrize("bias", [True, False])
def test_cross_attention_matches_multihead_attention(bias):
    # Queries from the decoder (n_q = 4), keys and values from the encoder (n_k = 7), with its padding.
    ref = nn.MultiheadAttention(12, 3, bias=bias, batch_first=True, dtype=torch.float64)
    ours = MultiHeadCrossAttention.from_torch(ref)
    x, memory = torch.randn(2, 4, 12, dtype=torch.float64), torch.randn(2, 7, 12, dtype=torch.float64)
    real = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])  # (batch, n_k)
    expected, expected_w = ref(x, memory, memory, key_padding_mask=~real)  # torch: True = may NOT attend
    out, w = ours(x, memory, mask=real[:, None, None, :])
    assert out.shape == (2, 4, 12) and w.shape == (2, 3, 4, 7)
    assert_close(out, expected)
    assert_close(w.mean(dim=1), expected_w)
    assert (w[1, :, :, 4:] == 0).all()


def test_cross_attention_with_memory_equal_to_x_is_self_attention():
    ref = nn.MultiheadAttention(8, 2, batch_first=True, dtype=torch.float64)
    x = torch.randn(3, 5, 8, dtype=torch.float64)
    out, _ = MultiHeadCrossAttention.from_torch(ref)(x, x)
    assert_close(out, ref(x, x, x)[0])


def test_cross_attention_rejects_bad_shapes():
    m = MultiHeadCrossAttention(8, 2)
    with pytest.raises(ValueError, match=r"memory must have shape \(\.\.\., n, 8\), got \(2, 5, 6\)"):
        m(torch.randn(2, 3, 8), torch.randn(2, 5, 6))
    with pytest.raises(ValueError, match="d_model=10 is not divisible by n_heads=4"):
        MultiHeadCrossAttention(10, 4)
    with pytest.raises(ValueError, match="batch_first=True"):
        MultiHeadCrossAttention.from_torch(nn.MultiheadAttention(8, 2))
