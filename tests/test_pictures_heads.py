"""The multi-head and block pictures draw the shapes of a real forward pass.

Each test runs its own forward pass and records what the modules really computed (every torch
call, through a TorchFunctionMode, and forward hooks of its own), then compares the picture's
``drawn`` with that record, not with the drawing code's arithmetic.
"""

import matplotlib
import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.testing import assert_close

import attnlib
from attnlib.block import Block, Config
from attnlib.pictures.heads import draw_block, draw_multi_head

matplotlib.use("Agg")


class Calls(TorchFunctionMode):
    """Every torch function called, with its tensor arguments and its result."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.calls.append((getattr(func, "__name__", str(func)), args, out))
        return out

    def results(self, *names):
        return [out for name, _, out in self.calls if name in names and isinstance(out, torch.Tensor)]


@pytest.mark.parametrize("d_model, n_heads, n", [(16, 4, 6), (8, 2, 5), (12, 3, 7), (6, 1, 4)])
def test_multi_head_picture_shows_the_shapes_the_layer_computes(d_model, n_heads, n):
    torch.manual_seed(0)
    layer = attnlib.MultiHeadSelfAttention(d_model, n_heads)
    x = torch.randn(n, d_model)
    with Calls() as record, torch.no_grad():
        y, weights = layer(x)
    linears = record.results("linear")  # the stacked projection, then W_o
    products = record.results("matmul", "__matmul__")  # the scores, then weights @ V
    picture = draw_multi_head(layer, x)
    drawn = picture.drawn
    assert drawn["n_heads"] == n_heads
    assert drawn["x"] == tuple(x.shape)
    assert [drawn["qkv"], drawn["output"]] == [tuple(t.shape) for t in linears]
    scores, mixed = products[0], products[-1]
    assert drawn["weights"] == tuple(scores.shape) == tuple(weights.shape) == (n_heads, n, n)
    assert drawn["head_outputs"] == tuple(mixed.shape) == (n_heads, n, d_model // n_heads)
    q_heads = next(args[0] for name, args, _ in record.calls if name in ("matmul", "__matmul__"))
    assert drawn["q_heads"] == drawn["k_heads"] == drawn["v_heads"] == tuple(q_heads.shape)
    assert drawn["q"] == drawn["k"] == drawn["v"] == drawn["concat"] == (n, d_model)
    assert drawn["output"] == tuple(y.shape)
    assert_close(drawn["weights_drawn"], weights)
    matplotlib.pyplot.close(picture.figure)


def test_the_drawn_weights_are_torch_multihead_attentions_weights():
    torch.manual_seed(1)
    mha = nn.MultiheadAttention(8, 2, batch_first=True).double()
    layer = attnlib.MultiHeadSelfAttention.from_torch(mha)
    x = torch.randn(5, 8, dtype=torch.float64)
    with torch.no_grad():
        _, reference = mha(x[None], x[None], x[None], average_attn_weights=False)  # (1, 2, 5, 5)
    picture = draw_multi_head(layer, x)
    assert_close(picture.drawn["weights_drawn"], reference[0])
    heatmaps = [image.get_array() for image in picture.figure.axes[0].images]  # one per head
    assert len(heatmaps) == 2
    for head, image in enumerate(heatmaps):
        assert_close(torch.as_tensor(image.data), reference[0, head])
    matplotlib.pyplot.close(picture.figure)


@pytest.mark.parametrize("batch", [False, True])
def test_block_picture_shows_the_stages_of_a_real_pass(batch):
    torch.manual_seed(2)
    config = Config(vocab_size=11, context=16, d_model=16, n_heads=4, d_ff=40)
    block = Block(config, causal=False)
    x = torch.randn(2, 6, 16) if batch else torch.randn(6, 16)
    hidden = {}

    def keep_hidden(_module, _args, out):
        hidden["h"] = out.shape  # the first Linear's output: (..., n, d_ff)

    handle = block.ff[0].register_forward_hook(keep_hidden)
    with Calls() as record, torch.no_grad():
        out = block(x)
    handle.remove()
    # The two residual additions: x + attention(LN(x)), then that sum + FF(LN(sum)).
    adds = [(args, res) for name, args, res in record.calls if name in ("add", "__add__")]
    first = next(res for args, res in adds if any(a is x for a in args))
    second = next(res for args, res in adds if any(a is first for a in args))
    assert_close(second, out.x)
    picture = draw_block(block, x)
    stages = dict(picture.drawn["stages"])
    assert [name for name, _ in picture.drawn["stages"]] == [
        "x", "ln1", "attn", "residual1", "ln2", "hidden", "ff", "output"]
    assert stages["x"] == stages["ln1"] == stages["attn"] == stages["ln2"] == tuple(x.shape)
    assert stages["residual1"] == tuple(first.shape)
    assert stages["hidden"] == tuple(hidden["h"]) == (*x.shape[:-1], 40)
    assert stages["ff"] == stages["output"] == tuple(out.x.shape)
    assert picture.drawn["weights"] == tuple(out.weights.shape)
    assert (picture.drawn["n_heads"], picture.drawn["d_ff"]) == (4, 40)
    matplotlib.pyplot.close(picture.figure)


def test_pictures_refuse_what_they_cannot_draw():
    with pytest.raises(ValueError, match="one sequence"):
        draw_multi_head(attnlib.MultiHeadSelfAttention(8, 2), torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match="at most 6 heads"):
        draw_multi_head(attnlib.MultiHeadSelfAttention(16, 8), torch.randn(5, 16))
    cross = Block(Config(vocab_size=5, context=8, d_model=8, n_heads=2), cross=True)
    with pytest.raises(ValueError, match="without cross-attention"):
        draw_block(cross, torch.randn(4, 8))
