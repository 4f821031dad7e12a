"""Online softmax: the normaliser of a row of scores in one pass over blocks of keys.

Milakov & Gimelshein (2018). Memory-efficient attention (Rabe & Staats 2021, FlashAttention)
builds on the same running-maximum / running-sum update.
"""

import torch

from ._checks import check_mask


def _check_scores_and_block(scores: torch.Tensor, block_size: int) -> None:
    if not isinstance(scores, torch.Tensor) or not scores.is_floating_point():
        got = scores.dtype if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise TypeError(f"scores must be a floating-point tensor, got {got}")
    if scores.dim() < 1:
        raise ValueError(f"scores must have shape (..., n_k), got a scalar of shape {tuple(scores.shape)}")
    if isinstance(block_size, bool) or not isinstance(block_size, int):
        raise TypeError(f"block_size must be an int, got {type(block_size).__name__}")
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    if torch.isnan(scores).any() or (scores == float("inf")).any():
        raise ValueError("scores must not contain NaN or +inf (-inf is allowed: it means weight 0)")


def online_normalizer(
    scores: torch.Tensor, block_size: int, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Running maximum ``m`` and running sum ``z`` of a softmax, in one pass over blocks of keys.

    After the blocks ``1..t`` have been read, ``m_t = max_j s_j`` and ``z_t = sum_j exp(s_j - m_t)``
    over the keys read so far. A new block B updates them with

        ``m_new = max(m_t, max_{j in B} s_j)``
        ``z_new = z_t * exp(m_t - m_new) + sum_{j in B} exp(s_j - m_new)``

    so ``exp`` never sees a positive argument. At the end ``log(sum_j exp(s_j)) = m + log(z)``.

    scores: (..., n_k) -> m (..., 1), z (..., 1); block_size: keys read per step (>= 1).
    mask: boolean, broadcastable to scores; ``True`` = may attend. A row with nothing to
    attend to ends with ``m = -inf`` and ``z = 0``.
    """
    _check_scores_and_block(scores, block_size)
    if mask is not None:
        check_mask(mask, scores.shape)
        scores = scores.masked_fill(~mask, float("-inf"))
    m = torch.full_like(scores[..., :1], float("-inf"))  # (..., 1): max of the keys read so far
    z = torch.zeros_like(scores[..., :1])  # (..., 1): sum of exp(s_j - m) over the keys read so far
    for start in range(0, scores.shape[-1], block_size):
        block = scores[..., start : start + block_size]  # (..., b), b <= block_size
        m_new = torch.maximum(m, block.amax(dim=-1, keepdim=True))  # (..., 1)
        shift = torch.where(torch.isfinite(m_new), m_new, 0.0)  # -inf only while all keys are masked
        z = z * torch.exp(m - shift) + torch.exp(block - shift).sum(dim=-1, keepdim=True)  # (..., 1)
        m = m_new
    return m, z


def online_softmax(scores: torch.Tensor, block_size: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax over the last dimension, with the normaliser computed by :func:`online_normalizer`.

    ``weights_j = exp(s_j - m) / z``, where ``m`` (row maximum) and ``z`` (sum of ``exp(s_j - m)``)
    come from one pass over blocks of ``block_size`` keys. Equal to :func:`attnlib.softmax`.

    scores: (..., n_k) -> weights (..., n_k); block_size >= 1.
    mask: boolean, broadcastable to scores; ``True`` = may attend. Masked keys get weight 0;
    a row with nothing to attend to gets all-zero weights (not NaN, not uniform).
    """
    m, z = online_normalizer(scores, block_size, mask)  # (..., 1), (..., 1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    shift = torch.where(torch.isfinite(m), m, 0.0)  # (..., 1)
    return torch.exp(scores - shift) / torch.where(z > 0, z, 1.0)  # (..., n_k)
