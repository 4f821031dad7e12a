"""Score functions: how similar is each query to each key?

Every function takes queries ``q: (..., n_q, d_q)`` and keys ``k: (..., n_k, d_k)``
and returns scores ``(..., n_q, n_k)``: row i holds query i's score for every key.
Leading (batch, head) dimensions broadcast as in ``torch.matmul``.
"""

import math

import torch

from .checks import check_float, check_queries_keys, check_same_dtype


def dot_scores(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Dot-product scores ``s[i, j] = q_i · k_j``, i.e. ``Q K^T``.

    q: (..., n_q, d), k: (..., n_k, d) -> (..., n_q, n_k)
    """
    check_queries_keys(q, k)
    return _dot(q, k)


def _dot(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    return q @ k.transpose(-2, -1)  # (..., n_q, d) @ (..., d, n_k) -> (..., n_q, n_k)


def scaled_dot_scores(q: torch.Tensor, k: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    """Scaled dot-product scores ``s[i, j] = scale · q_i · k_j``, by default ``scale = 1/sqrt(d)``.

    ``d`` is the width of the queries and keys given here: for multi-head attention,
    the width of one head, not the model width.

    q: (..., n_q, d), k: (..., n_k, d) -> (..., n_q, n_k)
    """
    check_queries_keys(q, k)
    return _scaled_dot(q, k, scale)


def _scaled_dot(q: torch.Tensor, k: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    return _dot(q, k) * scale  # (..., n_q, n_k)


def bilinear_scores(q: torch.Tensor, k: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Bilinear scores ``s[i, j] = q_i^T W k_j``, i.e. ``Q W K^T``; q and k may differ in width.

    q: (..., n_q, d_q), k: (..., n_k, d_k), weight: (d_q, d_k) -> (..., n_q, n_k)
    """
    check_queries_keys(q, k, same_width=False)
    check_bilinear_weight(q, k, weight)
    return _bilinear(q, k, weight)


def check_bilinear_weight(q: torch.Tensor, k: torch.Tensor, weight: torch.Tensor) -> None:
    """weight: (d_q, d_k), floating, the dtype of q."""
    check_float("weight", weight)
    check_same_dtype(q=q, weight=weight)
    if weight.shape != (q.shape[-1], k.shape[-1]):
        raise ValueError(
            f"weight must have shape (d_q, d_k) = ({q.shape[-1]}, {k.shape[-1]}), "
            f"got {tuple(weight.shape)}"
        )


def _bilinear(q: torch.Tensor, k: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    qw = q @ weight  # (..., n_q, d_q) @ (d_q, d_k) -> (..., n_q, d_k)
    return qw @ k.transpose(-2, -1)  # (..., n_q, d_k) @ (..., d_k, n_k) -> (..., n_q, n_k)


def additive_scores(
    q: torch.Tensor, k: torch.Tensor, w_q: torch.Tensor, w_k: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """Additive (Bahdanau) scores ``s[i, j] = v^T tanh(W_q q_i + W_k k_j)``.

    q: (..., n_q, d_q), k: (..., n_k, d_k), w_q: (h, d_q), w_k: (h, d_k), v: (h,)
    -> (..., n_q, n_k). ``h`` is the hidden width of the scoring network.
    """
    check_queries_keys(q, k, same_width=False)
    for name, t in (("w_q", w_q), ("w_k", w_k), ("v", v)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor")
    h = v.shape[0] if v.dim() == 1 else None
    if h is None or w_q.shape != (h, q.shape[-1]) or w_k.shape != (h, k.shape[-1]):
        raise ValueError(
            f"expected w_q (h, d_q), w_k (h, d_k), v (h,) with d_q={q.shape[-1]}, d_k={k.shape[-1]}; "
            f"got w_q {tuple(w_q.shape)}, w_k {tuple(w_k.shape)}, v {tuple(v.shape)}"
        )
    qh = q @ w_q.T  # (..., n_q, d_q) @ (d_q, h) -> (..., n_q, h)
    kh = k @ w_k.T  # (..., n_k, d_k) @ (d_k, h) -> (..., n_k, h)
    # (..., n_q, 1, h) + (..., 1, n_k, h) -> (..., n_q, n_k, h): every query beside every key
    hidden = torch.tanh(qh.unsqueeze(-2) + kh.unsqueeze(-3))
    return hidden @ v  # (..., n_q, n_k, h) @ (h,) -> (..., n_q, n_k)
