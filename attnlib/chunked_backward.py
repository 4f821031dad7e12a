"""The backward pass of chunked attention, by recomputation (FlashAttention's idea).

The forward pass of :func:`attnlib.chunked_attention` keeps the output ``O`` and, per query
row, the running maximum ``m`` and sum ``l`` (ℓ in the book), never the weights. With the row's
log-normaliser ``L = m + log l``, each tile of weights is recomputed exactly as
``P = exp(S - L)``, and the gradients follow from ``dO`` (the gradient of the output):

    ``dV = P^T dO``,   ``dP = dO V^T``,   ``dS = P * (dP - D)`` with ``D_i = sum_c dO_ic O_ic``,
    ``dQ = dS K / sqrt(d)``,   ``dK = dS^T Q / sqrt(d)``

``D_i = sum_j P_ij dP_ij`` is the softmax's correction term, computed once from ``dO`` and ``O``
instead of from the weights. As in the forward pass's cheap step, an extra column lets one product
give ``S - L`` (``[Q / sqrt(d), -L] [K, 1]^T``) and another ``dP - D`` (``[dO, -D] [V, 1]^T``), which
saves two passes over each tile. A row that saw no key (``l = 0``) gets the largest finite ``L``
(not ``+inf``, which the product would have to multiply), hence ``P = 0`` and zero gradients.
"""

import math

import torch

from .tiles import buffer_view, key_starts, mask_tile_


def backward_by_recomputation(q, k, v, out, m, l, d_out, forbid, causal, block, lead):
    """Gradients of chunked attention, one recomputed tile at a time.

    q: (B, n_q, d), k: (B, n_k, d), v: (B, n_k, d_v), out, d_out: (B, n_q, d_v),
    m, l: (B, n_q, 1) -> dQ (B, n_q, d), dK (B, n_k, d), dV (B, n_k, d_v).
    ``forbid``, ``causal``, ``block`` and ``lead`` are those of the forward pass
    (:mod:`attnlib.chunked`); the tiles are those of :mod:`attnlib.tiles`.
    """
    (B, n_q, d), n_k = q.shape, k.shape[-2]
    # log-normaliser L
    lse = torch.where(l > 0, m + torch.log(l), torch.finfo(q.dtype).max)  # (B, n_q, 1)
    # D_i = sum_c dO_ic O_ic
    delta = (d_out * out).sum(dim=-1, keepdim=True)  # (B, n_q, 1)
    # One product each gives S - L and dP - D, as in the forward's cheap step:
    # an extra column. q_shift is [Q / sqrt(d), -L].
    q_shift = torch.cat([q / math.sqrt(d), -lse], dim=-1)  # (B, n_q, d + 1)
    k_ones = torch.cat([k, k.new_ones(B, n_k, 1)], dim=-1)  # (B, n_k, d + 1): [K, 1]
    do_shift = torch.cat([d_out, -delta], dim=-1)  # (B, n_q, d_v + 1): [dO, -D]
    v_ones = torch.cat([v, v.new_ones(B, n_k, 1)], dim=-1)  # (B, n_k, d_v + 1): [V, 1]
    scale = 1.0 / math.sqrt(d)
    d_q, d_k, d_v = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
    # the largest tile: no larger than the scores themselves
    tile = B * min(block, n_q) * min(block, n_k)
    s_buf, dp_buf, triangles = q.new_empty(tile), q.new_empty(tile), {}
    for q0 in range(0, n_q, block):
        q1 = min(q0 + block, n_q)
        q_blk, do_blk = q[:, q0:q1], d_out[:, q0:q1]  # (B, b_q, d), (B, b_q, d_v)
        for k0 in key_starts(q1, n_k, block, causal):
            k1 = min(k0 + block, n_k)
            s = buffer_view(s_buf, B, q1 - q0, k1 - k0)  # (B, b_q, b_k)
            # S - L
            torch.bmm(q_shift[:, q0:q1], k_ones[:, k0:k1].transpose(1, 2), out=s)
            mask_tile_(s, forbid, causal, q0, k0, lead, triangles)
            p = s.exp_()  # (B, b_q, b_k): the weights of this tile, recomputed
            # a view: the products below add into d_v in place
            dv_blk = d_v[:, k0:k1]  # (B, b_k, d_v)
            # += (B, b_k, b_q) @ (B, b_q, d_v)
            torch.baddbmm(dv_blk, p.transpose(1, 2), do_blk, out=dv_blk)
            dp = buffer_view(dp_buf, B, q1 - q0, k1 - k0)  # (B, b_q, b_k)
            # dP - D
            torch.bmm(do_shift[:, q0:q1], v_ones[:, k0:k1].transpose(1, 2), out=dp)
            ds = dp.mul_(p)  # (B, b_q, b_k): dS = P * (dP - D)
            # views of d_q and d_k
            dq_blk, dk_blk = d_q[:, q0:q1], d_k[:, k0:k1]  # (B, b_q, d), (B, b_k, d)
            # += (B, b_q, b_k) @ (B, b_k, d)
            torch.baddbmm(dq_blk, ds, k[:, k0:k1], alpha=scale, out=dq_blk)
            # += (B, b_k, b_q) @ (B, b_q, d)
            torch.baddbmm(dk_blk, ds.transpose(1, 2), q_blk, alpha=scale, out=dk_blk)
    return d_q, d_k, d_v
