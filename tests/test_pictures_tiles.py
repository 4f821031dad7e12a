"""The tiling picture shows the tiles chunked_attention visits: checked by watching its products."""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

import attnlib  # noqa: E402
from attnlib.experiments.memory import cache_sizes  # noqa: E402
from attnlib.pictures import tiles  # noqa: E402

D, D_V = 3, 5  # widths chosen so that a score tile (b_q, b_k) is never (b_q, d_v)


class ScoreProducts(TorchDispatchMode):
    """Records, for every matrix product that makes a tile of scores, its rows and its first key.

    The key operand is a transposed slice of the keys, (B, d or d + 1, cols), whose storage offset
    divided by its row stride is the tile's first key. A new block of queries starts when the key
    offset returns to 0 (the kernel's rows of tiles each start at key 0).
    """

    def __init__(self):
        super().__init__()
        self.products = []  # (rows, k0) in the order they ran

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.__name__.split(".")[0]
        if name in ("bmm", "baddbmm"):
            a, b = (args[0], args[1]) if name == "bmm" else (args[1], args[2])
            if out.shape[-1] != D_V:  # a tile of scores, not the weighted sum of the values
                self.products.append((a.shape[-2], b.storage_offset() // b.stride(-1)))
        return out


def tiles_by_products(n_q, n_k, block, causal):
    q = torch.randn(1, 2, n_q, D)
    k, v = torch.randn(1, 2, n_k, D), torch.randn(1, 2, n_k, D_V)
    with torch.no_grad(), ScoreProducts() as watch:
        attnlib.chunked_attention(q, k, v, causal=causal, block_size=block)
    visited, q0, rows_before = [], None, 0
    for rows, k0 in watch.products:
        if k0 == 0:  # every row of tiles starts at key 0, and only there
            q0, rows_before = (0 if q0 is None else q0 + rows_before), rows
        if not visited or visited[-1] != (q0, k0):  # a cheap step redone: the same tile again
            visited.append((q0, k0))
    return visited


@pytest.mark.parametrize("n_q, n_k, block", [(10, 10, 4), (16, 16, 4), (9, 14, 3), (8, 8, 8), (5, 12, 4)])
@pytest.mark.parametrize("causal", [False, True])
def test_tiles_drawn_are_the_tiles_the_kernel_multiplies(n_q, n_k, block, causal):
    schedule = tiles.tile_schedule(n_q, n_k, block_size=block, causal=causal, heads=2, d=D)
    picture = tiles.draw_schedule(schedule)
    assert picture.drawn["visited"] == tiles_by_products(n_q, n_k, block, causal)
    every = {(q0, k0) for q0 in range(0, n_q, block) for k0 in range(0, n_k, block)}
    assert set(picture.drawn["visited"]) | set(picture.drawn["skipped"]) == every
    assert not set(picture.drawn["visited"]) & set(picture.drawn["skipped"])
    matplotlib.pyplot.close(picture.figure)


def test_a_causal_schedule_by_hand():
    # n = 10, blocks of 4: query rows 0-3 need key block 0; 4-7 need 0, 4; 8-9 need 0, 4, 8.
    schedule = tiles.tile_schedule(10, 10, block_size=4, causal=True)
    picture = tiles.draw_schedule(schedule)
    assert picture.drawn["visited"] == [(0, 0), (4, 0), (4, 4), (8, 0), (8, 4), (8, 8)]
    assert picture.drawn["skipped"] == [(0, 4), (0, 8), (4, 8)]
    matplotlib.pyplot.close(picture.figure)


@pytest.mark.parametrize("causal", [False, True])
def test_partly_masked_tiles_are_those_the_causal_mask_cuts(causal):
    n, block = 12, 4
    schedule = tiles.tile_schedule(n, n, block_size=block, causal=causal)
    allowed = attnlib.causal_mask(n, n) if causal else torch.ones(n, n, dtype=torch.bool)
    cut = [(q0, k0) for q0, k0 in schedule.visited()
           if not allowed[q0 : q0 + block, k0 : k0 + block].all()]
    picture = tiles.draw_schedule(schedule)
    assert picture.drawn["partly_masked"] == cut
    assert bool(cut) == causal
    matplotlib.pyplot.close(picture.figure)


def test_tile_bytes_are_the_scores_of_all_heads():
    schedule = tiles.tile_schedule(20, 20, block_size=8, heads=3, d=4)
    assert schedule.largest_tile_bytes() == 3 * 8 * 8 * 4  # float32
    assert {(t.rows, t.cols) for t in schedule.tiles} == {(8, 8), (8, 4), (4, 8), (4, 4)}


def test_recording_leaves_the_kernel_as_it_was():
    original = attnlib.chunked.mask_tile_
    tiles.tile_schedule(8, 8, block_size=4)
    assert attnlib.chunked.mask_tile_ is original


def test_the_cache_picture_draws_the_sizes_it_is_given():
    caches = cache_sizes() or {"L1": 48 * 2**10, "L2": 2**21}
    picture = tiles.draw_caches(caches, {"one tile": 2**20})
    assert picture.drawn["bars"] == [(f"{level} cache", size) for level, size in caches.items()] + [
        ("one tile", 2**20)
    ]
    matplotlib.pyplot.close(picture.figure)


def test_cache_sizes_reads_linux_folders(tmp_path):
    for i, (level, kind, size) in enumerate([(1, "Data", "48K"), (1, "Instruction", "32K"),
                                             (2, "Unified", "2048K"), (3, "Unified", "300M")]):
        folder = tmp_path / f"index{i}"
        folder.mkdir()
        (folder / "level").write_text(f"{level}\n")
        (folder / "type").write_text(f"{kind}\n")
        (folder / "size").write_text(f"{size}\n")
    assert cache_sizes(str(tmp_path)) == {"L1": 48 * 2**10, "L2": 2**21, "L3": 300 * 2**20}
    assert cache_sizes(str(tmp_path / "missing")) == {}


def test_a_cheap_step_redone_is_one_tile():
    q = torch.full((1, 1, 8, D), 10.0)
    k = torch.zeros(1, 1, 8, D)
    k[..., 4:, :] = 100.0  # the second key block's scores rise far above the first block's maximum
    calls = []
    original = attnlib.chunked.mask_tile_
    with tiles.record_tiles() as seen:
        watched = attnlib.chunked.mask_tile_

        def counting(*args):
            calls.append(args[3:5])
            watched(*args)

        attnlib.chunked.mask_tile_ = counting
        try:
            attnlib.chunked_attention(q, k, torch.randn(1, 1, 8, D_V), block_size=4)
        finally:
            attnlib.chunked.mask_tile_ = watched
    assert attnlib.chunked.mask_tile_ is original
    assert calls.count((0, 4)) == 2  # the cheap step overflowed and was redone as a full step
    assert [(t.q0, t.k0) for t in seen] == [(0, 0), (0, 4), (4, 0), (4, 4)]
