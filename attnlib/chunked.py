"""Attention in memory linear in the sequence length: blocks of keys, an online softmax.

``attention`` builds the whole ``(n_q, n_k)`` score matrix. ``chunked_attention`` computes the
same output one tile of ``block_size`` queries by ``block_size`` keys at a time. For each query
it keeps a running maximum ``m``, a running sum ``l`` (written ℓ in the book) of ``exp(s - m)``
and a running weighted sum ``acc`` of the values; when a new block raises the maximum, the old
``l`` and ``acc`` are rescaled by ``exp(m_old - m_new)`` (the online softmax of Milakov and
Gimelshein, used for attention by Rabe and Staats and by FlashAttention). At the end
``output = acc / l``. The backward pass (:mod:`attnlib.chunked_backward`) keeps only the output,
``m`` and ``l`` and recomputes the tiles of scores, as FlashAttention does.

Speed: the running maximum is only needed to keep ``exp`` from overflowing, so after the first
key block a tile first tries a cheap step that keeps the old maximum: one matrix product gives
the shifted scores ``s - m`` directly (the queries carry an extra column ``-m``, the keys a column
of ones), then ``exp`` and the row sums. Only if some row's sum exceeds ``sqrt`` of the largest
float (a score rose far above the running maximum) is the tile redone as a full step with a new
maximum. The cheap step makes two passes over the tile instead of four, and it changes no
result: ``l`` and ``acc`` are sums of ``exp(s - m)`` for whatever ``m`` they were kept with, and
``output = acc / l``. (FlashAttention-4 is reported to rescale only when the maximum has grown
enough to matter, on the same grounds.) Every tile also reuses the same few buffers (``out=``
arguments, in-place operations), so no tile allocates memory the operating system must first
hand out. The default ``block_size`` is the fastest of those ``benchmarks/attention.py`` measured.
"""

import math

import torch

from .checks import check_attention_inputs, check_positive_int
from .chunked_backward import backward_by_recomputation


def buffer_view(buffer: torch.Tensor, *shape: int) -> torch.Tensor:
    """A contiguous tensor of ``shape`` on the first elements of a flat, reused ``buffer``."""
    return buffer[: math.prod(shape)].view(shape)


def mask_tile_(s, forbid, causal, q0, k0, lead, triangles) -> None:
    """Set the forbidden scores of one tile ``s: (B, b_q, b_k)`` to -inf, in place.

    forbid: ``~mask`` expanded to (*lead, n_q, n_k) (True = may NOT attend), or None.
    causal: key j is forbidden to query i when j > i; ``triangles`` caches one such tile per offset.
    """
    b_q, b_k = s.shape[-2:]
    if forbid is not None:
        s.view(*lead, b_q, b_k).masked_fill_(forbid[..., q0 : q0 + b_q, k0 : k0 + b_k], float("-inf"))
    if causal and k0 + b_k - 1 > q0:  # some key in the tile lies after some query
        key = (b_q, b_k, q0 - k0)
        if key not in triangles:  # (b_q, b_k): True where k0 + c > q0 + r, i.e. key after query
            triangles[key] = torch.ones(b_q, b_k, dtype=torch.bool, device=s.device).triu_(q0 - k0 + 1)
        s.masked_fill_(triangles[key], float("-inf"))


def forward_tiles(q, k, v, forbid, causal, block, lead):
    """q: (B, n_q, d), k: (B, n_k, d), v: (B, n_k, d_v) -> out (B, n_q, d_v), m, l (B, n_q, 1)."""
    (B, n_q, d), (n_k, d_v) = q.shape, v.shape[-2:]
    k_ones = torch.cat([k, k.new_ones(B, n_k, 1)], dim=-1)  # (B, n_k, d + 1): [q / sqrt(d), -m] . [k, 1] = s - m
    out, m_all, l_all = q.new_empty(B, n_q, d_v), q.new_empty(B, n_q, 1), q.new_empty(B, n_q, 1)
    b_q, b_k = min(block, n_q), min(block, n_k)  # the largest tile: no larger than the scores themselves
    s_buf, acc_buf, q_buf = q.new_empty(B * b_q * b_k), q.new_empty(B * b_q * d_v), q.new_empty(B * b_q * (d + 1))
    m_buf, m_new_buf, r_buf, l_buf, l_tile_buf = (q.new_empty(B * b_q) for _ in range(5))
    scale, lowest = 1.0 / math.sqrt(d), torch.finfo(q.dtype).min  # m starts finite, not -inf
    limit, triangles = math.sqrt(torch.finfo(q.dtype).max), {}  # the largest row sum a cheap step may keep
    for q0 in range(0, n_q, block):
        q1 = min(q0 + block, n_q)
        q_blk = q[:, q0:q1]  # (B, b_q, d)
        q_shift = buffer_view(q_buf, B, q1 - q0, d + 1)  # (B, b_q, d + 1): [q / sqrt(d), -m]
        torch.mul(q_blk, scale, out=q_shift[..., :d])
        acc = buffer_view(acc_buf, B, q1 - q0, d_v).zero_()  # (B, b_q, d_v): sum_j exp(s_j - m) v_j
        m, m_new, r, l, l_tile = (buffer_view(b, B, q1 - q0, 1) for b in (m_buf, m_new_buf, r_buf, l_buf, l_tile_buf))  # noqa: E741
        m.fill_(lowest)  # so that m - m_new is never -inf - (-inf) = NaN, even in a fully masked row
        l.zero_()  # (B, b_q, 1): sum_j exp(s_j - m)
        for k0 in range(0, min(n_k, q1) if causal else n_k, block):  # causal: no key after the last query
            k1 = min(k0 + block, n_k)
            s = buffer_view(s_buf, B, q1 - q0, k1 - k0)  # (B, b_q, b_k)
            if k0 > 0:  # cheap step: keep the old maximum
                torch.bmm(q_shift, k_ones[:, k0:k1].transpose(1, 2), out=s)  # (B, b_q, b_k): s - m
                mask_tile_(s, forbid, causal, q0, k0, lead, triangles)
                torch.sum(s.exp_(), dim=-1, keepdim=True, out=l_tile)  # (B, b_q, 1); inf if a score overflowed
                if l_tile.max() <= limit:  # every exp(s - m) <= limit: no overflow ahead
                    l.add_(l_tile)
                    torch.baddbmm(acc, s, v[:, k0:k1], out=acc)  # acc + (B, b_q, b_k) @ (B, b_k, d_v)
                    continue
            # full step (the online softmax): a new maximum, and the old sums rescaled to it
            torch.baddbmm(s, q_blk, k[:, k0:k1].transpose(1, 2), beta=0, alpha=scale, out=s)  # (B, b_q, b_k)
            mask_tile_(s, forbid, causal, q0, k0, lead, triangles)
            torch.maximum(torch.amax(s, dim=-1, keepdim=True, out=m_new), m, out=m_new)  # (B, b_q, 1)
            torch.sub(m, m_new, out=r).exp_()  # (B, b_q, 1): exp(m_old - m_new) rescales the old sums
            torch.sum(s.sub_(m_new).exp_(), dim=-1, keepdim=True, out=l_tile)  # p = exp(s - m_new); forbidden -> 0
            l.mul_(r).add_(l_tile)
            torch.baddbmm(acc.mul_(r), s, v[:, k0:k1], out=acc)  # acc * r + (B, b_q, b_k) @ (B, b_k, d_v)
            m.copy_(m_new)
            torch.neg(m, out=q_shift[..., d:])  # the cheap steps shift by the new maximum
        torch.div(acc, torch.where(l > 0, l, 1.0), out=out[:, q0:q1])  # (B, b_q, d_v); 0 if nothing was seen
        m_all[:, q0:q1], l_all[:, q0:q1] = m, l
    return out, m_all, l_all


class ChunkedAttention(torch.autograd.Function):
    """Autograd for chunked attention: saves q, k, v, the output, ``m`` and ``l``, never the weights."""

    @staticmethod
    def forward(ctx, q, k, v, forbid, causal, block, lead):
        out, m, l = forward_tiles(q, k, v, forbid, causal, block, lead)  # noqa: E741
        ctx.save_for_backward(q, k, v, out, m, l)
        ctx.forbid, ctx.causal, ctx.block, ctx.lead = forbid, causal, block, lead
        return out

    @staticmethod
    def backward(ctx, d_out):
        q, k, v, out, m, l = ctx.saved_tensors  # noqa: E741
        d_q, d_k, d_v = backward_by_recomputation(
            q, k, v, out, m, l, d_out, ctx.forbid, ctx.causal, ctx.block, ctx.lead,
            mask_tile_=mask_tile_, buffer_view=buffer_view,
        )
        return d_q, d_k, d_v, None, None, None, None


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
    returned: the weights are never stored, not even for the backward pass, which recomputes them
    tile by tile from q, k, v, the output and the per-row ``m`` and ``l``.
    mask: boolean, broadcastable to (..., n_q, n_k); ``True`` = may attend.
    causal: query i may attend to keys j <= i (top-left aligned, as torch's ``is_causal``).
    block_size: queries and keys per tile, an int >= 1; need not divide n_q or n_k.
    Rows with nothing to attend to (a fully masked row, or n_k = 0) get a zero output, never NaN,
    and zero, finite gradients.
    """
    scores_shape = check_attention_inputs(q, k, v, mask)
    check_positive_int("block_size", block_size)
    lead, n_q, d_v = scores_shape[:-2], scores_shape[-2], v.shape[-1]
    forbid = None if mask is None else (~mask).expand(scores_shape)  # (..., n_q, n_k): True = may not attend
    B = math.prod(lead)  # batch and heads flattened into one dimension
    q3, k3, v3 = (t.expand(*lead, *t.shape[-2:]).reshape(B, *t.shape[-2:]) for t in (q, k, v))  # (B, n, width)
    out = ChunkedAttention.apply(q3, k3, v3, forbid, causal, block_size, lead)  # (B, n_q, d_v)
    return out.view(*lead, n_q, d_v)  # (..., n_q, d_v)
