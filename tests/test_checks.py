"""Bad input at every public entry of the mechanism: a clear error that names what was expected and what arrived.

Each case is (what is tried, the call, the exception type, a pattern of its message). Tensors on another device are
made on the "meta" device, which every machine has.
"""

import re

import numpy as np
import pytest
import torch
from torch import nn

import attnlib
from attnlib import (
    KVCache,
    MultiHeadCrossAttention,
    MultiHeadSelfAttention,
    SelfAttention,
    additive_scores,
    apply_rotary,
    attention,
    attention_entropy,
    attention_mass_beyond,
    bilinear_scores,
    causal_mask,
    chunked_attention,
    dot_scores,
    grouped_query_attention,
    kv_cache_bytes,
    mean_attention_distance,
    online_normalizer,
    online_softmax,
    reproducible,
    scaled_dot_scores,
    sinusoidal_positions,
    sliding_window_mask,
    softmax,
    train,
    window_mask,
)
from attnlib.checks import check_scores, check_token_ids

F64 = torch.float64


def t(*shape, dtype=F64, device="cpu"):
    return torch.randn(*shape, dtype=dtype, device=device)


Q, K, V = t(2, 5, 8), t(2, 7, 8), t(2, 7, 4)
META = t(2, 7, 8, device="meta")
LAYER = MultiHeadSelfAttention(8, 2)  # float32
CROSS = MultiHeadCrossAttention(8, 2)
ONE_HEAD = SelfAttention(8, d_head=4)


def full_cache():
    cache = KVCache(2)
    cache.append(0, t(1, 2, 3, 4), t(1, 2, 3, 4))
    return cache


def fit(**kwargs):
    args = dict(model=nn.Linear(2, 1), batch=lambda g: None, loss=lambda m, b: None, steps=1, lr=0.1, seed=0)
    return train(**{**args, **kwargs})


CASES = [
    # attention and chunked_attention: flags, dtypes, devices, widths, masks
    ("causal='no' to attention", lambda: attention(Q, K, V, causal="no"), TypeError,
     r"causal must be a bool \(True or False\), got str 'no'"),
    ("causal=1 to chunked_attention", lambda: chunked_attention(Q, K, V, causal=1), TypeError,
     r"causal must be a bool.*got int 1"),
    ("causal='yes' to grouped_query_attention",
     lambda: grouped_query_attention(t(2, 4, 5, 8), t(2, 2, 7, 8), t(2, 2, 7, 4), causal="yes"), TypeError,
     "causal must be a bool"),
    ("causal=None to a layer", lambda: LAYER(torch.randn(2, 5, 8), causal=None), TypeError,
     "causal must be a bool.*got NoneType"),
    ("k on another device", lambda: attention(Q, META, V), ValueError, r"one device, got \{'q': 'cpu', 'k': 'meta'"),
    ("k on another device, chunked", lambda: chunked_attention(Q, META, V), ValueError, "one device"),
    ("mask on another device", lambda: attention(Q, K, V, mask=torch.ones(5, 7, dtype=torch.bool, device="meta")),
     ValueError, r"mask must be on the scores' device, cpu; got mask on meta"),
    ("zero-width q and k", lambda: attention(t(2, 5, 0), t(2, 7, 0), V), ValueError,
     r"at least one feature \(d >= 1\), got q \(2, 5, 0\)"),
    ("zero-width q and k, chunked", lambda: chunked_attention(t(2, 5, 0), t(2, 7, 0), V), ValueError,
     "at least one feature"),
    ("zero-width q and k, scaled scores", lambda: scaled_dot_scores(t(5, 0), t(7, 0)), ValueError,
     "at least one feature"),
    ("complex q", lambda: attention(Q.to(torch.complex128), K, V), TypeError,
     r"q must be a floating-point tensor .*got dtype torch.complex128"),
    ("float8 q", lambda: chunked_attention(Q.to(torch.float8_e4m3fn), K, V), TypeError,
     r"float16, bfloat16, float32 or float64\), got dtype torch.float8_e4m3fn"),
    ("integer v", lambda: chunked_attention(Q, K, V.long()), TypeError, "v must be a floating-point tensor"),
    ("q as a list", lambda: attention([[1.0]], K, V), TypeError, "q must be a torch.Tensor, got list"),
    ("q of one dimension", lambda: attention(t(8), K, V), ValueError, r"q must have shape \(..., n, d\), got \(8,\)"),
    ("float32 q with float64 k", lambda: chunked_attention(Q.float(), K, V), TypeError, "must share one dtype"),
    ("k and v of different lengths", lambda: chunked_attention(Q, K, V[:, :6]), ValueError,
     r"same number of positions n_k, got k \(2, 7, 8\) and v \(2, 6, 4\)"),
    ("q and k of different widths", lambda: attention(Q[..., :3], K, V), ValueError, "same feature size d"),
    ("batches that do not broadcast", lambda: attention(t(3, 5, 8), K, V), ValueError,
     r"do not broadcast: q \(3, 5, 8\), k \(2, 7, 8\)"),
    ("a float mask", lambda: attention(Q, K, V, mask=torch.ones(5, 7)), TypeError,
     r"mask must be a boolean tensor \(True = may attend\), got torch.float32 tensor"),
    ("a mask that enlarges the scores", lambda: chunked_attention(Q, K, V, mask=torch.ones(3, 5, 7, dtype=bool)),
     ValueError, r"mask of shape \(3, 5, 7\) does not broadcast to the scores' shape \(2, 5, 7\)"),
    ("a list as the mask", lambda: attention(Q, K, V, mask=[[True]]), TypeError, "boolean tensor.*got list"),
    ("an unknown score", lambda: attention(Q, K, V, score="cosine"), ValueError,
     "unknown score 'cosine'; allowed: 'dot', 'scaled_dot', 'bilinear'"),
    ("bilinear weight of another dtype", lambda: attention(Q, K, V, score="bilinear", weight=torch.eye(8)),
     TypeError, r"weight must have the dtype and device of q, torch.float64 on cpu; got torch.float32"),
    ("block_size 0", lambda: chunked_attention(Q, K, V, block_size=0), ValueError, "block_size must be >= 1, got 0"),
    ("block_size 2.0", lambda: chunked_attention(Q, K, V, block_size=2.0), TypeError,
     "block_size must be an int, got float 2.0"),
    ("block_size True", lambda: chunked_attention(Q, K, V, block_size=True), TypeError,
     "block_size must be an int, got bool True"),
    ("grouped heads that do not divide", lambda: grouped_query_attention(t(6, 3, 8), t(4, 3, 8), t(4, 3, 8)),
     ValueError, "query heads h=6 must be a multiple of the number of key/value heads h_kv=4"),
    # score functions
    ("additive weights of another dtype", lambda: additive_scores(Q, K, torch.randn(3, 8), t(3, 8), t(3)),
     TypeError, "w_q must have the dtype and device of q, torch.float64 on cpu; got torch.float32"),
    ("additive v of two dimensions", lambda: additive_scores(Q, K, t(3, 8), t(3, 8), t(3, 1)), ValueError,
     r"v must have shape \(h,\), got \(3, 1\)"),
    ("additive w_k of the wrong shape", lambda: additive_scores(Q, K, t(3, 8), t(3, 5), t(3)), ValueError,
     r"w_k must have shape \(3, 8\), got \(3, 5\)"),
    ("additive w_q a list", lambda: additive_scores(Q, K, [[1.0]], t(3, 8), t(3)), TypeError,
     "w_q must be a torch.Tensor, got list"),
    ("bilinear weight of one dimension", lambda: bilinear_scores(Q, K, t(8)), ValueError,
     r"weight must have shape \(8, 8\), got \(8,\)"),
    ("scale 0", lambda: scaled_dot_scores(Q, K, scale=0.0), ValueError, "scale must be a finite number > 0, got 0.0"),
    ("scale NaN", lambda: scaled_dot_scores(Q, K, scale=float("nan")), ValueError, "scale must be a finite number"),
    ("scale a string", lambda: scaled_dot_scores(Q, K, scale="0.5"), TypeError, "scale must be a number, got str"),
    ("dot scores across devices", lambda: dot_scores(Q[0], META[0]), ValueError, "one device"),
    # softmax and the online softmax
    ("integer scores", lambda: softmax(torch.ones(3, 4, dtype=torch.int64)), TypeError,
     "scores must be a floating-point tensor .*int64"),
    ("scalar scores", lambda: softmax(torch.tensor(1.0)), ValueError, r"scores must have shape \(..., n\), got \(\)"),
    ("a mask on another device for softmax", lambda: softmax(t(3, 4), torch.ones(4, dtype=bool, device="meta")),
     ValueError, "mask must be on the scores' device"),
    ("NaN scores online", lambda: online_softmax(torch.tensor([1.0, float("nan")]), 1), ValueError,
     r"scores must not contain NaN or \+inf"),
    ("a string block size online", lambda: online_normalizer(t(4), "2"), TypeError,
     "block_size must be an int, got str '2'"),
    ("logits of integers (filter_logits's check)", lambda: check_scores(torch.ones(5, dtype=torch.long), name="logits"),
     TypeError, "logits must be a floating-point tensor"),
    # masks
    ("causal_mask of a negative size", lambda: causal_mask(-1), ValueError, "n_q must be >= 0, got -1"),
    ("causal_mask of a non-integer size", lambda: causal_mask(2.5), TypeError, "n_q must be an int, got float 2.5"),
    ("causal_mask with a negative n_k", lambda: causal_mask(3, -2), ValueError, "n_k must be >= 0, got -2"),
    ("causal_mask of a bool size", lambda: causal_mask(True), TypeError, "n_q must be an int, got bool True"),
    ("causal_mask with an unknown alignment", lambda: causal_mask(3, align="left"), ValueError,
     "unknown align 'left'; allowed: 'top_left', 'bottom_right'"),
    ("window_mask of size 0", lambda: window_mask(0, 1), ValueError, "n must be >= 1, got 0"),
    ("window_mask with a negative radius", lambda: window_mask(4, -1), ValueError, "r must be >= 0, got -1"),
    ("sliding window of 0", lambda: sliding_window_mask(5, 0), ValueError, "window must be >= 1, got 0"),
    ("sliding window with 1.0 sinks", lambda: sliding_window_mask(5, 2, sinks=1.0), TypeError,
     "sinks must be an int, got float"),
    # positions
    ("rotary base 0", lambda: apply_rotary(t(3, 8), torch.arange(3), base=0.0), ValueError,
     "base must be a finite number > 0, got 0.0"),
    ("rotary base negative", lambda: apply_rotary(t(3, 8), torch.arange(3), base=-2.0), ValueError,
     "base must be a finite number > 0, got -2.0"),
    ("rotary base infinite", lambda: apply_rotary(t(3, 8), torch.arange(3), base=float("inf")), ValueError,
     "base must be a finite number > 0"),
    ("rotary positions of floats", lambda: apply_rotary(t(3, 8), torch.arange(3.0)), TypeError,
     r"positions must be a 1-D integer tensor \(n,\), got torch.float32 tensor \(3,\)"),
    ("rotary positions of booleans", lambda: apply_rotary(t(2, 8), torch.tensor([True, False])), TypeError,
     "positions must be a 1-D integer tensor"),
    ("rotary positions as a list", lambda: apply_rotary(t(3, 8), [0, 1, 2]), TypeError,
     "positions must be a 1-D integer tensor.*got list"),
    ("rotary positions on another device", lambda: apply_rotary(t(3, 8), torch.arange(3, device="meta")),
     ValueError, r"on x's device: x torch.float64 tensor \(3, 8\) on cpu, got torch.int64 tensor \(3,\) on meta"),
    ("rotary of an odd width", lambda: apply_rotary(t(3, 7), torch.arange(3)), ValueError, r"d must be even.*d=7"),
    ("sinusoidal positions of an odd width", lambda: sinusoidal_positions(4, 3), ValueError, "d must be even; got d=3"),
    ("sinusoidal positions of size 0", lambda: sinusoidal_positions(0, 4), ValueError, "n must be >= 1, got 0"),
    ("sinusoidal positions with base 0", lambda: sinusoidal_positions(4, 4, base=0), ValueError,
     "base must be a finite number > 0"),
    # layers
    ("integer input to MultiHeadSelfAttention", lambda: LAYER(torch.ones(2, 5, 8, dtype=torch.long)), TypeError,
     r"x must be a floating-point tensor .*got dtype torch.int64"),
    ("integer input to SelfAttention", lambda: ONE_HEAD(torch.ones(5, 8, dtype=torch.long)), TypeError,
     "x must be a floating-point tensor"),
    ("float64 input to a float32 layer", lambda: LAYER(t(2, 5, 8)), TypeError,
     r"x must have the layer's dtype and device, torch.float32 on cpu; got torch.float64 on cpu"),
    ("a layer input of the wrong width", lambda: LAYER(torch.randn(2, 5, 6)), ValueError,
     r"x must have shape \(..., n, 8\), got \(2, 5, 6\)"),
    ("a layer input of one dimension", lambda: LAYER(torch.randn(8)), ValueError, "x must have shape"),
    ("integer memory to cross-attention", lambda: CROSS(torch.randn(2, 3, 8), torch.ones(2, 5, 8, dtype=torch.long)),
     TypeError, "memory must be a floating-point tensor"),
    ("float64 x to float32 cross-attention", lambda: CROSS(t(2, 3, 8), torch.randn(2, 5, 8)), TypeError,
     "x must have the layer's dtype and device"),
    ("cross-attention memory given by name, wrong width", lambda: CROSS(torch.randn(2, 3, 8), memory=torch.randn(5, 4)),
     ValueError, r"memory must have shape \(..., n, 8\), got \(5, 4\)"),
    ("heads that do not divide the width", lambda: MultiHeadSelfAttention(10, 4), ValueError,
     "d_model=10 is not divisible by n_heads=4"),
    ("zero heads", lambda: MultiHeadSelfAttention(8, 0), ValueError, "n_heads must be >= 1, got 0"),
    ("a float number of heads", lambda: MultiHeadCrossAttention(8, 2.0), TypeError, "n_heads must be an int"),
    ("a negative head width", lambda: SelfAttention(8, d_head=-1), ValueError, "d_head must be >= 1, got -1"),
    ("from_torch with separate key width",
     lambda: MultiHeadSelfAttention.from_torch(nn.MultiheadAttention(8, 2, kdim=4, vdim=4, batch_first=True)),
     ValueError, "supports neither kdim/vdim"),
    # the cache
    ("k and v of different lengths in the cache", lambda: KVCache(2).append(0, t(1, 2, 3, 4), t(1, 2, 2, 4)),
     ValueError, r"k and v must have one \(batch, heads, n_new\), got k \(1, 2, 3, 4\) and v \(1, 2, 2, 4\)"),
    ("a layer beyond the cache", lambda: KVCache(2).append(2, t(1, 2, 3, 4), t(1, 2, 3, 4)), ValueError,
     r"layer must be < 2 \(the cache's number of layers\), got 2"),
    ("a negative layer", lambda: KVCache(2).append(-1, t(1, 2, 3, 4), t(1, 2, 3, 4)), ValueError,
     "layer must be >= 0, got -1"),
    ("a layer given as a string", lambda: KVCache(2).append("0", t(1, 2, 3, 4), t(1, 2, 3, 4)), TypeError,
     "layer must be an int, got str '0'"),
    ("keys of another width than the cached ones", lambda: full_cache().append(0, t(1, 2, 1, 6), t(1, 2, 1, 4)),
     ValueError, r"k must continue the cached keys, torch.float64 tensor \(1, 2, 3, 4\)"),
    ("keys of another dtype than the cached ones",
     lambda: full_cache().append(0, t(1, 2, 1, 4).float(), t(1, 2, 1, 4).float()), ValueError,
     "k must continue the cached keys"),
    ("keys of two dimensions", lambda: KVCache(1).append(0, t(3, 4), t(3, 4)), ValueError,
     r"k must have shape \(..., h, n, d\)"),
    ("integer values in the cache", lambda: KVCache(1).append(0, t(1, 1, 3, 4), torch.ones(1, 1, 3, 4).long()),
     TypeError, "v must be a floating-point tensor"),
    ("a cache of no layers", lambda: KVCache(0), ValueError, "n_layers must be >= 1, got 0"),
    ("cache bytes of a negative length", lambda: kv_cache_bytes(2, -1, 64, 4), ValueError, "n must be >= 0, got -1"),
    # reading weights
    ("integer weights to mean_attention_distance", lambda: mean_attention_distance(torch.ones(3, 3).long()),
     TypeError, "weights must be a floating-point tensor"),
    ("weights of one dimension", lambda: mean_attention_distance(t(3)), ValueError,
     r"weights must have shape \(..., n, d\), got \(3,\)"),
    ("a negative distance", lambda: attention_mass_beyond(t(3, 3), -1), ValueError, "distance must be >= 0, got -1"),
    ("a float distance", lambda: attention_mass_beyond(t(3, 3), 1.5), TypeError, "distance must be an int"),
    ("integer weights to attention_entropy", lambda: attention_entropy(torch.ones(3).long()), TypeError,
     "weights must be a floating-point tensor"),
    # training
    ("zero steps", lambda: fit(steps=0), ValueError, "steps must be >= 1, got 0"),
    ("a float number of steps", lambda: fit(steps=2.0), TypeError, "steps must be an int, got float 2.0"),
    ("a learning rate of 0", lambda: fit(lr=0.0), ValueError, "lr must be a finite number > 0, got 0.0"),
    ("a negative seed", lambda: fit(seed=-1), ValueError, "seed must be >= 0, got -1"),
    ("a negative weight decay", lambda: fit(weight_decay=-0.1), ValueError, "weight_decay must be a finite number > 0"),
    ("reproducible with a float seed", lambda: reproducible(1.5), TypeError, "seed must be an int, got float 1.5"),
    # token ids (the check the embedding's users run)
    ("token ids beyond the vocabulary", lambda: check_token_ids(torch.tensor([0, 5, 12]), 10), ValueError,
     r"token ids must lie in \[0, 10\), got ids from 0 to 12"),
    ("negative token ids", lambda: check_token_ids(torch.tensor([-1, 2]), 10), ValueError, "got ids from -1 to 2"),
    ("float token ids", lambda: check_token_ids(torch.tensor([1.0]), 10), TypeError,
     "ids must be an integer tensor of token ids, got torch.float32 tensor"),
]


@pytest.mark.parametrize(("call", "error", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_error(call, error, pattern):
    with pytest.raises(error, match=pattern) as raised:
        call()
    assert re.search(r"got|allowed|\(\d|=\d", str(raised.value)), "the message must say what arrived"


def test_there_are_many_cases():
    assert len(CASES) >= 90


# The edge cases that are not errors: they work, and as the formula says.


def test_numpy_integers_and_bools_are_accepted():
    assert causal_mask(np.int64(3)).shape == (3, 3)
    out = chunked_attention(Q, K, V, causal=np.bool_(True), block_size=np.int32(4))
    torch.testing.assert_close(out, attention(Q, K, V, causal=True)[0])


def test_empty_sizes_are_allowed_where_the_formula_is_defined():
    assert causal_mask(0).shape == (0, 0) and causal_mask(2, 0).shape == (2, 0)
    assert softmax(t(3, 0)).shape == (3, 0)
    assert attention(t(0, 5, 8), t(0, 7, 8), t(0, 7, 4))[0].shape == (0, 5, 4)


def test_every_public_name_of_the_mechanism_is_exported():
    for name in ("attention", "chunked_attention", "grouped_query_attention", "KVCache", "apply_rotary", "softmax"):
        assert name in attnlib.__all__
