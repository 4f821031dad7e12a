"""Chapter 8's pictures: the tiles ``chunked_attention`` visits, and the caches against one tile.

Nothing here repeats the kernel's loop. :func:`record_tiles` watches
:func:`attnlib.chunked_attention` while it runs: its forward pass masks every tile it computes
through the name ``mask_tile_`` of :mod:`attnlib.chunked` (once per tile, again if a step is redone), so a
wrapper around that function sees each tile's first query, first key, its shape and whether the
mask forbade any of its scores. :func:`draw_schedule` draws what was recorded; the tiles of the
block grid that were never recorded are the skipped ones.
"""

from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from .. import chunked
from .base import COLORS, Picture, canvas


@dataclass(frozen=True)
class Tile:
    """One tile as the kernel computed it: scores of queries q0.. and keys k0.. ."""

    q0: int
    k0: int
    rows: int  # queries in the tile
    cols: int  # keys in the tile
    nbytes: int  # bytes of the tile of scores (all heads at once)
    partly_masked: bool  # some score of the tile was set to -inf by the mask


@dataclass
class Schedule:
    """The tiles one forward pass of ``chunked_attention`` visited, in the order it visited them."""

    n_q: int
    n_k: int
    block_size: int
    causal: bool
    tiles: list[Tile] = field(default_factory=list)

    def grid(self) -> list[tuple[int, int]]:
        """Every tile of the block grid, ``(q0, k0)``, visited or not."""
        return [(q0, k0) for q0 in range(0, self.n_q, self.block_size)
                for k0 in range(0, self.n_k, self.block_size)]

    def visited(self) -> list[tuple[int, int]]:
        return [(t.q0, t.k0) for t in self.tiles]

    def skipped(self) -> list[tuple[int, int]]:
        seen = set(self.visited())
        return [tile for tile in self.grid() if tile not in seen]

    def largest_tile_bytes(self) -> int:
        return max(t.nbytes for t in self.tiles)


@contextmanager
def record_tiles():
    """``with record_tiles() as tiles: chunked_attention(...)`` -> ``tiles``: the Tiles visited.

    A tile masked twice (a cheap step redone as a full step, or a pass repeated with ``v``
    scaled down) is recorded once. The forward pass only: the backward pass
    (:mod:`attnlib.chunked_backward`) is not watched.
    """
    original, tiles, seen = chunked.mask_tile_, [], set()

    def watched(s, forbid, causal, q0, k0, lead, triangles):
        original(s, forbid, causal, q0, k0, lead, triangles)
        if (q0, k0) not in seen:  # s: (B, rows, cols), the tile's scores after masking
            seen.add((q0, k0))
            rows, cols = s.shape[-2:]
            tiles.append(Tile(q0, k0, rows, cols, s.numel() * s.element_size(),
                              bool(torch.isneginf(s).any())))

    chunked.mask_tile_ = watched
    try:
        yield tiles
    finally:
        chunked.mask_tile_ = original


def tile_schedule(n_q: int, n_k: int, *, block_size: int, causal: bool = False,
                  heads: int = 1, d: int = 8, seed: int = 0) -> Schedule:
    """Run ``chunked_attention`` once on random (1, heads, n, d) inputs and record its tiles."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(1, heads, n_q, d, generator=gen)  # (1, heads, n_q, d)
    k, v = (torch.randn(1, heads, n_k, d, generator=gen) for _ in range(2))  # (1, heads, n_k, d)
    with torch.no_grad(), record_tiles() as tiles:
        chunked.chunked_attention(q, k, v, causal=causal, block_size=block_size)
    return Schedule(n_q, n_k, block_size, causal, list(tiles))


def draw_schedule(schedule: Schedule) -> Picture:
    """The block grid: visited tiles numbered in the kernel's order, skipped tiles grey.

    Axes in positions: keys left to right, queries top to bottom, as in a matrix of scores. A
    tile the mask cut is hatched. -> Picture with ``drawn["visited"]`` (in order),
    ``drawn["skipped"]`` and ``drawn["partly_masked"]``, each a list of ``(q0, k0)``.
    """
    from matplotlib.patches import Rectangle

    n_q, n_k = schedule.n_q, schedule.n_k
    margin = 0.16 * max(n_q, n_k)
    fig, ax = canvas(n_k + 1.1 * margin, n_q + 0.95 * margin)
    x0, top = margin, n_q + 0.05 * margin  # the grid's upper-left corner in drawing units
    sizes = {(t.q0, t.k0): (t.rows, t.cols) for t in schedule.tiles}
    b = schedule.block_size
    for q0, k0 in schedule.skipped():
        rows, cols = min(b, n_q - q0), min(b, n_k - k0)
        ax.add_patch(Rectangle((x0 + k0, top - q0 - rows), cols, rows, facecolor=COLORS["skipped"],
                               edgecolor="white", linewidth=2))
    for order, tile in enumerate(schedule.tiles, start=1):
        rows, cols = sizes[tile.q0, tile.k0]
        ax.add_patch(Rectangle((x0 + tile.k0, top - tile.q0 - rows), cols, rows,
                               facecolor=COLORS["query"], alpha=0.35, edgecolor="white", linewidth=2,
                               hatch="//" if tile.partly_masked else None))
        ax.text(x0 + tile.k0 + cols / 2, top - tile.q0 - rows / 2, str(order), ha="center",
                va="center", fontsize=12, color=COLORS["ink"])
    for k0 in range(0, n_k, b):
        ax.text(x0 + k0, top + 0.12 * margin, str(k0), ha="center", va="bottom", fontsize=11)
    for q0 in range(0, n_q, b):
        ax.text(x0 - 0.1 * margin, top - q0, str(q0), ha="right", va="center", fontsize=11)
    ax.text(x0 + n_k / 2, top + 0.45 * margin, "keys (first position of each block)",
            ha="center", va="bottom", fontsize=12)
    ax.text(x0 - 0.75 * margin, top - n_q / 2, "queries", rotation=90, ha="center",
            va="center", fontsize=12)
    drawn = {"visited": schedule.visited(), "skipped": schedule.skipped(),
             "partly_masked": [(t.q0, t.k0) for t in schedule.tiles if t.partly_masked]}
    return Picture(fig, drawn)


def draw_caches(caches: dict[str, int], tiles: dict[str, int]) -> Picture:
    """Bars on a log scale: the cache sizes ``caches`` (level -> bytes) and tiles (label -> bytes).

    -> Picture with ``drawn["bars"]``: ``(label, bytes)`` from top to bottom.
    """
    import matplotlib.pyplot as plt

    from ..display import COLUMN_WIDTH

    bars = [(f"{level} cache", size) for level, size in caches.items()] + list(tiles.items())
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 3.8))  # one size whatever the machine's levels
    labels = [label for label, _ in bars][::-1]
    sizes = [size for _, size in bars][::-1]
    colours = [COLORS["other"] if label.endswith("cache") else COLORS["output"] for label in labels]
    ax.barh(labels, sizes, color=colours)
    ax.set_xscale("log", base=2)
    ticks = [2**p for p in range(10, 40, 3) if min(sizes) / 2 <= 2**p <= 4 * max(sizes)]
    ax.set_xticks(ticks, [_size_text(t) for t in ticks])
    ax.minorticks_off()
    for y, size in enumerate(sizes):
        ax.text(size * 1.1, y, _size_text(size), va="center", fontsize=11)
    ax.set_xlim(min(sizes) / 2, 8 * max(sizes))
    ax.set_xlabel("bytes (log scale)")
    ax.grid(axis="y", visible=False)
    return Picture(fig, {"bars": bars})


def _size_text(nbytes: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= size:
            return f"{nbytes / size:g} {unit}"
    return f"{nbytes:g} B"
