"""Attention in memory linear in the sequence length: blocks of keys, an online softmax.

``attention`` builds the whole ``(n_q, n_k)`` score matrix. ``chunked_attention`` computes the
same output one tile of ``block_size`` queries by ``block_size`` keys at a time. For each query
it keeps a running maximum ``m``, a running sum ``l`` (written ℓ in the book) of ``exp(s - m)``
and a running weighted sum ``acc`` of the values; when a new block raises the maximum, the old
``l`` and ``acc`` are rescaled by ``exp(m_old - m_new)`` (the online softmax of Milakov and
Gimelshein, used for attention by Rabe and Staats and by FlashAttention). At the end
``output = acc / l``. :func:`reference_tiles` is that loop, written plainly; :func:`forward_tiles`
computes the same sums fast, and the tests hold the two equal. The backward pass
(:mod:`attnlib.chunked_backward`) keeps only the output, ``m`` and ``l`` and recomputes the tiles
of scores, as FlashAttention does; both passes walk the tiles of :mod:`attnlib.tiles`.

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

Extreme values: ``acc`` is at most ``l`` times the largest ``|v|``, so values near the float's
largest number can overflow it even where the output is finite; then the pass is repeated with
each column of ``v`` divided by a power of two (exact) and the output multiplied back. float16
and bfloat16 inputs are computed in float32 (as fused kernels accumulate), then cast back.
"""

import math

import torch

from .checks import check_attention_inputs, check_positive_int
from .chunked_backward import backward_by_recomputation
from .tiles import buffer_view, key_starts, mask_tile_


def reference_tiles(q, k, v, forbid, causal, block, lead):
    """The online softmax over tiles, written plainly: what :func:`forward_tiles` computes.

    q: (B, n_q, d), k: (B, n_k, d), v: (B, n_k, d_v) -> out (B, n_q, d_v), m, l (B, n_q, 1).
    """
    outs, ms, ls = [], [], []
    for q0 in range(0, q.shape[1], block):
        q_blk = q[:, q0 : q0 + block]  # (B, b_q, d)
        m = torch.full_like(q_blk[..., :1], torch.finfo(q.dtype).min)  # (B, b_q, 1); finite: m - m_new is no NaN
        l = torch.zeros_like(m)  # (B, b_q, 1): sum_j exp(s_j - m)
        acc = q_blk.new_zeros(*q_blk.shape[:2], v.shape[-1])  # (B, b_q, d_v): sum_j exp(s_j - m) v_j
        for k0 in key_starts(q0 + q_blk.shape[1], k.shape[1], block, causal):
            s = q_blk @ k[:, k0 : k0 + block].transpose(1, 2) / math.sqrt(q.shape[-1])  # (B, b_q, b_k)
            mask_tile_(s, forbid, causal, q0, k0, lead, {})
            m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))  # (B, b_q, 1)
            r = torch.exp(m - m_new)  # (B, b_q, 1): rescales the old sums to the new maximum
            p = torch.exp(s - m_new)  # (B, b_q, b_k): the tile's unnormalised weights; forbidden -> 0
            l = l * r + p.sum(dim=-1, keepdim=True)
            acc = acc * r + p @ v[:, k0 : k0 + block]  # (B, b_q, b_k) @ (B, b_k, d_v) -> (B, b_q, d_v)
            m = m_new
        outs.append(acc / torch.where(l > 0, l, 1.0))  # (B, b_q, d_v); 0 for a row that saw no key
        ms.append(m)
        ls.append(l)
    return torch.cat(outs, dim=1), torch.cat(ms, dim=1), torch.cat(ls, dim=1)


def forward_tiles(q, k, v, forbid, causal, block, lead):
    """q: (B, n_q, d), k: (B, n_k, d), v: (B, n_k, d_v) -> out (B, n_q, d_v),
    m, l (B, n_q, 1), finite.

    ``finite`` is False if some accumulator overflowed (only for ``|v|`` near the
    float's limit).
    """
    (B, n_q, d), (n_k, d_v) = q.shape, v.shape[-2:]
    # [q / sqrt(d), -m] . [k, 1] = s - m
    k_ones = torch.cat([k, k.new_ones(B, n_k, 1)], dim=-1)  # (B, n_k, d + 1)
    out, m_all, l_all = (q.new_empty(B, n_q, d_v), q.new_empty(B, n_q, 1),
                         q.new_empty(B, n_q, 1))
    # the largest tile: no larger than the scores themselves
    b_q, b_k = min(block, n_q), min(block, n_k)
    s_buf, acc_buf, q_buf = (q.new_empty(B * b_q * b_k), q.new_empty(B * b_q * d_v),
                             q.new_empty(B * b_q * (d + 1)))
    m_buf, m_new_buf, r_buf, l_buf, l_tile_buf = (q.new_empty(B * b_q)
                                                  for _ in range(5))
    # lowest: m starts finite, not -inf
    scale, lowest = 1.0 / math.sqrt(d), torch.finfo(q.dtype).min
    # limit: the largest row sum a cheap step keeps
    limit, triangles, finite = math.sqrt(torch.finfo(q.dtype).max), {}, True
    for q0 in range(0, n_q, block):
        q1 = min(q0 + block, n_q)
        q_blk = q[:, q0:q1]  # (B, b_q, d)
        # [q / sqrt(d), -m]
        q_shift = buffer_view(q_buf, B, q1 - q0, d + 1)  # (B, b_q, d + 1)
        torch.mul(q_blk, scale, out=q_shift[..., :d])
        # sum_j exp(s_j - m) v_j
        acc = buffer_view(acc_buf, B, q1 - q0, d_v).zero_()  # (B, b_q, d_v)
        m, m_new, r, l, l_tile = (buffer_view(b, B, q1 - q0, 1)
                                  for b in (m_buf, m_new_buf, r_buf, l_buf, l_tile_buf))
        # so that m - m_new is never -inf - (-inf) = NaN, even in a fully masked row
        m.fill_(lowest)
        l.zero_()  # (B, b_q, 1): sum_j exp(s_j - m)
        # causal: no key after the last query
        for k0 in key_starts(q1, n_k, block, causal):
            k1 = min(k0 + block, n_k)
            s = buffer_view(s_buf, B, q1 - q0, k1 - k0)  # (B, b_q, b_k)
            if k0 > 0:  # cheap step: keep the old maximum
                torch.bmm(q_shift, k_ones[:, k0:k1].transpose(1, 2), out=s)  # s - m
                mask_tile_(s, forbid, causal, q0, k0, lead, triangles)
                # l_tile is inf if a score overflowed
                torch.sum(s.exp_(), dim=-1, keepdim=True, out=l_tile)  # (B, b_q, 1)
                # every exp(s - m) <= limit: no overflow ahead
                if l_tile.numel() == 0 or l_tile.max() <= limit:
                    l.add_(l_tile)
                    # acc + (B, b_q, b_k) @ (B, b_k, d_v)
                    torch.baddbmm(acc, s, v[:, k0:k1], out=acc)
                    continue
            # full step (the online softmax): a new maximum, the old sums rescaled to it
            torch.baddbmm(s, q_blk, k[:, k0:k1].transpose(1, 2), beta=0, alpha=scale,
                          out=s)  # (B, b_q, b_k)
            mask_tile_(s, forbid, causal, q0, k0, lead, triangles)
            torch.maximum(torch.amax(s, dim=-1, keepdim=True, out=m_new), m,
                          out=m_new)  # (B, b_q, 1)
            # exp(m_old - m_new) rescales the old sums
            torch.sub(m, m_new, out=r).exp_()  # (B, b_q, 1)
            # p = exp(s - m_new); forbidden -> 0
            torch.sum(s.sub_(m_new).exp_(), dim=-1, keepdim=True, out=l_tile)
            l.mul_(r).add_(l_tile)
            # acc * r + (B, b_q, b_k) @ (B, b_k, d_v)
            torch.baddbmm(acc.mul_(r), s, v[:, k0:k1], out=acc)
            m.copy_(m_new)
            # the cheap steps shift by the new maximum
            torch.neg(m, out=q_shift[..., d:])
        # the accumulator is at most l times the largest |v|
        finite = finite and math.isfinite(acc.sum())
        # 0 if nothing was seen
        torch.div(acc, torch.where(l > 0, l, 1.0), out=out[:, q0:q1])  # (B, b_q, d_v)
        m_all[:, q0:q1], l_all[:, q0:q1] = m, l
    return out, m_all, l_all, finite


class ChunkedAttention(torch.autograd.Function):
    """Autograd for chunked attention: saves q, k, v, the output, ``m`` and ``l``, never the weights."""

    @staticmethod
    def forward(ctx, q, k, v, forbid, causal, block, lead):
        out, m, l, finite = forward_tiles(q, k, v, forbid, causal, block, lead)
        if not finite and torch.isfinite(v).all():  # |v| so large that a sum overflowed: again, v scaled down
            largest = v.abs().amax(dim=1, keepdim=True).clamp_min(torch.finfo(v.dtype).tiny)  # (B, 1, d_v)
            power = torch.exp2(torch.floor(torch.log2(largest)))  # (B, 1, d_v): a power of two, exact to divide by
            out, m, l, _ = forward_tiles(q, k, v / power, forbid, causal, block, lead)
            out.mul_(power)  # (B, n_q, d_v)
        ctx.save_for_backward(q, k, v, out, m, l)
        ctx.forbid, ctx.causal, ctx.block, ctx.lead = forbid, causal, block, lead
        return out

    @staticmethod
    def backward(ctx, d_out):
        q, k, v, out, m, l = ctx.saved_tensors
        tiles = ctx.forbid, ctx.causal, ctx.block, ctx.lead  # the forward pass's tiles and masks
        d_q, d_k, d_v = backward_by_recomputation(q, k, v, out, m, l, d_out, *tiles)
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
    """Scaled dot-product attention ``softmax(Q K^T / sqrt(d)) V`` without the
    score matrix.

    q: (..., n_q, d), k: (..., n_k, d), v: (..., n_k, d_v) -> output (..., n_q, d_v)

    Equal (up to rounding) to ``attention(q, k, v, mask=mask, causal=causal)[0]``, but
    the largest intermediate is one ``(..., block_size, block_size)`` tile of scores, so
    the extra memory grows linearly with n_q (the output) instead of as n_q * n_k. Only
    the output is returned (attnlib's convention: a function that never forms the
    weights returns no weights): they are never stored, not even for the backward pass,
    which recomputes them tile by tile from q, k, v, the output and the per-row ``m``
    and ``l``.
    mask: boolean, broadcastable to (..., n_q, n_k); ``True`` = may attend.
    causal: query i may attend to keys j <= i (top-left aligned, as torch's
    ``is_causal``).
    block_size: queries and keys per tile, an int >= 1; need not divide n_q or n_k.
    Rows with nothing to attend to (a fully masked row, or n_k = 0) get a zero output,
    never NaN, and zero, finite gradients. float16 and bfloat16 are computed in float32.
    """
    scores_shape = check_attention_inputs(q, k, v, mask, causal=causal)
    check_positive_int("block_size", block_size)
    lead, n_q, d_v = scores_shape[:-2], scores_shape[-2], v.shape[-1]
    # True = may not attend
    forbid = None if mask is None else (~mask).expand(scores_shape)  # (..., n_q, n_k)
    B = math.prod(lead)  # batch and heads flattened into one dimension
    # float16, bfloat16 -> float32; float32, float64 stay
    wide = torch.promote_types(q.dtype, torch.float32)
    q3, k3, v3 = (t.expand(*lead, *t.shape[-2:]).reshape(B, *t.shape[-2:]).to(wide)
                  for t in (q, k, v))  # (B, n, .)
    out = ChunkedAttention.apply(q3, k3, v3, forbid, causal,
                                 block_size, lead)  # (B, n_q, d_v)
    return out.to(q.dtype).view(*lead, n_q, d_v)  # (..., n_q, d_v)
