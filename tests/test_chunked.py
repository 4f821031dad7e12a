import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch.testing import assert_close

from attnlib import attention, causal_mask, chunked_attention
from attnlib.chunked import forward_tiles, reference_tiles
from attnlib.experiments.memory import peak_bytes, peak_bytes_with_backward

# Tolerances set by the dtype. chunked_attention adds the same terms as torch in another order (block by block,
# rescaled), so the two differ by rounding: with values of order 1 and at most a few dozen keys per row here, well
# within 100 units of the dtype's machine epsilon (float32: 100 eps = 1.2e-5; float64: 2.2e-14). A wrong block,
# mask or rescaling errs by order 1e-1.
DTYPES = [torch.float32, torch.float64]
TOL = {dtype: 100 * torch.finfo(dtype).eps for dtype in DTYPES}


def qkv(*lead, n_q=13, n_k=17, d=8, d_v=6, dtype=torch.float64):
    return (
        torch.randn(*lead, n_q, d, dtype=dtype),
        torch.randn(*lead, n_k, d, dtype=dtype),
        torch.randn(*lead, n_k, d_v, dtype=dtype),
    )


def close(actual, expected, score_size=1.0):
    # exp turns a score's rounding error, |s| eps, into a relative error |s| eps of its weight: large scores
    # (score_size) widen the tolerance in proportion
    tol = TOL[expected.dtype] * max(1.0, score_size)
    assert_close(actual, expected, atol=tol, rtol=tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lead", [(), (3,), (2, 4)])
def test_matches_torch_sdpa_with_batch_and_heads(dtype, lead):
    q, k, v = qkv(*lead, dtype=dtype)
    close(chunked_attention(q, k, v, block_size=4), F.scaled_dot_product_attention(q, k, v))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("block_size", [1, 4, 5, 13, 17, 64])  # divides n_q or n_k, or neither, or exceeds both
def test_block_sizes_that_do_and_do_not_divide_n(dtype, block_size):
    q, k, v = qkv(2, n_q=20, n_k=20, dtype=dtype)
    expected = F.scaled_dot_product_attention(q, k, v)
    close(chunked_attention(q, k, v, block_size=block_size), expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_q,n_k", [(6, 6), (4, 9), (9, 4), (1, 30), (30, 1)])
def test_n_q_different_from_n_k(dtype, n_q, n_k):
    q, k, v = qkv(2, n_q=n_q, n_k=n_k, dtype=dtype)
    close(chunked_attention(q, k, v, block_size=4), F.scaled_dot_product_attention(q, k, v))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_q,n_k", [(12, 12), (5, 14), (14, 5)])
@pytest.mark.parametrize("block_size", [3, 4, 64])
def test_causal_matches_torch_is_causal(dtype, n_q, n_k, block_size):
    q, k, v = qkv(2, 3, n_q=n_q, n_k=n_k, dtype=dtype)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # top-left aligned
    close(chunked_attention(q, k, v, causal=True, block_size=block_size), expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_boolean_mask_matches_torch_sdpa(dtype):
    q, k, v = qkv(2, 3, dtype=dtype)
    mask = torch.rand(2, 1, 13, 17) > 0.4  # broadcast over the heads
    mask[..., 0] = True  # every row attends somewhere; fully masked rows have their own test
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    close(chunked_attention(q, k, v, mask=mask, block_size=5), expected)


@pytest.mark.parametrize("shape", [(13, 1), (1, 17), (2, 1, 1), (3, 2, 1, 17)])
def test_masks_that_broadcast_in_the_last_two_dims(shape):
    q, k, v = qkv(3, 2)
    mask = torch.rand(shape) > 0.3
    mask[..., 0] = True
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    close(chunked_attention(q, k, v, mask=mask, block_size=4), expected)


def test_mask_and_causal_combine_like_torch():
    q, k, v = qkv(2, n_q=12, n_k=12)
    mask = torch.rand(2, 12, 12) > 0.3
    mask[..., 0] = True
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask & causal_mask(12))
    close(chunked_attention(q, k, v, mask=mask, causal=True, block_size=5), expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("block_size", [1, 4, 64])
def test_fully_masked_rows_give_zeros_as_torch(dtype, block_size):
    q, k, v = qkv(2, dtype=dtype)
    mask = torch.ones(2, 13, 17, dtype=torch.bool)
    mask[0, 3] = False  # nothing to attend to
    mask[1, 5, :9] = False  # nothing in the first blocks, something later
    mask[1, 7, 4:] = False  # something in the first block, nothing later
    out = chunked_attention(q, k, v, mask=mask, block_size=block_size)
    assert (out[0, 3] == 0).all()
    close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))


@pytest.mark.parametrize("dtype", DTYPES)
def test_masked_first_block_then_very_negative_scores(dtype):
    # The running maximum stays -inf over the masked first block; the next block's scores are
    # about -1e3: rescaling by exp(-inf - (-1e3)) must give 0, not exp(+1e3) = inf and then NaN.
    k = torch.ones(1, 8, 4, dtype=dtype)
    q = -torch.full((1, 3, 4), 1e3, dtype=dtype) / 2  # scores q.k / sqrt(4) = -1e3
    v = torch.randn(1, 8, 5, dtype=dtype)
    mask = torch.ones(1, 3, 8, dtype=torch.bool)
    mask[..., :4] = False
    out = chunked_attention(q, k, v, mask=mask, block_size=4)
    assert torch.isfinite(out).all()
    close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))


@pytest.mark.parametrize(
    ("dtype", "rise"),
    [(torch.float32, 30.0), (torch.float32, 200.0),
     (torch.float64, 30.0), (torch.float64, 200.0), (torch.float64, 1e3)],
)
def test_scores_rising_after_the_first_block(dtype, rise):
    # After the first block of keys, tiles keep the old maximum while their row sums stay below
    # sqrt(largest float): a rise of 30 is kept that way (exp(30) ~ 1e13), and so is 200 in float64.
    # In float32 exp(200) overflows, as exp(1000) does in float64: the tile must be redone with the
    # new maximum, not end as inf or NaN. (float32 scores near 1000 are only good to ~1e-4.)
    q = torch.ones(2, 5, 4, dtype=dtype)
    k = torch.zeros(2, 12, 4, dtype=dtype)
    k[:, 4:] = rise / 2  # scores q.k / sqrt(4): 0 in the first block of 4 keys, `rise` after it
    k[:, 4:] += 0.1 * torch.randn(2, 8, 4, dtype=dtype)
    v = torch.randn(2, 12, 3, dtype=dtype)
    out = chunked_attention(q, k, v, block_size=4)
    assert torch.isfinite(out).all()
    close(out, F.scaled_dot_product_attention(q, k, v), score_size=rise)


def test_broadcast_leading_dims_like_torch():
    q = torch.randn(2, 1, 9, 8, dtype=torch.float64)
    k = torch.randn(1, 3, 11, 8, dtype=torch.float64)
    v = torch.randn(3, 11, 5, dtype=torch.float64)
    expected = F.scaled_dot_product_attention(q, k, v)  # torch broadcasts (2, 1), (1, 3) and (3,) to (2, 3)
    assert expected.shape == (2, 3, 9, 5)
    close(chunked_attention(q, k, v, block_size=4), expected)


def test_large_logits_do_not_overflow():
    q, k, v = qkv(2, dtype=torch.float32)
    q = q * 1e3  # scores of order ±1e3: exp without the running maximum would overflow
    out = chunked_attention(q, k, v, block_size=4)
    assert torch.isfinite(out).all()
    close(out, F.scaled_dot_product_attention(q, k, v))


@given(
    n_q=st.integers(1, 12),
    n_k=st.integers(1, 12),
    d=st.integers(1, 6),
    block_size=st.integers(1, 14),
    causal=st.booleans(),
    p_masked=st.sampled_from([0.0, 0.5, 0.9, 1.0]),
    seed=st.integers(0, 2**16),
)
def test_equals_attention_for_any_blocking(n_q, n_k, d, block_size, causal, p_masked, seed):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(2, n, d, generator=g, dtype=torch.float64) * 3 for n in (n_q, n_k, n_k))
    mask = torch.rand(2, n_q, n_k, generator=g) >= p_masked
    out = chunked_attention(q, k, v, mask=mask, causal=causal, block_size=block_size)
    allowed = mask & causal_mask(n_q, n_k) if causal else mask
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    close(out, expected)
    assert (out[~allowed.any(-1)] == 0).all()  # rows with nothing to attend to are zeros, never NaN


@given(
    n=st.integers(1, 40),
    block_size=st.integers(1, 50),
    seed=st.integers(0, 2**16),
)
def test_output_does_not_depend_on_block_size(n, block_size, seed):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(3, n, 4, generator=g, dtype=torch.float64) for _ in range(3))
    whole = chunked_attention(q, k, v, block_size=n)  # one tile: an ordinary softmax
    close(chunked_attention(q, k, v, block_size=block_size), whole)


@given(n=st.integers(2, 10), seed=st.integers(0, 2**16))
def test_causal_output_ignores_the_future(n, seed):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(n, 4, generator=g, dtype=torch.float64) for _ in range(3))
    out = chunked_attention(q, k, v, causal=True, block_size=3)
    k2, v2 = k.clone(), v.clone()
    k2[-1], v2[-1] = k[-1] + 5.0, v[-1] - 5.0  # change only the last position
    out2 = chunked_attention(q, k2, v2, causal=True, block_size=3)
    close(out2[:-1], out[:-1])
    assert (out2[-1] - out[-1]).abs().max() > 1e-3  # the last row sees the change: the test can fail


# Bad inputs: the same errors as attention's, and block_size.


def test_block_size_below_one():
    q, k, v = qkv()
    with pytest.raises(ValueError, match="block_size must be >= 1, got 0"):
        chunked_attention(q, k, v, block_size=0)


@pytest.mark.parametrize("block_size", [2.0, "4", True, None])
def test_block_size_must_be_an_int(block_size):
    q, k, v = qkv()
    with pytest.raises(TypeError, match="block_size must be an int"):
        chunked_attention(q, k, v, block_size=block_size)


def test_k_and_v_lengths_must_match():
    q, k, v = qkv()
    with pytest.raises(ValueError, match=r"same number of positions n_k.*\(17, 8\).*\(16, 6\)"):
        chunked_attention(q, k, v[:16])


def test_q_and_k_widths_must_match():
    q, k, v = qkv()
    with pytest.raises(ValueError, match=r"same feature size.*\(13, 3\).*\(17, 8\)"):
        chunked_attention(q[:, :3], k, v)


@pytest.mark.parametrize("name", ["q", "k", "v"])
def test_integer_inputs_are_rejected(name):
    t = dict(zip("qkv", qkv(), strict=True))
    t[name] = t[name].long()
    with pytest.raises(TypeError, match=f"{name} must be a floating-point tensor .*got dtype torch.int64"):
        chunked_attention(t["q"], t["k"], t["v"])


def test_non_tensor_input_is_rejected():
    _, k, v = qkv()
    with pytest.raises(TypeError, match="q must be a torch.Tensor, got list"):
        chunked_attention([[1.0]], k, v)


def test_one_dimensional_input_is_rejected():
    q, k, v = qkv()
    with pytest.raises(ValueError, match=r"q must have shape \(..., n, d\), got \(8,\)"):
        chunked_attention(q[0], k, v)


def test_mixed_dtypes_are_rejected():
    q, k, v = qkv()
    with pytest.raises(TypeError, match="one dtype"):
        chunked_attention(q.float(), k, v)


def test_leading_dims_that_do_not_broadcast():
    q, _, _ = qkv(2)
    _, k, v = qkv(3)
    with pytest.raises(ValueError, match=r"dimensions do not broadcast: q \(2, 13, 8\), k \(3, 17, 8\)"):
        chunked_attention(q, k, v)


def test_mask_that_does_not_broadcast():
    q, k, v = qkv(2)
    with pytest.raises(ValueError, match=r"mask of shape \(13, 6\) does not broadcast.*\(2, 13, 17\)"):
        chunked_attention(q, k, v, mask=torch.ones(13, 6, dtype=torch.bool))


def test_mask_that_would_enlarge_the_output():
    q, k, v = qkv()
    with pytest.raises(ValueError, match=r"mask of shape \(2, 13, 17\) does not broadcast"):
        chunked_attention(q, k, v, mask=torch.ones(2, 13, 17, dtype=torch.bool))


def test_float_mask_is_rejected():
    q, k, v = qkv()
    with pytest.raises(TypeError, match="mask must be a boolean tensor"):
        chunked_attention(q, k, v, mask=torch.zeros(13, 17))


def _bad_inputs():
    q, k, v = qkv()
    return [
        ((q, k, v[:16]), {}),
        ((q[:, :3], k, v), {}),
        ((q, k, v.long()), {}),
        ((q.float(), k, v), {}),
        ((q, k, v), {"mask": torch.ones(13, 6, dtype=torch.bool)}),
        ((q, k, v), {"mask": torch.zeros(13, 17)}),
    ]


@pytest.mark.parametrize("case", range(6))
def test_errors_are_the_same_as_attentions(case):
    args, kwargs = _bad_inputs()[case]
    with pytest.raises((TypeError, ValueError)) as ours:
        chunked_attention(*args, **kwargs)
    with pytest.raises((TypeError, ValueError)) as theirs:
        attention(*args, **kwargs)
    assert (type(ours.value), str(ours.value)) == (type(theirs.value), str(theirs.value))


# n_k = 0: no keys at all. attention's documented behaviour is a zero output and empty weights.


@pytest.mark.parametrize("causal", [False, True])
def test_no_keys_gives_zeros_like_attention(causal):
    q, k, v = qkv(2, n_q=5, n_k=0)
    out = chunked_attention(q, k, v, causal=causal, block_size=2)
    expected, weights = attention(q, k, v, causal=causal)
    assert out.shape == (2, 5, 6) and weights.shape == (2, 5, 0)
    assert_close(out, torch.zeros(2, 5, 6, dtype=torch.float64), atol=0, rtol=0)  # the formula: an empty sum
    assert_close(expected, torch.zeros(2, 5, 6, dtype=torch.float64), atol=0, rtol=0)


def test_no_keys_gives_zero_gradients():
    q, k, v = (t.requires_grad_(True) for t in qkv(2, n_q=5, n_k=0))
    chunked_attention(q, k, v).sum().backward()
    assert_close(q.grad, torch.zeros_like(q), atol=0, rtol=0)
    assert k.grad.shape == k.shape and v.grad.shape == v.shape


# The backward pass by recomputation: gradients against torch's, in float64. The tolerance is 1000 eps (2.2e-13):
# a gradient sums products of two rounded tiles, a few times the terms of the forward pass.


def grads(fn, q, k, v, d_out):
    q, k, v = (t.detach().requires_grad_(True) for t in (q, k, v))
    out = fn(q, k, v)
    return torch.autograd.grad(out, (q, k, v), d_out)


def assert_grads_match_sdpa(q, k, v, *, allowed=None, **kwargs):
    """Gradients of chunked_attention(q, k, v, **kwargs) against sdpa with the mask ``allowed``."""
    d_out = torch.randn(*torch.broadcast_shapes(q.shape[:-1], v.shape[:-2] + (1,)), v.shape[-1], dtype=q.dtype)
    ours = grads(lambda q, k, v: chunked_attention(q, k, v, **kwargs), q, k, v, d_out)
    theirs = grads(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=allowed), q, k, v, d_out)
    for name, a, b in zip("qkv", ours, theirs, strict=True):
        assert torch.isfinite(a).all(), f"d{name} is not finite"
        tol = 10 * TOL[a.dtype]
        assert_close(a, b, atol=tol, rtol=tol, msg=lambda m, name=name: f"d{name}: {m}")


@pytest.mark.parametrize("block_size", [1, 4, 5, 13, 64])
@pytest.mark.parametrize("n_q,n_k", [(13, 17), (17, 13), (20, 20), (1, 9)])
def test_gradients_match_torch(block_size, n_q, n_k):
    q, k, v = qkv(2, 3, n_q=n_q, n_k=n_k)
    assert_grads_match_sdpa(q, k, v, block_size=block_size)


@pytest.mark.parametrize("block_size", [3, 4, 64])
@pytest.mark.parametrize("n_q,n_k", [(12, 12), (5, 14), (14, 5)])
def test_causal_gradients_match_torch(block_size, n_q, n_k):
    q, k, v = qkv(2, n_q=n_q, n_k=n_k)
    assert_grads_match_sdpa(q, k, v, allowed=causal_mask(n_q, n_k), causal=True, block_size=block_size)


@pytest.mark.parametrize("causal", [False, True])
def test_masked_gradients_with_fully_masked_rows_match_torch(causal):
    q, k, v = qkv(2, 3, n_q=13, n_k=13)
    mask = torch.rand(2, 1, 13, 13) > 0.4
    mask[0, 0, 3] = False  # nothing to attend to
    mask[1, 0, 5, :9] = False  # nothing in the first blocks, something later
    allowed = mask & causal_mask(13, 13) if causal else mask
    assert_grads_match_sdpa(q, k, v, allowed=allowed, mask=mask, causal=causal, block_size=4)


def test_fully_masked_rows_have_zero_finite_gradients():
    q, k, v = (t.requires_grad_(True) for t in qkv(n_q=4, n_k=6))
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[1] = False
    chunked_attention(q, k, v, mask=mask, block_size=4).sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))
    assert (q.grad[1] == 0).all()  # the row's output is the constant 0: nothing flows back to its query


def test_broadcast_inputs_get_summed_gradients_like_torch():
    q = torch.randn(2, 1, 9, 8, dtype=torch.float64)
    k = torch.randn(1, 3, 11, 8, dtype=torch.float64)
    v = torch.randn(3, 11, 5, dtype=torch.float64)
    assert_grads_match_sdpa(q, k, v, block_size=4)


@pytest.mark.parametrize("causal", [False, True])
def test_gradcheck(causal):
    q, k, v = (t.requires_grad_(True) for t in qkv(n_q=6, n_k=7, d=3, d_v=2))
    mask = torch.rand(6, 7) > 0.3
    mask[2] = False  # a fully masked row
    fn = lambda q, k, v: chunked_attention(q, k, v, mask=mask, causal=causal, block_size=3)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (q, k, v))


@given(n=st.integers(1, 30), block_size=st.integers(1, 35), causal=st.booleans(), seed=st.integers(0, 2**16))
def test_gradients_do_not_depend_on_block_size(n, block_size, causal, seed):
    g = torch.Generator().manual_seed(seed)
    q, k, v, d_out = (torch.randn(2, n, 4, generator=g, dtype=torch.float64) for _ in range(4))
    whole = grads(lambda q, k, v: chunked_attention(q, k, v, causal=causal, block_size=n), q, k, v, d_out)
    tiled = grads(lambda q, k, v: chunked_attention(q, k, v, causal=causal, block_size=block_size), q, k, v, d_out)
    for a, b in zip(tiled, whole, strict=True):
        close(a, b)


def test_backward_keeps_no_score_matrix():
    # What autograd saves for the backward pass: inputs, output and two numbers per row, never n x n.
    q, k, v = (t.requires_grad_(True) for t in qkv(n_q=64, n_k=64, d=4, d_v=4))
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        chunked_attention(q, k, v, block_size=8)
    assert saved and max(saved) < 64 * 64, saved


@pytest.mark.parametrize("backward", [False, True])
def test_a_block_larger_than_the_sequence_costs_no_more_memory(backward):
    # Buffers are sized for the largest tile that occurs, not for block_size: a short sequence
    # with the default block of 512 must not allocate 512 x 512 tiles.
    measure = peak_bytes_with_backward if backward else peak_bytes
    q, k, v = qkv(1, n_q=40, n_k=50, d=8, d_v=8, dtype=torch.float32)
    at_sequence = measure(lambda q, k, v: chunked_attention(q, k, v, block_size=50), q, k, v)
    assert measure(lambda q, k, v: chunked_attention(q, k, v, block_size=4096), q, k, v) == at_sequence


# The readable loop and the fast one: chunked.reference_tiles is the online softmax written plainly (m, l,
# acc, rescale); chunked.forward_tiles adds the cheap step and reused buffers. Both against each other and SDPA.


@given(
    n_q=st.integers(1, 20), n_k=st.integers(1, 20), block=st.integers(1, 9), causal=st.booleans(),
    p_masked=st.sampled_from([0.0, 0.5, 1.0]), rise=st.sampled_from([0.0, 30.0, 800.0]), seed=st.integers(0, 2**16),
)
def test_fast_tiles_equal_the_reference_loop(n_q, n_k, block, causal, p_masked, rise, seed):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(3, n, 4, generator=g, dtype=torch.float64) for n in (n_q, n_k, n_k))
    k[:, n_k // 2 :] += rise / 2  # later keys may score far higher: the cheap step must give way to a full one
    forbid = torch.rand(3, n_q, n_k, generator=g) < p_masked  # True = may NOT attend
    fast_out, fast_m, fast_l, finite = forward_tiles(q, k, v, forbid, causal, block, (3,))
    ref_out, ref_m, ref_l = reference_tiles(q, k, v, forbid, causal, block, (3,))
    assert finite
    close(fast_out, ref_out, score_size=rise)
    # m and l may differ (the cheap step keeps an older maximum), but m + log l, the log-normaliser, may not
    seen = ref_l > 0
    close(fast_l[seen].log() + fast_m[seen], ref_l[seen].log() + ref_m[seen], score_size=rise)
    allowed = ~forbid & causal_mask(n_q, n_k) if causal else ~forbid
    close(ref_out, F.scaled_dot_product_attention(q, k, v, attn_mask=allowed), score_size=rise)


# Extreme values in every dtype chunked_attention accepts, against SDPA in float64 on the very same (rounded)
# inputs. The accumulator of the online softmax is up to l times the largest |v|: values of a few hundred in float16
# with many equal scores, or values near 1e30 in float32 after a key block that scores higher, overflowed it before.
# float16 and bfloat16 are computed in float32 and cast back, so their error is the final rounding, half an eps;
# float32 and float64 sum up to 1024 terms in another order than torch. Tolerance: 16 eps of the dtype, relative
# to the largest |output| (float16 1.6e-2, bfloat16 1.3e-1, float32 1.9e-6, float64 3.6e-15); an overflow is inf.
ALL_DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
LARGE = {torch.float16: 300.0, torch.bfloat16: 1e30, torch.float32: 1e30, torch.float64: 1e300}


def extreme_case(case, dtype):
    g = torch.Generator().manual_seed(1)
    if case == "equal scores, many keys":
        q, k = torch.zeros(2, 8, 16), torch.zeros(2, 1024, 16)  # every score 0: the mean of 1024 values
        v = LARGE[dtype] * (1 + 0.1 * torch.randn(2, 1024, 4, generator=g, dtype=torch.float64))
    elif case == "a later block scores higher":
        q, k = torch.ones(2, 8, 4), torch.zeros(2, 96, 4)
        k[:, 48:] = 20.0  # scores 0 for the first 48 keys, then 40: exp(40) = 2e17 times more weight
        v = LARGE[dtype] * torch.randn(2, 96, 3, generator=g, dtype=torch.float64)
    else:  # "values near the largest float": l * max|v| overflows even with every step a full one
        q, k = torch.zeros(2, 8, 4), torch.zeros(2, 64, 4)
        v = torch.finfo(dtype).max / 2 * torch.rand(2, 64, 3, generator=g, dtype=torch.float64)
    return q.to(dtype), k.to(dtype), v.to(dtype)


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
@pytest.mark.parametrize("case", ["equal scores, many keys", "a later block scores higher", "values near the largest"])
@pytest.mark.parametrize("block_size", [16, 512])
def test_extreme_values_in_every_dtype_match_sdpa(dtype, case, block_size):
    q, k, v = extreme_case(case, dtype)
    out = chunked_attention(q, k, v, block_size=block_size)
    expected = F.scaled_dot_product_attention(q.double(), k.double(), v.double())
    assert out.dtype == dtype and torch.isfinite(out).all()
    err = (out.double() - expected).abs().max() / expected.abs().max()
    assert err <= 16 * torch.finfo(dtype).eps, f"relative error {err:.3g}"
    theirs = attention(q, k, v)[0]  # attnlib.attention forms the weights first: no accumulator to overflow
    if torch.isfinite(theirs).all():
        assert (theirs.double() - expected).abs().max() / expected.abs().max() <= 16 * torch.finfo(dtype).eps


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_gradients_flow_back_in_the_input_dtype(dtype):
    q, k, v = (t.to(dtype).requires_grad_(True) for t in qkv(2, n_q=9, n_k=11, dtype=torch.float32))
    chunked_attention(q, k, v, block_size=4).sum().backward()
    expected = grads(lambda q, k, v: F.scaled_dot_product_attention(q, k, v),
                     *(t.detach().double() for t in (q, k, v)), torch.ones(2, 9, 6, dtype=torch.float64))
    for t, e in zip((q, k, v), expected, strict=True):
        assert t.grad.dtype == dtype
        assert_close(t.grad.double(), e, atol=8 * torch.finfo(dtype).eps, rtol=8 * torch.finfo(dtype).eps)


# Empty and narrow shapes: no batch at all (with more keys than one block), no value features.


@pytest.mark.parametrize("causal", [False, True])
def test_an_empty_batch_with_more_keys_than_one_block(causal):
    q, k, v = (t.requires_grad_(True) for t in qkv(0, 3, n_q=5, n_k=20))
    out = chunked_attention(q, k, v, causal=causal, block_size=4)
    assert out.shape == (0, 3, 5, 6) == attention(q, k, v, causal=causal)[0].shape
    out.sum().backward()
    assert q.grad.shape == q.shape and k.grad.shape == k.shape and v.grad.shape == v.shape


def test_values_without_features():
    q, k, v = qkv(2, n_q=5, n_k=9, d_v=0)
    assert chunked_attention(q, k, v, block_size=4).shape == (2, 5, 0) == attention(q, k, v)[0].shape
