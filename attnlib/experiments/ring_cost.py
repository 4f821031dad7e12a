"""Chapter 13's experiments: ring attention checked against torch, its counts, memory and timings.

The functions named ``*_worker`` run inside the processes of a ring, started by
``attnlib.run_on_processes(worker, world_size, ...)``; each returns what its process measured.
Every process builds the same full sequence from the same seed and takes its own block of it
(``attnlib.ring.shard``), so it can compare its block of the output with torch's full attention.
The per-step records keep the counts (bytes, score entries, whose block) and drop the clock.
"""

import time

import torch
import torch.nn.functional as F

from .. import ring
from .memory import PeakMemory

COUNTS = ("source", "bytes_sent", "score_entries")


def counted(steps: list[dict]) -> list[dict]:
    """The per-step records of a :class:`attnlib.ring.RingStats` without their wall-clock times."""
    return [{key: step[key] for key in COUNTS} for step in steps]


def full_inputs(n: int, d: int = 8, heads: int = 2, seed: int = 0, dtype=torch.float64):
    """The whole sequence's q, k, v (1, heads, n, d) and a gradient of the output, the same in every process."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(1, heads, n, d, generator=generator, dtype=dtype) for _ in range(4)]


def compare_worker(rank: int, world_size: int, settings: list[tuple[int, bool, str]], d: int = 8) -> list[dict]:
    """For each ``(n, causal, layout)``: this process's largest difference from torch's SDPA in the output
    and in the gradients of q, k, v (float64), and the ring's counts per step, forward and backward."""
    results = []
    for n, causal, layout in settings:
        q, k, v, d_out = full_inputs(n, d)
        full = [t.clone().requires_grad_() for t in (q, k, v)]
        expected = F.scaled_dot_product_attention(*full, is_causal=causal)
        expected_grads = torch.autograd.grad(expected, full, d_out)
        mine = [ring.shard(t, rank, world_size, layout).requires_grad_() for t in (q, k, v)]
        stats = ring.RingStats()
        out = ring.ring_attention(*mine, causal=causal, layout=layout, stats=stats)
        grads = torch.autograd.grad(out, mine, ring.shard(d_out, rank, world_size, layout))
        pairs = zip(grads, expected_grads, strict=True)
        results.append({
            "n": n, "causal": causal, "layout": layout,
            "output": (out - ring.shard(expected, rank, world_size, layout)).abs().max().item(),
            "gradients": max((a - ring.shard(b, rank, world_size, layout)).abs().max().item() for a, b in pairs),
            "forward": counted(stats.forward), "backward": counted(stats.backward),
        })
    return results


def memory_worker(rank: int, world_size: int, sizes: list[int], d: int = 64) -> list[int]:
    """Counted peak bytes of the ring's forward pass in this process, one head of width d, float32,
    for each total sequence length in ``sizes`` (the inputs not counted, the received blocks counted)."""
    peaks = []
    for n in sizes:
        q, k, v = (ring.shard(t, rank, world_size) for t in full_inputs(n, d, heads=1, dtype=torch.float32)[:3])
        with PeakMemory() as counter:
            ring.ring_attention(q, k, v)
        peaks.append(counter.peak)
    return peaks


def timing_worker(rank: int, world_size: int, n_locals: list[int], d: int = 64, heads: int = 4,
                  repeats: int = 5) -> list[dict]:
    """Wall-clock seconds per step of the forward pass (median over ``repeats`` calls, steps 0 ... P-2,
    which send), split into computing and then waiting for the message, for each n_local; and the time
    of the same exchange alone (send and receive one block, nothing computed). float32, not causal."""
    import torch.distributed as dist

    rows = []
    for n_local in n_locals:
        q, k, v = (torch.randn(1, heads, n_local, d) for _ in range(3))
        compute, wait, exchange = [], [], []
        for _ in range(repeats + 1):  # the first call warms up
            stats = ring.RingStats()
            ring.ring_attention(q, k, v, stats=stats)
            compute.append(sum(s["compute_s"] for s in stats.forward[:-1]) / (world_size - 1))
            wait.append(sum(s["wait_s"] for s in stats.forward[:-1]) / (world_size - 1))
            dist.barrier()
            start, block = time.perf_counter(), torch.cat([k, v], dim=-1)
            ring.Ring().wait(ring.Ring().shift(block))
            exchange.append(time.perf_counter() - start)
        median = lambda xs: sorted(xs[1:])[len(xs[1:]) // 2]  # noqa: E731
        rows.append({"n_local": n_local, "bytes_per_step": block.numel() * block.element_size(),
                     "flops_per_step": 2 * heads * n_local * n_local * 2 * d,
                     "compute_s": median(compute), "wait_s": median(wait), "exchange_s": median(exchange)})
    return rows
