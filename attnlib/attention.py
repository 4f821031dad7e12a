"""Attention: scores -> softmax -> weighted sum of values.

The return convention of attnlib's attention functions: a function that forms the weights returns
``(output, weights)`` (:func:`attention`, :func:`grouped_query_attention`, the layers); a function
built never to form them returns the output only (:func:`attnlib.chunked_attention`).
"""

import torch

from .checks import check_attention_inputs, check_choice, check_grouped_heads
from .masks import causal_mask
from .scores import bilinear_scores, dot_scores, scaled_dot_scores
from .softmax import softmax

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
    check_attention_inputs(q, k, v, mask, same_width=score != "bilinear", causal=causal)
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
    if causal:
        tri = causal_mask(q.shape[-2], k.shape[-2], device=q.device)  # (n_q, n_k)
        mask = tri if mask is None else mask & tri
    weights = softmax(scores, mask)  # (..., n_q, n_k)
    return weights @ v, weights  # (..., n_q, n_k) @ (..., n_k, d_v) -> (..., n_q, d_v)


def grouped_query_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    causal: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Grouped-query attention (Ainslie et al. 2023): h query heads share h_kv
    key/value heads.

    q: (..., h, n_q, d), k: (..., h_kv, n_k, d), v: (..., h_kv, n_k, d_v), h a
    multiple of h_kv -> output (..., h, n_q, d_v), weights (..., h, n_q, n_k)

    Query head i reads key/value head ``i // (h / h_kv)``: consecutive query heads
    form a group. ``h_kv = h`` is multi-head attention, ``h_kv = 1`` multi-query
    attention (Shazeer 2019). Scaled dot-product scores, ``1/sqrt(d)``. mask: boolean,
    broadcastable to (..., h, n_q, n_k), ``True`` = may attend; causal as in
    :func:`attention`. Only the cache of k and v shrinks, by h / h_kv: here each
    key/value head is repeated for its group before attending.
    """
    h, h_kv = check_grouped_heads(q, k, v)
    group = h // h_kv
    k = k.repeat_interleave(group, dim=-3)  # (..., h_kv, n_k, d) -> (..., h, n_k, d)
    v = v.repeat_interleave(group, dim=-3)  # (..., h, n_k, d_v)
    # output (..., h, n_q, d_v), weights (..., h, n_q, n_k)
    return attention(q, k, v, mask=mask, causal=causal)
