"""Softmax: turning a row of scores into attention weights over the keys."""

import torch

from ._checks import check_mask


def softmax(scores: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Numerically stable softmax over the last dimension (the keys), with an optional mask.

    ``weights[..., i, j] = exp(s_ij - m_i) / sum_j' exp(s_ij' - m_i)``, where ``m_i`` is the
    largest score in row i; subtracting it changes nothing mathematically and keeps
    ``exp`` from overflowing.

    scores: (..., n_q, n_k) -> weights (..., n_q, n_k)
    mask: boolean, broadcastable to scores; ``True`` = may attend (as in
    ``torch.nn.functional.scaled_dot_product_attention``). Masked scores are set to ``-inf``,
    so they get exactly zero weight. A row in which nothing may be attended to gets all-zero
    weights, never NaN and never uniform.
    """
    if not isinstance(scores, torch.Tensor) or not scores.is_floating_point():
        got = scores.dtype if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise TypeError(f"scores must be a floating-point tensor, got {got}")
    if mask is not None:
        check_mask(mask, scores.shape)
        scores = scores.masked_fill(~mask, float("-inf"))
    row_max = scores.amax(dim=-1, keepdim=True)  # (..., n_q, 1)
    row_max = torch.where(torch.isfinite(row_max), row_max, 0.0)  # a fully masked row has max -inf
    exps = torch.exp(scores - row_max)  # (..., n_q, n_k); exp(-inf) = 0 for masked keys
    total = exps.sum(dim=-1, keepdim=True)  # (..., n_q, 1); 0 only for a fully masked row
    return exps / torch.where(total > 0, total, 1.0)
