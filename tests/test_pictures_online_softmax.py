"""The online-softmax picture draws the library's own running maximum and sum, block by block."""

import math

import matplotlib
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlib import online_normalizer
from attnlib.pictures.online_softmax import draw_online_softmax, online_steps

matplotlib.use("Agg")


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 40), block=st.integers(1, 9))
def test_each_step_is_the_softmax_of_the_prefix_read_so_far(seed, n, block):
    scores = 5 * torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    steps = online_steps(scores, block)
    assert [(s["start"], s["stop"]) for s in steps] == [(a, min(a + block, n)) for a in range(0, n, block)]
    for step in steps:
        prefix, own = scores[: step["stop"]], scores[step["start"] : step["stop"]]
        assert step["m"] == prefix.max().item()
        assert step["m"] + math.log(step["l"]) == pytest.approx(torch.logsumexp(prefix, 0).item(), abs=1e-12)
        assert step["added"] == pytest.approx(torch.exp(own - step["m"]).sum().item(), rel=1e-12)
        assert step["carried"] + step["added"] == pytest.approx(step["l"], rel=1e-12)
    for before, after in zip(steps, steps[1:], strict=False):  # the rescale links neighbouring steps
        assert after["m_before"] == before["m"] and after["l_before"] == before["l"]
        assert after["rescale"] == pytest.approx(math.exp(before["m"] - after["m"]), rel=1e-12)
        assert after["rescale"] <= 1.0
    m, l = online_normalizer(scores, block)  # noqa: E741
    assert (steps[-1]["m"], steps[-1]["l"]) == (m.item(), l.item())


def test_the_picture_draws_the_steps_of_the_row_it_was_given():
    row = torch.tensor([0.5, -1.0, 2.0, 0.0, 1.0, 3.5, -2.0, 0.2, 4.0, 1.5, -0.5, 2.5])
    picture = draw_online_softmax(row, 4)
    drawn = picture.drawn
    assert drawn["scores"] == pytest.approx(row.tolist())
    assert drawn["blocks"] == [(0, 4), (4, 8), (8, 12)]
    assert [s["m"] for s in drawn["steps"]] == pytest.approx([2.0, 3.5, 4.0])
    for step in drawn["steps"]:  # float32 row: the drawn sums are the prefix's log-sum-exp
        lse = torch.logsumexp(row[: step["stop"]].double(), 0).item()
        assert step["m"] + math.log(step["l"]) == pytest.approx(lse, abs=1e-6)
    top, bottom = picture.figure.axes
    (score_bars,) = top.containers  # one bar per score, as tall as the score
    assert [bar.get_height() for bar in score_bars] == pytest.approx(row.tolist())
    before, carried, added = bottom.containers  # per block: outline, rescaled sum, the block's terms
    for bars, key in ((before, "l_before"), (carried, "carried"), (added, "added")):
        assert [bar.get_height() for bar in bars] == pytest.approx([s[key] for s in drawn["steps"]])
    for c, a in zip(carried, added, strict=True):  # the block's terms stand on the rescaled sum
        assert a.get_y() == pytest.approx(c.get_height())
    matplotlib.pyplot.close(picture.figure)


def test_bad_rows():
    with pytest.raises(ValueError, match="one non-empty row"):
        online_steps(torch.zeros(2, 3), 2)
    with pytest.raises(ValueError, match="block_size must be"):
        online_steps(torch.zeros(3), 0)
