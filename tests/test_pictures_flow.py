"""Chapter 1's pictures show the tensors they claim to: checked against the operations that ran."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch.overrides import TorchFunctionMode  # noqa: E402

import attnlib  # noqa: E402
from attnlib.pictures.base import shape_text  # noqa: E402
from attnlib.pictures.flow import data_flow, lookup_arrows  # noqa: E402


class Recorder(TorchFunctionMode):
    """Records the name and output shape of every torch function that runs inside it."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if isinstance(out, torch.Tensor):
            self.calls.append((getattr(func, "__name__", str(func)), tuple(out.shape)))
        return out


def shapes_of_a_forward_pass(layer, x):
    """The shapes of Q, K, V (the three linear maps), S (the first product), O (the last)."""
    with torch.no_grad(), Recorder() as seen:
        out, weights = layer(x)
    linear = [shape for name, shape in seen.calls if name == "linear"]
    products = [shape for name, shape in seen.calls if name in ("matmul", "__matmul__")]
    assert len(linear) == 3 and len(products) == 2, seen.calls
    return {"X": tuple(x.shape), "Q": linear[0], "K": linear[1], "V": linear[2],
            "S": products[0], "A": tuple(weights.shape), "O": products[1]}, weights


def texts(figure):
    return [t.get_text() for ax in figure.axes for t in ax.texts]


@pytest.mark.parametrize("n, d_model, d_head, score", [
    (8, 4, 4, "dot"), (5, 6, 3, "scaled_dot"), (3, 2, 5, "dot"), (6, 8, 2, "scaled_dot")])
def test_data_flow_draws_the_shapes_of_a_forward_pass(n, d_model, d_head, score):
    torch.manual_seed(n)
    layer = attnlib.SelfAttention(d_model, d_head, score=score)
    x = torch.randn(n, d_model)
    expected, weights = shapes_of_a_forward_pass(layer, x)
    picture = data_flow(layer, x, tokens=[f"t{i}" for i in range(n)])
    assert picture.drawn["shapes"] == expected
    assert picture.drawn["score"] == score
    torch.testing.assert_close(picture.drawn["weights"], weights, rtol=0, atol=0)
    written = "\n".join(texts(picture.figure))
    for name in ("X", "Q", "S", "A", "O", "V"):  # every shape is written on the picture
        assert shape_text(expected[name]) in written
    assert shape_text(expected["K"][::-1]) in written  # K is drawn transposed, above S
    assert ("sqrt" in written) == (score == "scaled_dot")
    plt.close(picture.figure)


def test_data_flow_shades_the_weights_cell_by_cell():
    torch.manual_seed(0)
    layer = attnlib.SelfAttention(4, 3)
    x = torch.randn(5, 4)
    picture = data_flow(layer, x)
    _, weights = shapes_of_a_forward_pass(layer, x)
    shaded = [p.get_alpha() for p in picture.figure.axes[0].patches
              if p.get_alpha() is not None and p.get_alpha() != 0.22]
    assert len(shaded) == weights.numel()
    # the darker a cell, the larger its weight: alphas in row order rank as the weights do
    alphas = torch.tensor(shaded, dtype=torch.float64)
    assert torch.equal(alphas.argsort(stable=True), weights.flatten().double().argsort(stable=True))
    plt.close(picture.figure)


def test_data_flow_rejects_a_batch():
    with pytest.raises(ValueError, match="one sequence"):
        data_flow(attnlib.SelfAttention(4), torch.randn(2, 3, 4))


def arrows(figure):
    """(start, end) of every arrow drawn with annotate."""
    return [(tuple(a.xyann), tuple(a.xy)) for ax in figure.axes for a in ax.texts
            if hasattr(a, "xyann") and a.arrow_patch is not None]


def test_lookup_arrows_are_the_query_and_the_keys():
    keys = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    query = torch.tensor([0.8, 0.6])
    weights = attnlib.softmax(keys @ query)
    picture = lookup_arrows(query, keys, weights, ["apple", "bread", "cheese"])
    drawn = arrows(picture.figure)
    assert [start for start, _ in drawn] == [(0, 0)] * 4  # every arrow starts at the origin
    ends = torch.tensor([end for _, end in drawn], dtype=torch.float64)
    torch.testing.assert_close(ends, torch.cat([keys, query[None]]).double())
    written = "\n".join(texts(picture.figure))
    for name, w in zip(["apple", "bread", "cheese"], weights.tolist(), strict=True):
        assert f"{name}\nweight {w:.3f}" in written
    assert picture.drawn["weights"] == pytest.approx(weights.tolist())
    # the heavier the weight, the thicker the key's arrow
    widths = [a.arrow_patch.get_linewidth() for ax in picture.figure.axes for a in ax.texts
              if hasattr(a, "xyann")][:3]
    assert sorted(range(3), key=widths.__getitem__) == weights.argsort().tolist()
    plt.close(picture.figure)


def test_lookup_arrows_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="expected query"):
        lookup_arrows(torch.zeros(3), torch.zeros(2, 2), torch.zeros(2))
    with pytest.raises(ValueError, match="expected query"):
        lookup_arrows(torch.zeros(2), torch.zeros(2, 2), torch.zeros(3))
