"""Grouped-query attention against torch's scaled_dot_product_attention(..., enable_gqa=True)."""

import pytest
import torch
import torch.nn.functional as F

from attnlib import grouped_query_attention


@pytest.mark.parametrize("h, h_kv", [(4, 4), (4, 2), (8, 2), (6, 1)])
@pytest.mark.parametrize("n_q, n_k", [(5, 5), (3, 7), (7, 3)])
@pytest.mark.parametrize("masking", ["none", "causal", "mask", "both"])
def test_equals_torch_enable_gqa(h, h_kv, n_q, n_k, masking):
    q = torch.randn(2, h, n_q, 8, dtype=torch.float64)
    k = torch.randn(2, h_kv, n_k, 8, dtype=torch.float64)
    v = torch.randn(2, h_kv, n_k, 5, dtype=torch.float64)
    mask = torch.rand(2, h, n_q, n_k) < 0.7 if masking in ("mask", "both") else None
    if mask is not None:
        mask[..., 0] = True  # keep every row attending somewhere: torch gives NaN for an empty row
    causal = masking in ("causal", "both")
    ref_mask = mask
    if causal:  # torch's is_causal cannot be combined with attn_mask: build the top-left mask by hand
        tri = torch.ones(n_q, n_k, dtype=torch.bool).tril()
        ref_mask = tri if mask is None else mask & tri
    out, weights = grouped_query_attention(q, k, v, mask=mask, causal=causal)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=ref_mask, enable_gqa=True)
    assert out.shape == (2, h, n_q, 5) and weights.shape == (2, h, n_q, n_k)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-10)


def test_causal_square_equals_torch_is_causal():
    q = torch.randn(3, 8, 6, 4, dtype=torch.float64)
    k, v = torch.randn(2, 3, 2, 6, 4, dtype=torch.float64)
    out, _ = grouped_query_attention(q, k, v, causal=True)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-10)


def test_query_heads_of_one_group_read_the_same_key_value_head():
    # h = 4, h_kv = 2: query heads 0, 1 read kv head 0, heads 2, 3 read kv head 1 (torch's order).
    q = torch.randn(1, 1, 5, 8, dtype=torch.float64).expand(1, 4, 5, 8)  # the same query in every head
    k, v = torch.randn(2, 1, 2, 5, 8, dtype=torch.float64)
    out, _ = grouped_query_attention(q, k, v)
    torch.testing.assert_close(out[:, 0], out[:, 1], rtol=0, atol=0)
    torch.testing.assert_close(out[:, 2], out[:, 3], rtol=0, atol=0)
    assert not torch.allclose(out[:, 1], out[:, 2])


def test_one_key_value_head_per_query_head_is_multi_head_attention():
    q, k, v = torch.randn(3, 2, 4, 6, 8, dtype=torch.float64)
    out, weights = grouped_query_attention(q, k, v)
    expected = F.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-10)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 6, dtype=torch.float64))


def test_fully_masked_row_is_zero_not_nan():
    q = torch.randn(1, 4, 3, 8)
    k, v = torch.randn(2, 1, 1, 3, 8)
    mask = torch.ones(3, 3, dtype=torch.bool)
    mask[1] = False
    out, weights = grouped_query_attention(q, k, v, mask=mask)
    assert torch.equal(out[:, :, 1], torch.zeros(1, 4, 8)) and torch.equal(weights[:, :, 1], torch.zeros(1, 4, 3))


def test_errors_name_both_head_counts():
    with pytest.raises(ValueError, match=r"query heads h=6 must be a multiple of .* h_kv=4"):
        grouped_query_attention(torch.randn(6, 3, 8), torch.randn(4, 3, 8), torch.randn(4, 3, 8))
    with pytest.raises(ValueError, match=r"one number of heads h_kv, got k \(2, 3, 8\) and v \(1, 3, 8\)"):
        grouped_query_attention(torch.randn(4, 3, 8), torch.randn(2, 3, 8), torch.randn(1, 3, 8))
    with pytest.raises(ValueError, match=r"q must have shape \(\.\.\., h, n, d\)"):
        grouped_query_attention(torch.randn(3, 8), torch.randn(1, 3, 8), torch.randn(1, 3, 8))
    with pytest.raises(ValueError, match=r"same feature size d"):
        grouped_query_attention(torch.randn(4, 3, 8), torch.randn(2, 3, 6), torch.randn(2, 3, 6))
    with pytest.raises(ValueError, match=r"mask of shape \(3, 4\) does not broadcast"):
        grouped_query_attention(torch.randn(4, 3, 8), torch.randn(2, 3, 8), torch.randn(2, 3, 8),
                                mask=torch.ones(3, 4, dtype=torch.bool))
