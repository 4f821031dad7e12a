"""Ring attention: one sequence split across the P processes of a ``torch.distributed`` group.

Each process holds a block of queries, keys and values. The key/value blocks travel around a ring
(send to the next rank, receive from the previous): at step t = 0 ... P-1 process r holds the block
of process (r - t) mod P, attends its queries to it and folds the result into the online softmax's
m, ℓ and weighted sum of values, as :mod:`attnlib.chunked` folds in a block of keys (Liu, Zaharia
and Abbeel 2023). The next block travels (asynchronous send and receive) while this one is used.
Layouts: n = P * n_local positions cut into chunks; process r holds ``"contiguous"``: chunk r of P,
positions r * n_local ... (r + 1) * n_local - 1, or ``"zigzag"``: chunks r and 2P - 1 - r of 2P
(n_local / 2 positions each), in that order (:mod:`attnlib.ring_layout`). Causal chunk pairs
whose keys all follow their queries are skipped: contiguous, process r computes at r + 1 of the
P steps; zig-zag, every process computes the same number of scores at every step.
"""

import math
import time
from dataclasses import dataclass, field

import torch

from .checks import batch_shape, check_attention_inputs, check_choice
from .processes import Ring
from .ring_layout import LAYOUTS, layout_chunks, positions, shard, step_plan, tile_kind, unshard  # noqa: F401 (ring.shard, ...)


@dataclass
class RingStats:
    """What one process did, step by step: pass ``stats=RingStats()`` to :func:`ring_attention`.

    ``forward``, ``backward``: one dict per step (each call replaces them): ``source`` (whose block was
    held), ``bytes_sent`` (to the next process; the all-gather that checks the blocks is not counted),
    ``score_entries`` (of the tiles computed, over batch and heads), ``compute_s`` and ``wait_s``
    (wall-clock seconds computing, then waiting for the message)."""

    rank: int = -1
    world_size: int = 0
    forward: list = field(default_factory=list)
    backward: list = field(default_factory=list)


def check_blocks(ring: Ring, q, k, v, causal: bool, layout: str) -> None:
    """One all-gather of every process's shapes: the same n_local, shapes, dtype, causal and layout."""
    mine = (q.shape[-2], tuple(q.shape), tuple(k.shape), tuple(v.shape), str(q.dtype), causal, layout)
    every = [None] * ring.size
    ring.dist.all_gather_object(every, mine, group=ring.group)
    if len({e[0] for e in every}) > 1:
        held = ", ".join(f"process {r}: {e[0]}" for r, e in enumerate(every))
        raise ValueError(f"blocks of different lengths across processes ({held} positions); ring_attention "
                         "needs every process to hold a block of the same length n_local")
    for r, theirs in enumerate(every):
        if theirs != mine:
            names = ("n_local", "q shape", "k shape", "v shape", "dtype", "causal", "layout")
            diff = ", ".join(f"{a}: {x} here, {y} there" for a, x, y in zip(names, mine, theirs, strict=True) if x != y)
            raise ValueError(f"process {ring.rank} and process {r} called ring_attention differently ({diff})")


def ring_steps(ring: Ring, kv: torch.Tensor, causal: bool, layout: str,
               log: list | None):
    """Yield ``(kv, tiles, entry)`` at steps 0 ... P-1: the block held, the tiles to
    compute with it (it moves on meanwhile), and the step's record for ``log`` (bytes
    and times; the caller adds ``score_entries``)."""
    for step in range(ring.size):
        source, tiles = step_plan(ring.rank, step, ring.size, layout, causal)
        # the next block starts travelling now
        pending = ring.shift(kv) if step < ring.size - 1 else None
        entry, start = ({"source": source, "bytes_sent": pending[2] if pending else 0},
                        time.perf_counter())
        yield kv, [tile for tile in tiles if tile[2] != "skipped"], entry
        computed = time.perf_counter()
        kv = Ring.wait(pending) if pending else kv
        entry.update(compute_s=computed - start, wait_s=time.perf_counter() - computed)
        if log is not None:
            log.append(entry)


def scores_tile(q, k, kind, scale):
    """q (B, c, d), k (B, c, d) -> scores (B, c, c); a "diagonal" tile forbids key j after query i (-inf)."""
    s = q @ k.transpose(1, 2) * scale  # (B, c, d) @ (B, d, c) -> (B, c, c)
    if kind == "diagonal":  # the same chunk of positions on both sides: the causal triangle
        s = s.masked_fill(torch.ones(s.shape[-2:], dtype=torch.bool, device=s.device).triu(1), float("-inf"))
    return s


def ring_forward(q, k, v, causal, layout, ring, stats):
    """q, k: (B, n_local, d), v: (B, n_local, d_v) -> out (B, n_local, d_v),
    log-normaliser L (B, n_local, 1)."""
    (B, n, d), d_v = q.shape, v.shape[-1]
    c = n // len(layout_chunks(0, ring.size, layout))  # positions per chunk
    # sum_j exp(s_j - m) v_j, sum_j exp(s_j - m)
    acc, l = q.new_zeros(B, n, d_v), q.new_zeros(B, n, 1)
    # running maximum, finite from the start
    m = q.new_full((B, n, 1), torch.finfo(q.dtype).min)
    # keys and values travel as one message
    kv0 = torch.cat([k, v], dim=-1)  # (B, n_local, d + d_v)
    for kv, tiles, entry in ring_steps(ring, kv0, causal, layout,
                                       None if stats is None else stats.forward):
        for i, j, kind in tiles:
            rows, keys = slice(i * c, (i + 1) * c), slice(j * c, (j + 1) * c)
            s = scores_tile(q[:, rows], kv[:, keys, :d], kind,
                            1 / math.sqrt(d))  # (B, c, c)
            # the online softmax
            m_new = torch.maximum(m[:, rows], s.amax(dim=-1, keepdim=True))  # (B, c, 1)
            p, rescale = (torch.exp(s - m_new),  # (B, c, c)
                          torch.exp(m[:, rows] - m_new))  # (B, c, 1)
            # (B, c, c) @ (B, c, d_v)
            acc[:, rows] = acc[:, rows] * rescale + p @ kv[:, keys, d:]
            l[:, rows] = l[:, rows] * rescale + p.sum(dim=-1, keepdim=True)
            m[:, rows] = m_new
        entry["score_entries"] = len(tiles) * B * c * c
    return acc / l, m + torch.log(l)  # every row saw at least its own position: l > 0


def ring_backward(q, k, v, out, lse, d_out, causal, layout, ring, stats):
    """Gradients by recomputation (chapter 8's formulas); each block's dK, dV travel with the block.

    In ``stats.backward`` a step's ``compute_s`` includes passing the held block's gradient on."""
    (B, n, d), P = q.shape, ring.size
    c, scale = n // len(layout_chunks(0, P, layout)), 1 / math.sqrt(d)
    delta = (d_out * out).sum(dim=-1, keepdim=True)  # (B, n_local, 1): D_i = sum_c dO_ic O_ic
    d_q, kv0 = torch.zeros_like(q), torch.cat([k, v], dim=-1)  # (B, n_local, d + d_v)
    d_kv = torch.zeros_like(kv0)  # the gradient of the block held, accumulated by every process it visits
    for kv, tiles, entry in ring_steps(ring, kv0, causal, layout, None if stats is None else stats.backward):
        for i, j, kind in tiles:
            rows, keys = slice(i * c, (i + 1) * c), slice(j * c, (j + 1) * c)
            k_t, v_t, q_t, do_t = kv[:, keys, :d], kv[:, keys, d:], q[:, rows], d_out[:, rows]
            p = torch.exp(scores_tile(q_t, k_t, kind, scale) - lse[:, rows])  # (B, c, c): the weights, recomputed
            d_kv[:, keys, d:] += p.transpose(1, 2) @ do_t  # dV += P^T dO
            ds = p * (do_t @ v_t.transpose(1, 2) - delta[:, rows])  # (B, c, c): dS = P * (dP - D)
            d_q[:, rows] += ds @ k_t * scale  # dQ += dS K / sqrt(d)
            d_kv[:, keys, :d] += ds.transpose(1, 2) @ q_t * scale  # dK += dS^T Q / sqrt(d)
        entry["score_entries"] = len(tiles) * B * c * c
        if P > 1:  # the gradient follows its block to the next process
            grads = ring.shift(d_kv, tag=1)
            d_kv, entry["bytes_sent"] = Ring.wait(grads), entry["bytes_sent"] + grads[2]
    return d_q, d_kv[..., :d], d_kv[..., d:]  # after P steps d_kv is the gradient of this process's own block


class RingAttention(torch.autograd.Function):
    """Saves q, k, v, the output and L per row, never the weights: the backward recomputes them."""

    @staticmethod
    def forward(ctx, q, k, v, causal, layout, ring, stats):
        out, lse = ring_forward(q, k, v, causal, layout, ring, stats)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.causal, ctx.layout, ctx.ring, ctx.stats = causal, layout, ring, stats
        return out

    @staticmethod
    def backward(ctx, d_out):
        if ctx.stats is not None:
            ctx.stats.backward = []
        grads = ring_backward(*ctx.saved_tensors, d_out.contiguous(), ctx.causal, ctx.layout, ctx.ring, ctx.stats)
        return *grads, None, None, None, None


def ring_attention(q, k, v, *, causal=False, group=None, layout="contiguous", stats=None) -> torch.Tensor:
    """This process's block of ``softmax(Q K^T / sqrt(d)) V`` over the whole sequence of the group.

    Called in every process of an initialised process group (``group``, default the whole world).
    q, k: (..., n_local, d), v: (..., n_local, d_v) -> (..., n_local, d_v): this process's rows of
    positions (see ``layout``, :func:`positions`) of full attention, equal to slicing it.
    causal: query position i may attend to key positions j <= i (top-left, as torch's ``is_causal``).
    layout: ``"contiguous"`` or ``"zigzag"`` (the module docstring says what each process holds).
    stats: a :class:`RingStats` to fill with bytes sent and work per step. Differentiable.
    """
    check_attention_inputs(q, k, v)
    check_choice("layout", layout, LAYOUTS)
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {type(causal).__name__}")
    if q.shape[-2] != k.shape[-2] or q.shape[-2] % len(layout_chunks(0, 1, layout)) or q.shape[-2] == 0:
        raise ValueError(f"q and k must hold the same n_local >= 1 positions, even for the zig-zag layout's two "
                         f"chunks; got q {tuple(q.shape)}, k {tuple(k.shape)}, layout {layout!r}")
    check_blocks(ring := Ring(group), q, k, v, causal, layout)  # every process: one n_local, one call
    if stats is not None:
        stats.rank, stats.world_size, stats.forward = ring.rank, ring.size, []
    lead = batch_shape(q=q, k=k, v=v)
    q3, k3, v3 = (t.expand(*lead, *t.shape[-2:]).reshape(-1, *t.shape[-2:]).contiguous() for t in (q, k, v))
    out = RingAttention.apply(q3, k3, v3, causal, layout, ring, stats)  # (B, n_local, d_v)
    return out.view(*lead, *out.shape[-2:])
