"""The sliding-window mask with sinks, against its definition and against torch's attention."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from attnlib import attention, sliding_window_mask


@given(n=st.integers(1, 40), window=st.integers(1, 45), sinks=st.integers(0, 45))
def test_matches_its_definition(n, window, sinks):
    mask = sliding_window_mask(n, window, sinks=sinks)
    expected = torch.tensor([[j <= i and (i - j < window or j < sinks) for j in range(n)] for i in range(n)])
    assert torch.equal(mask, expected)


def test_picture_in_the_docstring():
    expected = torch.tensor([
        [1, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [1, 0, 1, 1, 0, 0],
        [1, 0, 0, 1, 1, 0],
        [1, 0, 0, 0, 1, 1],
    ], dtype=torch.bool)
    assert torch.equal(sliding_window_mask(6, 2, sinks=1), expected)


def test_limits_are_causal_and_diagonal():
    causal = torch.ones(7, 7, dtype=torch.bool).tril()
    assert torch.equal(sliding_window_mask(7, 7), causal)
    assert torch.equal(sliding_window_mask(7, 1, sinks=7), causal)
    assert torch.equal(sliding_window_mask(7, 1), torch.eye(7, dtype=torch.bool))
    # every query sees exactly min(i + 1, window + sinks) keys when the two parts do not overlap
    counts = sliding_window_mask(20, 4, sinks=3).sum(-1)
    assert counts.tolist() == [min(i + 1, 7) for i in range(20)]


def test_attention_with_the_mask_equals_torch():
    q, k, v = torch.randn(3, 2, 4, 12, 8, dtype=torch.float64)
    mask = sliding_window_mask(12, 3, sinks=2)
    out, weights = attention(q, k, v, mask=mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), rtol=0, atol=1e-10)
    assert torch.equal(weights[..., 10, 2:8], torch.zeros(2, 4, 6, dtype=torch.float64))  # keys 2..7 left the window


def test_errors():
    with pytest.raises(ValueError, match=r"window must be >= 1, got 0"):
        sliding_window_mask(5, 0)
    with pytest.raises(TypeError, match=r"n must be an int"):
        sliding_window_mask(5.0, 2)
    with pytest.raises(ValueError, match=r"sinks must be >= 0, got -1"):
        sliding_window_mask(5, 2, sinks=-1)
