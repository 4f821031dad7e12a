"""Rotary positions against Hugging Face's Llama code, against complex multiplication, and by property."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

from attnlib import apply_rotary


@pytest.mark.parametrize("base", [10000.0, 500000.0])
def test_half_pairing_equals_transformers_llama(base):
    d, h, n = 16, 2, 23
    config = LlamaConfig(hidden_size=d * h, num_attention_heads=h, num_key_value_heads=h,
                         max_position_embeddings=64, rope_theta=base)
    rotary = LlamaRotaryEmbedding(config)
    q, k = torch.randn(3, h, n, d), torch.randn(3, h, n, d)
    position_ids = torch.arange(5, 5 + n)[None].expand(3, n)  # (batch, n), not starting at 0
    cos, sin = rotary(q, position_ids)  # (batch, n, d) each, float32 as Llama computes them
    q_ref, k_ref = apply_rotary_pos_emb(q, k, cos, sin)
    torch.testing.assert_close(apply_rotary(q, position_ids[0], base=base), q_ref)
    torch.testing.assert_close(apply_rotary(k, position_ids[0], base=base), k_ref)


def test_interleaved_pairing_is_complex_multiplication():
    d, n, base = 12, 9, 10000.0
    x = torch.randn(2, n, d, dtype=torch.float64)
    positions = torch.tensor([0, 1, 2, 3, 7, 50, 100, 1000, 4095])
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)  # (d/2,)
    z = torch.view_as_complex(x.reshape(2, n, d // 2, 2).contiguous())  # pairs (2j, 2j+1) as a + ib
    rotated = z * torch.polar(torch.ones(n, d // 2, dtype=torch.float64), positions[:, None] * theta)
    expected = torch.view_as_real(rotated).reshape(2, n, d)
    torch.testing.assert_close(apply_rotary(x, positions, pairing="interleaved"), expected, rtol=0, atol=1e-12)


def test_the_pairings_differ_by_a_fixed_permutation():
    d, n = 8, 11
    x = torch.randn(4, n, d, dtype=torch.float64)
    positions = torch.arange(n)
    # "half" pairs (j, j + d/2); "interleaved" pairs (2j, 2j + 1). Reorder features 0,4,1,5,2,6,3,7.
    perm = torch.tensor([0, 4, 1, 5, 2, 6, 3, 7])  # pair j of "half" is (j, j + 4): put it at (2j, 2j + 1)
    half = apply_rotary(x, positions, pairing="half")
    interleaved = apply_rotary(x[..., perm], positions, pairing="interleaved")
    torch.testing.assert_close(interleaved, half[..., perm], rtol=0, atol=1e-12)
    # and without the permutation they are different functions
    assert not torch.allclose(apply_rotary(x, positions, pairing="interleaved"), half)


def test_position_zero_is_the_identity_and_norms_are_kept():
    x = torch.randn(5, 6, 10, dtype=torch.float64)
    positions = torch.tensor([0, 3, 9, 27, 81, 243])
    for pairing in ("half", "interleaved"):
        out = apply_rotary(x, positions, pairing=pairing)
        torch.testing.assert_close(out[..., 0, :], x[..., 0, :], rtol=0, atol=0)
        torch.testing.assert_close(out.norm(dim=-1), x.norm(dim=-1), rtol=0, atol=1e-12)


@given(
    m=st.integers(0, 500), n=st.integers(0, 500), shift=st.integers(-200, 2000),
    pairing=st.sampled_from(["half", "interleaved"]), seed=st.integers(0, 2**16),
)
def test_rotated_scores_depend_only_on_relative_position(m, n, shift, pairing, seed):
    gen = torch.Generator().manual_seed(seed)
    q, k = torch.randn(2, 1, 16, dtype=torch.float64, generator=gen)  # one query, one key, d = 16

    def score(pos_q, pos_k):
        q_rot = apply_rotary(q, torch.tensor([pos_q]), pairing=pairing)  # (1, 16)
        k_rot = apply_rotary(k, torch.tensor([pos_k]), pairing=pairing)
        return (q_rot @ k_rot.T).item()

    shifted_m, shifted_n = m + shift, n + shift
    if min(shifted_m, shifted_n) < 0:
        shifted_m, shifted_n = m - min(m, n), n - min(m, n)
    assert score(m, n) == pytest.approx(score(shifted_m, shifted_n), abs=1e-9)


def test_errors():
    with pytest.raises(ValueError, match=r"d must be even.*d=7"):
        apply_rotary(torch.randn(3, 7), torch.arange(3))
    with pytest.raises(ValueError, match=r"one entry per row of x.*\(3, 8\).*got torch.int64 tensor \(4,\)"):
        apply_rotary(torch.randn(3, 8), torch.arange(4))
    with pytest.raises(TypeError, match=r"positions must be a 1-D integer tensor"):
        apply_rotary(torch.randn(3, 8), torch.arange(3.0))
    with pytest.raises(ValueError, match=r"unknown pairing 'complex'"):
        apply_rotary(torch.randn(3, 8), torch.arange(3), pairing="complex")
    with pytest.raises(TypeError, match=r"x must be a floating-point tensor"):
        apply_rotary(torch.ones(3, 8, dtype=torch.long), torch.arange(3))
