"""Attention in memory linear in the sequence length: blocks of keys, an online softmax.

``attention`` builds the whole ``(n_q, n_k)`` score matrix. ``chunked_attention`` computes the
same output one tile of ``block_size`` queries by ``block_size`` keys at a time. For each query
it keeps a running maximum ``m``, a running sum ``l`` of ``exp(s - m)`` and a running weighted
sum ``acc`` of the values; when a new block raises the maximum, the old ``l`` and ``acc`` are
rescaled by ``exp(m_old - m_new)`` (the online softmax of Milakov and Gimelshein, used for
attention by Rabe and Staats and by FlashAttention). At the end ``output = acc / l``.
"""

import math

import torch

from .checks import check_attention_inputs, check_positive_int


def _check_inputs(q, k, v, mask, block_size) -> tuple[int, ...]:
    """Check like :func:`attnlib.attention` does; return the scores' shape (..., n_q, n_k)."""
    scores_shape = check_attention_inputs(q, k, v, mask)
    check_positive_int("block_size", block_size)
    if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad):
        raise RuntimeError(
            "chunked_attention updates its running sums in place and has no backward pass; "
            "call it under torch.no_grad(), or use attention() when you need gradients"
        )
    return scores_shape


def _tile_mask(mask, causal, q0, q1, k0, k1, device):
    """The boolean mask of one tile (True = may attend), or None if every key may be attended."""
    tile = None if mask is None else mask[..., q0:q1, k0:k1]  # (..., q1 - q0, k1 - k0)
    if causal and k1 - 1 > q0:  # some key in the tile lies after some query: j > i
        rows = torch.arange(q0, q1, device=device).unsqueeze(-1)  # (q1 - q0, 1)
        cols = torch.arange(k0, k1, device=device)  # (k1 - k0,)
        tri = rows >= cols  # (q1 - q0, k1 - k0): key j <= query i
        tile = tri if tile is None else tile & tri
    return tile


def _query_block(q_blk, k, v, mask, causal, q0, block_size):
    """Attention of one block of (already scaled) queries over all keys, one key block at a time.

    q_blk: (..., b_q, d), k: (..., n_k, d), v: (..., n_k, d_v) -> (..., b_q, d_v)
    """
    q1, n_k = q0 + q_blk.shape[-2], k.shape[-2]
    k_end = min(n_k, q1) if causal else n_k  # causal: keys after the last query are never seen
    m = total = acc = None
    for k0 in range(0, k_end, block_size):
        k1 = min(k0 + block_size, k_end)
        s = q_blk @ k[..., k0:k1, :].transpose(-2, -1)  # (..., b_q, d) @ (..., d, b_k) -> (..., b_q, b_k)
        tile = _tile_mask(mask, causal, q0, q1, k0, k1, s.device)
        if tile is not None:
            s = s.masked_fill_(~tile, float("-inf"))  # (..., b_q, b_k): masked keys get -inf
        m_blk = s.amax(dim=-1, keepdim=True)  # (..., b_q, 1)
        m_new = m_blk if m is None else torch.maximum(m, m_blk)  # (..., b_q, 1); -inf: no key seen yet
        shift = torch.where(torch.isfinite(m_new), m_new, 0.0)  # (..., b_q, 1): -inf - -inf would be NaN
        p = s.sub_(shift).exp_()  # (..., b_q, b_k): exp(s - m_new) in place; masked keys -> 0
        pv = p @ v[..., k0:k1, :]  # (..., b_q, b_k) @ (..., b_k, d_v) -> (..., b_q, d_v)
        if acc is None:
            total, acc = p.sum(dim=-1, keepdim=True), pv  # (..., b_q, 1), (..., b_q, d_v)
        else:
            rescale = torch.exp(m - shift)  # (..., b_q, 1): old sums were relative to the old max
            total = total.mul_(rescale).add_(p.sum(dim=-1, keepdim=True))  # (..., b_q, 1)
            acc = pv.addcmul_(acc, rescale)  # (..., b_q, d_v): pv + acc * rescale, in one pass
        m = m_new
    return acc / torch.where(total > 0, total, 1.0)  # a row that saw no key has acc = 0 -> output 0


def chunked_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    causal: bool = False,
    block_size: int = 512,
) -> torch.Tensor:
    """Scaled dot-product attention ``softmax(Q K^T / sqrt(d)) V`` without the score matrix.

    q: (..., n_q, d), k: (..., n_k, d), v: (..., n_k, d_v) -> output (..., n_q, d_v)

    Equal (up to rounding) to ``attention(q, k, v, mask=mask, causal=causal)[0]``, but the
    largest intermediate is one ``(..., block_size, block_size)`` tile of scores, so the extra
    memory grows linearly with n_q (the output) instead of as n_q * n_k. Only the output is
    returned: the weights are never stored.
    mask: boolean, broadcastable to (..., n_q, n_k); ``True`` = may attend.
    causal: query i may attend to keys j <= i (top-left aligned, as torch's ``is_causal``).
    block_size: queries and keys per tile, an int >= 1; need not divide n_q or n_k.
    Rows with nothing to attend to get a zero output, never NaN.
    Forward only: there is no backward pass (inputs that require grad raise RuntimeError).
    """
    scores_shape = _check_inputs(q, k, v, mask, block_size)
    n_q, d_v = q.shape[-2], v.shape[-1]
    if mask is not None:
        mask = mask.expand(scores_shape)  # a view: slicing a tile out of it needs the full shape
    q = q.expand(*scores_shape[:-2], *q.shape[-2:])  # (..., n_q, d): every tile then has the full leading shape
    q = q * (1.0 / math.sqrt(q.shape[-1]))  # (..., n_q, d): scale once, not every tile
    out = q.new_zeros(*scores_shape[:-2], n_q, d_v)  # (..., n_q, d_v)
    if scores_shape[-1] == 0:
        return out  # no keys at all: every row is fully masked
    for q0 in range(0, n_q, block_size):
        q1 = min(q0 + block_size, n_q)
        out[..., q0:q1, :] = _query_block(q[..., q0:q1, :], k, v, mask, causal, q0, block_size)
    return out
