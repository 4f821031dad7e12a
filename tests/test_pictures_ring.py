"""The ring pictures against what a real ring of four processes recorded, and against the positions."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import attnlib  # noqa: E402
from attnlib.pictures.ring import draw_ring, draw_work  # noqa: E402
from attnlib.processes import run_on_processes  # noqa: E402
from attnlib.ring import RingStats, positions  # noqa: E402

P, N_LOCAL = 4, 4


def causal_call(rank, world_size, layout):
    q = attnlib.ring.shard(torch.randn(1, world_size * N_LOCAL, 8, generator=torch.Generator().manual_seed(0)),
                           rank, world_size, layout)
    stats = RingStats()
    attnlib.ring_attention(q, q, q, causal=True, layout=layout, stats=stats)
    return stats


@pytest.fixture(scope="module")
def runs():
    return {layout: run_on_processes(causal_call, P, layout) for layout in ("contiguous", "zigzag")}


def allowed_scores_exist(rank, source, layout):
    """Per tile of (query chunk, key chunk): does causal allow any score? From the positions alone."""
    chunks = 1 if layout == "contiguous" else 2
    mine = positions(rank, P, N_LOCAL, layout).view(chunks, -1)
    theirs = positions(source, P, N_LOCAL, layout).view(chunks, -1)
    return [bool((k[None, :] <= q[:, None]).any()) for q in mine for k in theirs]


def test_ring_picture_shows_the_blocks_held(runs):
    for layout, records in runs.items():
        picture = draw_ring(records)
        assert picture.drawn["holds"] == [[(r - t) % P for t in range(P)] for r in range(P)]
        expected = [[any(allowed_scores_exist(r, (r - t) % P, layout)) for t in range(P)] for r in range(P)]
        assert picture.drawn["computed"] == expected
        plt.close(picture.figure)
    contiguous = draw_ring(runs["contiguous"]).drawn["computed"]
    assert [sum(row) for row in contiguous] == [1, 2, 3, 4]  # process r computes at steps 0 ... r only
    plt.close("all")


def test_work_picture_shows_the_scores_computed(runs):
    picture = draw_work(runs)
    for layout in runs:
        chunk = N_LOCAL // (1 if layout == "contiguous" else 2)
        expected = [[sum(allowed_scores_exist(r, (r - t) % P, layout)) * chunk * chunk for t in range(P)]
                    for r in range(P)]
        assert picture.drawn[layout] == expected
    zigzag = picture.drawn["zigzag"]
    assert all(row == zigzag[0] for row in zigzag)  # balanced: the same work in every process at every step
    assert len(picture.figure.axes) == 2
    plt.close(picture.figure)
