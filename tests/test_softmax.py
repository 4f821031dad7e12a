import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.nn import functional as F
from torch.testing import assert_close

from attnlib import softmax

rows = st.lists(st.floats(-1e4, 1e4, width=32), min_size=1, max_size=16)


def test_matches_torch_softmax():
    s = torch.randn(3, 5, 7, dtype=torch.float64)
    assert_close(softmax(s), torch.softmax(s, dim=-1))


@given(rows)
def test_weights_are_a_distribution(row):
    w = softmax(torch.tensor([row]))
    assert torch.isfinite(w).all()
    assert (w >= 0).all()
    assert_close(w.sum(-1), torch.ones(1))


@given(rows, st.floats(-1e3, 1e3, width=32))
def test_unchanged_by_a_constant_shift(row, c):
    s = torch.tensor([row], dtype=torch.float64)
    assert_close(softmax(s + c), softmax(s))


@given(rows)
def test_order_preserving(row):
    s = torch.tensor(row, dtype=torch.float64)
    w = softmax(s[None])[0]
    greater = s[:, None] > s[None, :]  # (n, n): row i's score beats column j's
    assert (w[:, None] >= w[None, :])[greater].all()


@given(rows, st.lists(st.booleans(), min_size=16, max_size=16))
def test_masked_weights(row, allowed):
    s = torch.tensor([row])
    mask = torch.tensor([allowed[: len(row)]])
    w = softmax(s, mask)
    assert torch.isfinite(w).all()
    assert (w[~mask] == 0).all()
    expected_sum = 1.0 if mask.any() else 0.0
    assert_close(w.sum(), torch.tensor(expected_sum))


def test_fully_masked_row_is_zero_not_nan_not_uniform():
    s = torch.randn(2, 3, 4)
    mask = torch.ones(2, 3, 4, dtype=torch.bool)
    mask[1, 2] = False
    w = softmax(s, mask)
    assert (w[1, 2] == 0).all()
    assert_close(w[0], torch.softmax(s[0], -1))


def test_mask_broadcasts():
    s = torch.randn(2, 3, 4)
    key_ok = torch.tensor([True, True, False, True])  # (n_k,)
    w = softmax(s, key_ok)
    assert (w[..., 2] == 0).all()
    assert_close(w.sum(-1), torch.ones(2, 3))


def test_mask_that_does_not_broadcast():
    with pytest.raises(ValueError, match=r"mask of shape \(3,\) does not broadcast.*\(2, 3, 4\)"):
        softmax(torch.randn(2, 3, 4), torch.ones(3, dtype=torch.bool))


def test_mask_that_would_enlarge_the_scores():
    with pytest.raises(ValueError, match="does not broadcast"):
        softmax(torch.randn(3, 4), torch.ones(2, 3, 4, dtype=torch.bool))


def test_non_boolean_mask():
    with pytest.raises(TypeError, match="boolean.*float32"):
        softmax(torch.randn(3, 4), torch.ones(3, 4))


def test_integer_scores():
    with pytest.raises(TypeError, match="floating-point.*int64"):
        softmax(torch.ones(3, 4, dtype=torch.int64))


def test_extreme_logits_do_not_overflow():
    s = torch.tensor([[1e4, -1e4, 0.0], [1e4, 1e4, 1e4]])
    w = softmax(s)
    assert_close(w, torch.tensor([[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]]))


def test_fully_masked_row_matches_scaled_dot_product_attention():
    # torch's own attention returns zeros for a query that may attend to nothing, as attnlib does.
    q, k = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    mask = torch.tensor([False, False, True, True, True])[None, :] & torch.ones(5, 5, dtype=torch.bool).tril()
    eye = torch.eye(5, dtype=torch.float64)  # values = I, so the output is the weight matrix
    expected = F.scaled_dot_product_attention(q[None], k[None], eye[None], attn_mask=mask)[0]
    ours = softmax(q @ k.T / 2.0, mask)
    assert (ours[:2] == 0).all()  # rows 0 and 1 have nothing to attend to
    assert_close(ours, expected)


@pytest.mark.parametrize("offset", [-1e4, -1e6, -1e9, -9e15])
def test_masked_keys_get_no_weight_however_low_the_allowed_scores(offset):
    # A finite fill (-1e4, -1e9, ...) hands the forbidden keys weight once the allowed scores fall below it; the
    # mask must not: the weights are the softmax over the allowed keys alone (the formula, in float64), and a row
    # with nothing allowed is zeros, not uniform.
    s = torch.randn(1, 6, dtype=torch.float64) + offset
    allowed = torch.tensor([[True, True, True, False, False, False]])
    exps = torch.exp(s[:, :3] - s[:, :3].max())  # (1, 3): the allowed keys only
    expected = torch.cat([exps / exps.sum(), torch.zeros(1, 3, dtype=torch.float64)], dim=-1)
    assert_close(softmax(s, allowed), expected, rtol=0, atol=1e-15)
    assert (softmax(s, torch.zeros(1, 6, dtype=torch.bool)) == 0).all()


@given(st.lists(st.floats(-30, 30), min_size=2, max_size=12))
def test_jacobian_is_diag_minus_outer_and_bounded_by_saturation(row):
    s = torch.tensor(row, dtype=torch.float64)
    w = softmax(s)
    J = torch.autograd.functional.jacobian(softmax, s)  # (n, n), by autograd through attnlib.softmax
    assert_close(J, torch.diag(w) - torch.outer(w, w))  # the formula
    assert torch.linalg.matrix_norm(J, ord=2) <= 2 * (1 - w.max()) + 1e-12
