"""The path picture draws the path lengths the layers have: checked by running the layers."""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import attnlib  # noqa: E402
from attnlib.experiments import paths  # noqa: E402
from attnlib.pictures.paths import draw_paths, shortest_chain  # noqa: E402

D = 4


def patterns(n, seed=0):
    torch.manual_seed(seed)
    x = torch.randn(n, D)
    rnn, sa = nn.RNNCell(D, D), attnlib.SelfAttention(D)
    step = paths.dependency_pattern(lambda s: paths.recurrent_sweep(rnn, x, s), torch.randn(n, D))
    return rnn, sa, x, step, paths.dependency_pattern(lambda x: sa(x)[0], x)


def sweeps_until_last_state_reads_first_input(rnn, x):
    # Independent of the patterns: run the recurrence sweep by sweep from zeros and ask autograd
    # when the last state first depends on x_0.
    x = x.detach().requires_grad_(True)
    state = torch.zeros(x.shape[0], rnn.hidden_size)
    for sweeps in range(1, 2 * x.shape[0]):
        state = paths.recurrent_sweep(rnn, x, state)
        (g,) = torch.autograd.grad(state[-1].sum(), x, retain_graph=True)
        if g[0].abs().sum() > 0:
            return sweeps
    raise AssertionError("the last state never reads the first input")


@pytest.mark.parametrize("n", [4, 8, 12])
def test_hops_drawn_are_the_layers_path_lengths(n):
    rnn, sa, x, step, attention = patterns(n)
    picture = draw_paths(step, attention)
    assert picture.drawn["hops"]["recurrence"] == sweeps_until_last_state_reads_first_input(rnn, x) == n
    x0 = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(sa(x0)[0][-1].sum(), x0)
    assert picture.drawn["hops"]["attention"] == 1 and g[0].abs().sum() > 0  # one layer reaches x_0
    matplotlib.pyplot.close(picture.figure)


def test_the_links_drawn_follow_the_patterns():
    n = 6
    _, _, _, step, attention = patterns(n)
    picture = draw_paths(step, attention)
    assert picture.drawn["recurrence"] == [(("x", 0), ("h", 0))] + [
        (("h", i), ("h", i + 1)) for i in range(n - 1)
    ]
    assert picture.drawn["attention"] == [(("x", j), ("y", n - 1)) for j in range(n)]  # dense
    matplotlib.pyplot.close(picture.figure)


def test_a_window_is_not_one_hop():
    n = 8
    torch.manual_seed(0)
    sa, x = attnlib.SelfAttention(D), torch.randn(n, D)
    window = paths.dependency_pattern(lambda x: sa(x, mask=attnlib.window_mask(n, 2))[0], x)
    links = [link for link in shortest_chain(window, 0, n - 1)]
    assert len(links) - 1 == paths.path_length(iter([window] * n))  # ceil(7 / 2) = 4 layers
    _, _, _, step, _ = patterns(n)
    with pytest.raises(ValueError, match="never depends"):
        shortest_chain(torch.zeros(n, n, dtype=torch.bool), 0, n - 1)
    picture = draw_paths(step, window)
    assert picture.drawn["hops"]["attention"] == 0  # the last output does not read x_0 directly
    matplotlib.pyplot.close(picture.figure)
