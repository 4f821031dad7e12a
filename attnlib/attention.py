"""Attention: scores -> softmax -> weighted sum of values."""

import torch

from ._checks import check_keys_values, check_mask, check_queries_keys
from .scores import bilinear_scores, dot_scores, scaled_dot_scores
from .softmax import softmax

SCORES = ("dot", "scaled_dot", "bilinear")


def causal_mask(n_q: int, n_k: int | None = None, device=None) -> torch.Tensor:
    """Boolean causal mask: query i may attend to keys j <= i (the diagonal included).

    -> (n_q, n_k), ``True`` = may attend. Aligned at the top-left, as
    ``scaled_dot_product_attention(..., is_causal=True)`` is: query 0 sees key 0 only.
    """
    n_k = n_q if n_k is None else n_k
    return torch.ones(n_q, n_k, dtype=torch.bool, device=device).tril()


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    score: str = "scaled_dot",
    mask: torch.Tensor | None = None,
    causal: bool = False,
    weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention ``softmax(score(Q, K)) V``; returns ``(output, weights)``.

    q: (..., n_q, d), k: (..., n_k, d), v: (..., n_k, d_v)
    -> output (..., n_q, d_v), weights (..., n_q, n_k)

    score: ``"dot"`` (``Q K^T``), ``"scaled_dot"`` (``Q K^T / sqrt(d)``) or ``"bilinear"``
    (``Q W K^T``, needs ``weight: (d_q, d_k)``).
    mask: boolean, broadcastable to (..., n_q, n_k); ``True`` = may attend.
    causal: also forbid query i from attending to keys j > i (see :func:`causal_mask`).
    Rows with nothing to attend to get zero weights and a zero output.
    """
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}; allowed: {', '.join(repr(s) for s in SCORES)}")
    check_queries_keys(q, k, same_width=score != "bilinear")
    check_keys_values(k, v)
    if score == "bilinear":
        if weight is None:
            raise ValueError("score='bilinear' needs weight: (d_q, d_k)")
        scores = bilinear_scores(q, k, weight)  # (..., n_q, n_k)
    elif weight is not None:
        raise ValueError(f"weight is only used by score='bilinear', not {score!r}")
    elif score == "dot":
        scores = dot_scores(q, k)  # (..., n_q, n_k)
    else:
        scores = scaled_dot_scores(q, k)  # (..., n_q, n_k)

    if mask is not None:
        check_mask(mask, scores.shape)
    if causal:
        tri = causal_mask(q.shape[-2], k.shape[-2], device=q.device)  # (n_q, n_k)
        mask = tri if mask is None else mask & tri
    weights = softmax(scores, mask)  # (..., n_q, n_k)
    return weights @ v, weights  # (..., n_q, n_k) @ (..., n_k, d_v) -> (..., n_q, d_v)
