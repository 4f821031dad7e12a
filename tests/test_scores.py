import math

import pytest
import torch
from torch.testing import assert_close

from attnlib import additive_scores, bilinear_scores, dot_scores, scaled_dot_scores


def rand(*shape, dtype=torch.float64):
    return torch.randn(*shape, dtype=dtype)


def test_dot_scores_is_pairwise_dot_product():
    q, k = rand(2, 3, 5, 4), rand(2, 3, 6, 4)
    expected = torch.einsum("bhid,bhjd->bhij", q, k)
    assert_close(dot_scores(q, k), expected)


def test_leading_dimensions_broadcast():
    q, k = rand(2, 1, 5, 4), rand(3, 6, 4)  # (2, 1) and (3,) broadcast to (2, 3)
    assert dot_scores(q, k).shape == (2, 3, 5, 6)


@pytest.mark.parametrize("d", [1, 4, 64])
def test_dot_equals_scaled_times_sqrt_d(d):
    q, k = rand(3, 5, d), rand(3, 7, d)
    assert_close(dot_scores(q, k), scaled_dot_scores(q, k) * math.sqrt(d))


def test_explicit_scale():
    q, k = rand(5, 8), rand(7, 8)
    assert_close(scaled_dot_scores(q, k, scale=0.5), 0.5 * dot_scores(q, k))


def test_bilinear_with_identity_is_dot():
    q, k = rand(2, 5, 6), rand(2, 7, 6)
    assert_close(bilinear_scores(q, k, torch.eye(6, dtype=torch.float64)), dot_scores(q, k))


def test_bilinear_allows_different_widths_and_matches_formula():
    q, k, w = rand(5, 3), rand(7, 4), rand(3, 4)
    expected = torch.stack([torch.stack([qi @ w @ kj for kj in k]) for qi in q])
    assert_close(bilinear_scores(q, k, w), expected)


def test_bilinear_with_low_rank_weight_is_projected_dot():
    # W = W_q W_k^T: projecting then taking a dot product is a bilinear score.
    x, w_q, w_k = rand(6, 8), rand(8, 2), rand(8, 2)
    assert_close(bilinear_scores(x, x, w_q @ w_k.T), dot_scores(x @ w_q, x @ w_k))


def test_additive_matches_loop():
    q, k = rand(2, 4, 3), rand(2, 5, 6)
    w_q, w_k, v = rand(7, 3), rand(7, 6), rand(7)
    s = additive_scores(q, k, w_q, w_k, v)
    assert s.shape == (2, 4, 5)
    for b in range(2):
        for i in range(4):
            for j in range(5):
                assert_close(s[b, i, j], v @ torch.tanh(w_q @ q[b, i] + w_k @ k[b, j]))


@pytest.mark.parametrize("fn", [dot_scores, scaled_dot_scores])
def test_feature_sizes_must_match(fn):
    with pytest.raises(ValueError, match=r"same feature size.*\(5, 4\).*\(6, 3\)"):
        fn(rand(5, 4), rand(6, 3))


def test_leading_dims_that_do_not_broadcast():
    with pytest.raises(ValueError, match=r"do not broadcast: q \(2, 5, 4\), k \(3, 6, 4\)"):
        dot_scores(rand(2, 5, 4), rand(3, 6, 4))


@pytest.mark.parametrize("fn", [dot_scores, scaled_dot_scores])
def test_integer_tensors_are_rejected(fn):
    with pytest.raises(TypeError, match="floating-point.*int64"):
        fn(torch.ones(3, 4, dtype=torch.int64), rand(3, 4))


def test_one_dimensional_input_is_rejected():
    with pytest.raises(ValueError, match=r"shape \(\.\.\., n, d\)"):
        dot_scores(rand(4), rand(3, 4))


def test_bilinear_weight_shape_is_checked():
    with pytest.raises(ValueError, match=r"weight must have shape \(3, 4\), got \(4, 3\)"):
        bilinear_scores(rand(5, 3), rand(7, 4), rand(4, 3))


def test_additive_shapes_are_checked():
    with pytest.raises(ValueError, match=r"w_q must have shape \(7, 3\), got \(7, 6\)"):
        additive_scores(rand(4, 3), rand(5, 6), rand(7, 6), rand(7, 6), rand(7))
