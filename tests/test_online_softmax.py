import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.testing import assert_close

from attnlib import online_normalizer, online_softmax

rows = st.lists(st.floats(-1e4, 1e4, width=32), min_size=1, max_size=40)
block_sizes = st.integers(1, 50)


@pytest.mark.parametrize("block_size", [1, 3, 7, 64, 100])
def test_matches_torch_softmax(block_size):
    s = 5 * torch.randn(2, 3, 64, dtype=torch.float64)  # 64 keys: blocks that divide it and blocks that do not
    assert_close(online_softmax(s, block_size), torch.softmax(s, dim=-1))


def test_long_row_float32_matches_torch_softmax():
    s = 10 * torch.randn(4, 10_000)
    assert_close(online_softmax(s, 256), torch.softmax(s, dim=-1))  # torch's float32 tolerances


@given(rows, block_sizes)
def test_equals_softmax_for_any_row_and_block(row, block_size):
    s = torch.tensor([row], dtype=torch.float64)
    assert_close(online_softmax(s, block_size), torch.softmax(s, dim=-1))


@given(rows, block_sizes)
def test_normalizer_is_max_and_logsumexp(row, block_size):
    s = torch.tensor(row, dtype=torch.float64)
    m, ell = online_normalizer(s, block_size)  # the running maximum m and running sum ℓ
    assert m.shape == ell.shape == (1,)
    assert m.item() == s.max().item()  # the running maximum is exact
    assert_close(m + torch.log(ell), torch.logsumexp(s, dim=-1, keepdim=True))


@given(rows, block_sizes, st.floats(-1e3, 1e3, width=32))
def test_unchanged_by_a_constant_shift(row, block_size, c):
    s = torch.tensor([row], dtype=torch.float64)
    assert_close(online_softmax(s + c, block_size), online_softmax(s, block_size))


@given(rows, block_sizes)
def test_float32_weights_are_finite_and_sum_to_one(row, block_size):
    w = online_softmax(torch.tensor([row]), block_size)
    assert torch.isfinite(w).all()
    assert (w >= 0).all()
    assert_close(w.sum(-1), torch.ones(1))


@given(rows, block_sizes, st.lists(st.booleans(), min_size=40, max_size=40))
def test_mask_matches_torch_softmax_of_the_allowed_keys(row, block_size, allowed):
    s = torch.tensor([row], dtype=torch.float64)
    mask = torch.tensor([allowed[: len(row)]])
    w = online_softmax(s, block_size, mask)
    assert (w[~mask] == 0).all()
    if mask.any():  # torch.softmax with -inf on the forbidden keys; a row with none allowed: zeros (torch: NaN)
        assert_close(w, torch.softmax(s.masked_fill(~mask, float("-inf")), dim=-1))
    else:
        assert (w == 0).all()


def test_fully_masked_row_is_zero_not_nan_not_uniform():
    s = torch.randn(3, 10)
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[1] = False
    w = online_softmax(s, 4, mask)
    assert (w[1] == 0).all()
    assert_close(w[[0, 2]], torch.softmax(s[[0, 2]], dim=-1))
    m, ell = online_normalizer(s, 4, mask)
    assert m[1].item() == float("-inf") and ell[1].item() == 0.0


def test_minus_inf_scores_get_zero_weight():
    s = torch.tensor([[float("-inf"), 1.0, float("-inf"), 2.0, float("-inf")]])
    w = online_softmax(s, 2)  # the first block is all -inf: the running max is still -inf after it
    assert_close(w, torch.softmax(s, dim=-1))


def test_extreme_logits_do_not_overflow():
    s = torch.tensor([[1e4, -1e4, 0.0, 5e3], [1e4, 1e4, 1e4, 1e4]])
    assert_close(online_softmax(s, 3), torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]]))


def test_gradient_matches_torch_softmax():
    s = torch.randn(2, 9, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 9, dtype=torch.float64)
    (grad_online,) = torch.autograd.grad((online_softmax(s, 4) * g).sum(), s)
    (grad_torch,) = torch.autograd.grad((torch.softmax(s, dim=-1) * g).sum(), s)
    assert_close(grad_online, grad_torch)


@pytest.mark.parametrize("block_size", [0, -3])
def test_block_size_below_one(block_size):
    with pytest.raises(ValueError, match=f"block_size must be >= 1, got {block_size}"):
        online_softmax(torch.randn(2, 5), block_size)


@pytest.mark.parametrize("block_size", [2.0, True, "4"])
def test_block_size_not_an_int(block_size):
    with pytest.raises(TypeError, match="block_size must be an int"):
        online_softmax(torch.randn(2, 5), block_size)


def test_integer_scores():
    with pytest.raises(TypeError, match="floating-point.*int64"):
        online_softmax(torch.ones(3, 4, dtype=torch.int64), 2)


def test_scores_not_a_tensor():
    with pytest.raises(TypeError, match="scores must be a torch.Tensor, got list"):
        online_softmax([1.0, 2.0], 2)


def test_scalar_scores():
    with pytest.raises(ValueError, match=r"scores must have shape \(\.\.\., n\), got \(\)"):
        online_softmax(torch.tensor(1.0), 1)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_plus_inf_scores(bad):
    s = torch.randn(2, 5)
    s[1, 3] = bad
    with pytest.raises(ValueError, match=r"NaN or \+inf"):
        online_softmax(s, 2)


def test_mask_that_does_not_broadcast():
    with pytest.raises(ValueError, match=r"mask of shape \(3,\) does not broadcast.*\(2, 4\)"):
        online_softmax(torch.randn(2, 4), 2, torch.ones(3, dtype=torch.bool))


def test_non_boolean_mask():
    with pytest.raises(TypeError, match="boolean.*float32"):
        online_softmax(torch.randn(2, 4), 2, torch.ones(2, 4))
