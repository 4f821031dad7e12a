"""The layouts of ring attention: which positions of one sequence each of P processes holds.

n = P * n_local positions cut into chunks; process r holds ``"contiguous"``: chunk r of P,
positions r * n_local ... (r + 1) * n_local - 1, or ``"zigzag"``: chunks r and 2P - 1 - r of 2P
(n_local / 2 positions each), in that order. :func:`shard` takes a process's block out of the full
sequence and :func:`unshard` joins the blocks again; :func:`step_plan` says which tiles a process
computes at each step of the ring (:mod:`attnlib.ring`), and which a causal mask lets it skip.
"""

import torch

from .checks import check_choice

LAYOUTS = ("contiguous", "zigzag")


def layout_chunks(rank: int, world_size: int, layout: str = "contiguous") -> list[int]:
    """The chunks process ``rank`` holds, in order: ``[rank]`` of P, or ``[rank, 2P - 1 - rank]`` of 2P."""
    check_choice("layout", layout, LAYOUTS)
    return [rank] if layout == "contiguous" else [rank, 2 * world_size - 1 - rank]


def shard(x: torch.Tensor, rank: int, world_size: int, layout: str = "contiguous", dim: int = -2) -> torch.Tensor:
    """Process ``rank``'s block of the full sequence ``x`` (positions along ``dim``), for ``layout``."""
    n_chunks = world_size * (1 if layout == "contiguous" else 2)
    if x.shape[dim] % n_chunks:
        raise ValueError(f"{x.shape[dim]} positions do not split into {n_chunks} equal chunks ({layout!r})")
    pieces = x.chunk(n_chunks, dim)
    return torch.cat([pieces[c] for c in layout_chunks(rank, world_size, layout)], dim)


def unshard(blocks: list[torch.Tensor], layout: str = "contiguous", dim: int = -2) -> torch.Tensor:
    """The full sequence from the blocks of processes 0 ... P-1 (the inverse of :func:`shard`)."""
    P, pieces = len(blocks), {}
    for rank, block in enumerate(blocks):
        chunks = layout_chunks(rank, P, layout)
        pieces.update(zip(chunks, block.chunk(len(chunks), dim), strict=True))
    return torch.cat([pieces[c] for c in sorted(pieces)], dim)


def positions(rank: int, world_size: int, n_local: int, layout: str = "contiguous") -> torch.Tensor:
    """The positions in the full sequence of process ``rank``'s ``n_local`` rows, shape (n_local,)."""
    return shard(torch.arange(world_size * n_local), rank, world_size, layout, dim=0)


def tile_kind(q_chunk: int, k_chunk: int, causal: bool) -> str:
    """"full", "diagonal" (a chunk against itself: the causal triangle) or "skipped" (every key after every query)."""
    return "full" if not causal or k_chunk < q_chunk else "diagonal" if k_chunk == q_chunk else "skipped"


def step_plan(rank: int, step: int, world_size: int, layout: str, causal: bool):
    """What process ``rank`` does at ``step``: ``(source, tiles)``. It holds the key/value block of
    process ``source``; each tile ``(i, j, kind)`` pairs its query chunk i with the held block's
    chunk j, ``kind`` "full", "diagonal" (the same chunk: a causal triangle) or "skipped"."""
    source = (rank - step) % world_size
    return source, [(i, j, tile_kind(q, k, causal)) for i, q in enumerate(layout_chunks(rank, world_size, layout))
                    for j, k in enumerate(layout_chunks(source, world_size, layout))]
