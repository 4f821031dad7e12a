"""Reading attention weights: how far does a head look?"""

import torch

from .checks import check_float, check_int


def _distances(n_q: int, n_k: int, device=None) -> torch.Tensor:
    i = torch.arange(n_q, device=device).unsqueeze(1)  # (n_q, 1)
    j = torch.arange(n_k, device=device).unsqueeze(0)  # (1, n_k)
    return (i - j).abs()  # (n_q, n_k): |i - j| in positions


def mean_attention_distance(weights: torch.Tensor) -> torch.Tensor:
    """Average distance, in positions, between a query and the keys it attends to.

    ``mean_i sum_j w_ij |i - j|``: a head that attends to itself scores 0, a head that
    spreads evenly over n tokens scores about n/3.
    weights: (..., n_q, n_k) -> (...)
    """
    check_float("weights", weights)
    dist = _distances(*weights.shape[-2:], device=weights.device).to(weights.dtype)
    return (weights * dist).sum(-1).mean(-1)  # (..., n_q) -> (...)


def attention_mass_beyond(weights: torch.Tensor, distance: int) -> torch.Tensor:
    """Fraction of attention weight on keys more than ``distance`` positions away, per query averaged.

    weights: (..., n_q, n_k) -> (...)
    """
    check_float("weights", weights)
    check_int("distance", distance, low=0)
    far = _distances(*weights.shape[-2:], device=weights.device) > distance  # (n_q, n_k)
    return (weights * far).sum(-1).mean(-1)  # (..., n_q) -> (...)


def attention_entropy(weights: torch.Tensor) -> torch.Tensor:
    """Entropy, in nats, of each query's attention distribution: ``H_i = -sum_j w_ij log w_ij``.

    0 for a one-hot row, ``log n_k`` for a uniform one; zero weights contribute 0 (``0 log 0 = 0``).
    weights: (..., n_q, n_k) -> (..., n_q)
    """
    check_float("weights", weights, min_dim=1)
    return -torch.special.xlogy(weights, weights).sum(-1)  # (..., n_q, n_k) -> (..., n_q)
