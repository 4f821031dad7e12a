"""Attention: scores -> softmax -> weighted sum of values."""

import torch

from .checks import check_attention_inputs, check_choice
from .masks import causal_mask
from .scores import _bilinear, _dot, _scaled_dot, check_bilinear_weight
from .softmax import _masked_softmax

SCORES = ("dot", "scaled_dot", "bilinear")


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
    causal: also forbid query i from attending to keys j > i (top-left aligned, see
    :func:`attnlib.causal_mask`).
    Rows with nothing to attend to (a fully masked row, or n_k = 0) get zero weights and a zero
    output, never NaN.
    """
    check_choice("score", score, SCORES)
    check_attention_inputs(q, k, v, mask, same_width=score != "bilinear")
    if score == "bilinear":
        if weight is None:
            raise ValueError("score='bilinear' needs weight: (d_q, d_k)")
        check_bilinear_weight(q, k, weight)
        scores = _bilinear(q, k, weight)  # (..., n_q, n_k)
    elif weight is not None:
        raise ValueError(f"weight is only used by score='bilinear', not {score!r}")
    elif score == "dot":
        scores = _dot(q, k)  # (..., n_q, n_k)
    else:
        scores = _scaled_dot(q, k)  # (..., n_q, n_k)
    if causal:
        tri = causal_mask(q.shape[-2], k.shape[-2], device=q.device)  # (n_q, n_k)
        mask = tri if mask is None else mask & tri
    weights = _masked_softmax(scores, mask)  # (..., n_q, n_k)
    return weights @ v, weights  # (..., n_q, n_k) @ (..., n_k, d_v) -> (..., n_q, d_v)
