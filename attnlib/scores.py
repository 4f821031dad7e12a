"""Score functions: how similar is each query to each key?

Every function takes queries ``q: (..., n_q, d_q)`` and keys ``k: (..., n_k, d_k)``
and returns scores ``(..., n_q, n_k)``: row i holds query i's score for every key.
Leading (batch, head) dimensions broadcast as in ``torch.matmul``.
"""

import math

import torch

from .checks import check_attention_inputs, check_positive_number, check_weight


def dot_scores(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Dot-product scores ``s[i, j] = q_i · k_j``, i.e. ``Q K^T``.

    q: (..., n_q, d), k: (..., n_k, d) -> (..., n_q, n_k)
    """
    check_attention_inputs(q, k)
    return q @ k.transpose(-2, -1)  # (..., n_q, d) @ (..., d, n_k) -> (..., n_q, n_k)


def scaled_dot_scores(
    q: torch.Tensor, k: torch.Tensor, scale: float | None = None
) -> torch.Tensor:
    """Scaled dot-product scores ``s[i, j] = scale · q_i · k_j``, by default
    ``scale = 1/sqrt(d)``.

    ``d`` is the width of the queries and keys given here: for multi-head attention,
    the width of one head, not the model width.

    q: (..., n_q, d), k: (..., n_k, d) -> (..., n_q, n_k)
    """
    check_attention_inputs(q, k)
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    check_positive_number("scale", scale)
    # (..., n_q, d) @ (..., d, n_k) -> (..., n_q, n_k)
    return (q @ k.transpose(-2, -1)) * scale


def bilinear_scores(q: torch.Tensor, k: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Bilinear scores ``s[i, j] = q_i^T W k_j``, i.e. ``Q W K^T``; q and k may differ in width.

    q: (..., n_q, d_q), k: (..., n_k, d_k), weight: (d_q, d_k) -> (..., n_q, n_k)
    """
    check_attention_inputs(q, k, same_width=False)
    check_weight("weight", weight, (q.shape[-1], k.shape[-1]), q)
    return _bilinear(q, k, weight)


def _bilinear(q: torch.Tensor, k: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """:func:`bilinear_scores` after its checks: two matrix products."""
    qw = q @ weight  # (..., n_q, d_q) @ (d_q, d_k) -> (..., n_q, d_k)
    return qw @ k.transpose(-2, -1)  # (.., n_q, d_k) @ (.., d_k, n_k) -> (.., n_q, n_k)


def additive_scores(
    q: torch.Tensor, k: torch.Tensor, w_q: torch.Tensor, w_k: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """Additive (Bahdanau) scores ``s[i, j] = v^T tanh(W_q q_i + W_k k_j)``.

    q: (..., n_q, d_q), k: (..., n_k, d_k), w_q: (h, d_q), w_k: (h, d_k), v: (h,)
    -> (..., n_q, n_k). ``h`` is the hidden width of the scoring network; the weights have q's dtype.
    """
    check_attention_inputs(q, k, same_width=False)
    check_weight("v", v, ("h",), q)
    check_weight("w_q", w_q, (len(v), q.shape[-1]), q)  # (h, d_q)
    check_weight("w_k", w_k, (len(v), k.shape[-1]), q)  # (h, d_k)
    qh = q @ w_q.T  # (..., n_q, d_q) @ (d_q, h) -> (..., n_q, h)
    kh = k @ w_k.T  # (..., n_k, d_k) @ (d_k, h) -> (..., n_k, h)
    # (..., n_q, 1, h) + (..., 1, n_k, h) -> (..., n_q, n_k, h): every query beside every key
    hidden = torch.tanh(qh.unsqueeze(-2) + kh.unsqueeze(-3))
    return hidden @ v  # (..., n_q, n_k, h) @ (h,) -> (..., n_q, n_k)
