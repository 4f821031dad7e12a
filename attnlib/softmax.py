"""Softmax: turning a row of scores into attention weights over the keys, in one pass or online.

The online form (Milakov & Gimelshein 2018) computes the normaliser in one pass over blocks of
keys, keeping a running maximum ``m`` and a running sum ``l``; memory-efficient attention
(Rabe & Staats 2021, FlashAttention, :func:`attnlib.chunked_attention`) builds on the same update.
"""

import torch

from .checks import check_scores


def softmax(scores: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Numerically stable softmax over the last dimension (the keys), with an optional mask.

    ``weights[..., i, j] = exp(s_ij - m_i) / sum_j' exp(s_ij' - m_i)``, where ``m_i`` is the
    largest score in row i; subtracting it changes nothing mathematically and keeps
    ``exp`` from overflowing.

    scores: (..., n_k) -> weights (..., n_k)
    mask: boolean, broadcastable to scores; ``True`` = may attend (as in
    ``torch.nn.functional.scaled_dot_product_attention``). Masked scores are set to ``-inf``,
    so they get exactly zero weight. A row in which nothing may be attended to gets all-zero
    weights, never NaN and never uniform.
    """
    check_scores(scores, mask)
    return _masked_softmax(scores, mask)


def _masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """:func:`softmax` after its checks: masked scores to -inf, the row maximum
    subtracted, exp, normalised."""
    if scores.shape[-1] == 0:
        return scores  # no keys: an empty row of weights
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    row_max = scores.amax(dim=-1, keepdim=True)  # (..., 1)
    # a fully masked row has max -inf: shift it by 0 instead
    row_max = torch.where(torch.isfinite(row_max), row_max, 0.0)
    exps = torch.exp(scores - row_max)  # (..., n_k); exp(-inf) = 0 for masked keys
    total = exps.sum(dim=-1, keepdim=True)  # (..., 1); 0 only for a fully masked row
    return exps / torch.where(total > 0, total, 1.0)


def online_normalizer(
    scores: torch.Tensor, block_size: int, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Running maximum ``m`` and running sum ``l`` of a softmax, in one pass over blocks of keys.

    After the blocks ``1..t`` have been read, ``m_t = max_j s_j`` and ``l_t = sum_j exp(s_j - m_t)``
    over the keys read so far. A new block B updates them with

        ``m_new = max(m_t, max_{j in B} s_j)``
        ``l_new = l_t * exp(m_t - m_new) + sum_{j in B} exp(s_j - m_new)``

    so ``exp`` never sees a positive argument. At the end ``log(sum_j exp(s_j)) = m + log(l)``.

    scores: (..., n_k) -> m (..., 1), l (..., 1); block_size: keys read per step (>= 1).
    mask: boolean, broadcastable to scores; ``True`` = may attend. A row with nothing to
    attend to ends with ``m = -inf`` and ``l = 0``.
    """
    check_scores(scores, mask, block_size)
    return _online_normalizer(scores, block_size, mask)


def _online_normalizer(scores, block_size, mask):
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    m = torch.full_like(scores[..., :1], float("-inf"))  # (..., 1): max read so far
    l = torch.zeros_like(scores[..., :1])  # (..., 1): sum of exp(s_j - m) so far
    for start in range(0, scores.shape[-1], block_size):
        block = scores[..., start : start + block_size]  # (..., b), b <= block_size
        m_new = torch.maximum(m, block.amax(dim=-1, keepdim=True))  # (..., 1)
        # m_new is -inf only while every key read so far is masked
        shift = torch.where(torch.isfinite(m_new), m_new, 0.0)
        rescale = torch.exp(m - shift)  # (..., 1): moves the old sum to the new max
        l = l * rescale + torch.exp(block - shift).sum(dim=-1, keepdim=True)
        m = m_new
    return m, l


def online_softmax(scores: torch.Tensor, block_size: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax over the last dimension, with the normaliser computed by :func:`online_normalizer`.

    ``weights_j = exp(s_j - m) / l``, where ``m`` (row maximum) and ``l`` (sum of ``exp(s_j - m)``)
    come from one pass over blocks of ``block_size`` keys. Equal to :func:`attnlib.softmax`.

    scores: (..., n_k) -> weights (..., n_k); block_size >= 1.
    mask: boolean, broadcastable to scores; ``True`` = may attend. Masked keys get weight 0;
    a row with nothing to attend to gets all-zero weights (not NaN, not uniform).
    """
    check_scores(scores, mask, block_size)
    m, l = _online_normalizer(scores, block_size, mask)  # (..., 1), (..., 1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    shift = torch.where(torch.isfinite(m), m, 0.0)  # (..., 1)
    return torch.exp(scores - shift) / torch.where(l > 0, l, 1.0)  # (..., n_k)
