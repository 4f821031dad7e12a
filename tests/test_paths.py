import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.testing import assert_close

from attnlib import SelfAttention, attention, causal_mask, window_mask
from attnlib.experiments.long_range import AttentionClassifier, RecurrentClassifier
from attnlib.experiments.paths import (
    causal_conv,
    count_macs,
    dependency_pattern,
    gradient_by_distance,
    local_attention,
    path_length,
    recurrent_layer,
    recurrent_sweep,
    sequential_steps,
)

V, C = 16, 8


# --- gradients by distance ----------------------------------------------------------------------


def test_gradient_by_distance_matches_the_jacobian():
    model = RecurrentClassifier(V, C, d_hidden=5, cell="rnn")
    tokens = torch.randint(V, (2, 6))
    g = gradient_by_distance(model, tokens)
    m64 = model.double()
    x = m64.inputs(tokens).detach()
    jac = torch.autograd.functional.jacobian(m64.encode, x)  # (2, 5, 2, 6, d_in)
    per_seq = torch.stack([jac[b, :, b] for b in range(2)])  # (2, 5, 6, d_in): sequence b on itself
    expected = per_seq.pow(2).sum(dim=(1, 3)).mean(0).sqrt().flip(0)  # (6,): index = distance
    assert_close(g, expected)


def test_gradient_by_distance_leaves_the_model_unchanged():
    model = AttentionClassifier(V, C, d_model=8)
    gradient_by_distance(model, torch.randint(V, (2, 5)))
    assert all(p.dtype == torch.float32 and p.grad is None for p in model.parameters())


# --- dependency patterns and path lengths ----------------------------------------------------------


@given(st.integers(1, 30), st.integers(0, 35))
def test_window_mask_is_the_band(n, r):
    expected = torch.tensor([[abs(i - j) <= r for j in range(n)] for i in range(n)])
    assert torch.equal(window_mask(n, r), expected)


def test_window_mask_bad_input_raises():
    with pytest.raises(ValueError, match=">= 0"):
        window_mask(5, -1)


@pytest.mark.parametrize("n, r", [(10, 2), (7, 0), (6, 9)])
def test_windowed_and_causal_attention_depend_exactly_on_their_masks(n, r):
    layer = SelfAttention(4)
    x = torch.randn(n, 4)
    assert torch.equal(dependency_pattern(lambda x: layer(x, mask=window_mask(n, r))[0], x), window_mask(n, r))
    assert torch.equal(dependency_pattern(lambda x: layer(x, causal=True)[0], x), causal_mask(n))
    assert dependency_pattern(lambda x: layer(x)[0], x).all()


def test_dependency_pattern_of_a_mixing_matrix_is_its_support():
    mix = torch.randn(9, 9) * (torch.rand(9, 9) < 0.3)  # (9, 9), about 30% nonzero
    w = torch.randn(3, 2)
    pattern = dependency_pattern(lambda x: mix @ x @ w, torch.randn(9, 3))  # (9, 3) -> (9, 2)
    assert torch.equal(pattern, mix != 0)


def test_dependency_pattern_of_a_layer_that_ignores_its_input_is_empty():
    layer = nn.Linear(3, 3)
    fixed = torch.randn(5, 3)
    assert not dependency_pattern(lambda s: layer(fixed), torch.zeros(5, 3)).any()


@pytest.mark.parametrize("k, dilation", [(3, 1), (2, 4), (3, 2)])
def test_causal_conv_looks_back_only_at_multiples_of_the_dilation(k, dilation):
    n = 12
    conv = nn.Conv1d(3, 2, k, dilation=dilation)
    x = torch.randn(n, 3)
    assert causal_conv(conv, x).shape == (n, 2)
    expected = torch.tensor(
        [[0 <= i - j <= (k - 1) * dilation and (i - j) % dilation == 0 for j in range(n)] for i in range(n)]
    )
    assert torch.equal(dependency_pattern(lambda x: causal_conv(conv, x), x), expected)
    ref = nn.functional.conv1d(
        nn.functional.pad(x.T, ((k - 1) * dilation, 0)), conv.weight, conv.bias, dilation=dilation
    )  # (2, n)
    assert_close(causal_conv(conv, x), ref.T)


def test_causal_conv_rejects_a_padded_convolution():
    with pytest.raises(ValueError, match="unpadded"):
        causal_conv(nn.Conv1d(2, 2, 3, padding=1), torch.randn(5, 2))


@given(st.integers(1, 20), st.integers(0, 8), st.integers(1, 4))
def test_local_attention_equals_masked_attention(n, r, d):
    q, k, v = torch.randn(3, n, d, dtype=torch.float64).unbind(0)
    expected, _ = attention(q, k, v, mask=window_mask(n, r))
    assert_close(local_attention(q, k, v, r), expected)


def test_local_attention_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"\(n, d\)"):
        local_attention(torch.randn(4, 2), torch.randn(5, 2), torch.randn(5, 2), 1)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_n_sweeps_give_the_torch_recurrent_layer(kind):
    n, d = 9, 3
    torch.manual_seed(0)
    cell = nn.RNNCell(d, d) if kind == "rnn" else nn.LSTMCell(d, d)
    ref = nn.RNN(d, d) if kind == "rnn" else nn.LSTM(d, d)
    with torch.no_grad():
        for name in ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]:
            getattr(ref, name + "_l0").copy_(getattr(cell, name))
    x = torch.randn(n, d)
    expected, _ = ref(x)  # (n, d): hidden states, unbatched
    state = torch.zeros(n, d if kind == "rnn" else 2 * d)
    for sweep in range(n):
        if sweep == n - 1:
            assert not torch.allclose(state[-1, :d], expected[-1])  # n - 1 sweeps are not enough
        state = recurrent_sweep(cell, x, state)
    assert_close(state[:, :d], expected)
    assert_close(recurrent_layer(cell, x)[:, :d], expected)


def test_recurrent_sweep_rejects_other_modules():
    with pytest.raises(TypeError, match="RNNCell or nn.LSTMCell"):
        recurrent_sweep(nn.GRUCell(2, 2), torch.randn(3, 2), torch.zeros(3, 2))


@given(st.integers(1, 40))
def test_sequential_steps_of_a_chain_and_of_independent_outputs(n):
    chain = torch.zeros(n, n, dtype=torch.bool)
    chain[torch.arange(1, n), torch.arange(n - 1)] = True  # output i needs output i - 1
    assert sequential_steps(chain) == n
    assert sequential_steps(torch.zeros(n, n, dtype=torch.bool)) == 1


def test_sequential_steps_of_a_tree_is_its_depth():
    needs = torch.zeros(7, 7, dtype=torch.bool)  # 0 <- 1, 2; 1 <- 3, 4; 2 <- 5, 6: depth 3
    for parent, child in [(0, 1), (0, 2), (1, 3), (1, 4), (2, 5), (2, 6)]:
        needs[parent, child] = True
    assert sequential_steps(needs) == 3


def test_sequential_steps_rejects_a_cycle():
    with pytest.raises(ValueError, match="cycle"):
        sequential_steps(torch.ones(3, 3, dtype=torch.bool))


@given(st.integers(2, 60), st.integers(1, 10))
def test_path_length_through_windows(n, r):
    assert path_length(itertools.repeat(window_mask(n, r))) == math.ceil((n - 1) / r)


def test_path_length_of_dilated_layers_counts_base_k_digits():
    n, k = 100, 3
    layers = []
    for level in range(6):
        dil = k**level
        layers.append(
            torch.tensor([[0 <= i - j <= (k - 1) * dil and (i - j) % dil == 0 for j in range(n)] for i in range(n)])
        )
    assert path_length(layers) == 5  # 99 = 10200 in base 3


def test_path_length_raises_when_never_connected():
    with pytest.raises(ValueError, match="never depends"):
        path_length(itertools.repeat(torch.eye(5, dtype=torch.bool)), max_layers=20)


def test_count_macs_of_known_layers():
    n, d_in, d_out = 10, 6, 4
    assert count_macs(nn.Linear(d_in, d_out), torch.randn(n, d_in)) == n * d_in * d_out
    conv = nn.Conv1d(d_in, d_out, 3)
    assert count_macs(lambda x: causal_conv(conv, x), torch.randn(n, d_in)) == 3 * n * d_in * d_out
    q = torch.randn(n, d_in)
    assert count_macs(lambda q: attention(q, q, q), q) == 2 * n * n * d_in


@pytest.mark.parametrize("n", [9, 16, 28])
def test_measured_paths_follow_the_formulas(n):
    from attnlib.experiments.paths import measure_paths

    m = measure_paths(n, kernel=3, radius=4)
    digits = len(np.base_repr(n - 1, 3))  # digits of n - 1 in base 3
    assert m["self-attention"] == (1, 1)
    assert m["windowed self-attention, r=4"] == (math.ceil((n - 1) / 4), 1)
    assert m["convolution, k=3"] == (math.ceil((n - 1) / 2), 1)
    assert m["dilated convolution, k=3"] == (digits, 1)
    assert m["RNN"] == m["LSTM"] == (n, n)
