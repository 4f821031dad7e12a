import math

import pytest
import torch
from torch.testing import assert_close

from attnlib import attention_entropy, attention_mass_beyond, mean_attention_distance, sinusoidal_positions


def test_sinusoidal_matches_formula():
    n, d = 7, 6
    p = sinusoidal_positions(n, d)
    assert p.shape == (n, d)
    for pos in range(n):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            assert math.isclose(p[pos, 2 * i].item(), math.sin(angle), abs_tol=1e-6)
            assert math.isclose(p[pos, 2 * i + 1].item(), math.cos(angle), abs_tol=1e-6)


def test_sinusoidal_positions_are_distinct():
    p = sinusoidal_positions(64, 16)
    dist = torch.cdist(p, p)
    assert (dist + torch.eye(64) * 10 > 1e-3).all()


@pytest.mark.parametrize("n,d", [(0, 4), (4, 3), (4, 0)])
def test_sinusoidal_rejects_bad_sizes(n, d):
    with pytest.raises(ValueError, match=r"(n|d) must"):
        sinusoidal_positions(n, d)


def test_distance_of_identity_and_uniform():
    n = 9
    assert mean_attention_distance(torch.eye(n)).item() == 0
    uniform = torch.full((n, n), 1 / n, dtype=torch.float64)
    expected = sum(abs(i - j) for i in range(n) for j in range(n)) / n**2
    assert_close(mean_attention_distance(uniform), torch.tensor(expected, dtype=torch.float64))


def test_distance_of_first_token_attention_and_batch_shape():
    w = torch.zeros(2, 3, 5, 5)
    w[..., 0] = 1.0  # every query attends to position 0
    assert_close(mean_attention_distance(w), torch.full((2, 3), 2.0))
    assert_close(attention_mass_beyond(w, 2), torch.full((2, 3), 2 / 5))


def test_analysis_rejects_vectors():
    with pytest.raises(ValueError, match="shape"):
        mean_attention_distance(torch.ones(4))


def test_entropy_of_one_hot_uniform_and_a_masked_row():
    w = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25], [0.5, 0.5, 0.0, 0.0]], dtype=torch.float64)
    expected = torch.tensor([0.0, math.log(4), math.log(2)], dtype=torch.float64)
    assert_close(attention_entropy(w), expected)


def test_entropy_matches_the_formula_on_softmax_weights():
    w = torch.softmax(torch.randn(2, 3, 5, 7, dtype=torch.float64), -1)
    assert_close(attention_entropy(w), -(w * w.log()).sum(-1))


def test_entropy_rejects_integer_weights():
    with pytest.raises(TypeError, match="floating-point.*int64"):
        attention_entropy(torch.ones(2, 3, dtype=torch.int64))
