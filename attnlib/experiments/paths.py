"""Chapter 7's measuring tools: how far a signal reaches (gradients, dependency patterns, path lengths),
and the local attention, causal convolution and recurrent sweep compared with full self-attention."""

import copy
import itertools

import torch
import torch.nn.functional as F
from torch import nn

from ..attention import attention
from ..layers import SelfAttention
from ..masks import window_mask


def gradient_by_distance(model: nn.Module, tokens: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """How strongly the last output reacts to the input d positions before it.

    ``g[d] = sqrt(mean_batch || d encode(x)_{last} / d x_{n-1-d} ||_F^2)``: the Frobenius norm
    of the Jacobian block of the last output (``model.encode``) with respect to the input vector
    at distance d, root-mean-square over the batch. tokens: (batch, n) -> g: (n,), g[0] = the last position.
    Computed on a copy of the model in ``dtype`` (float64: tiny gradients do not underflow to 0 as soon).
    """
    model = copy.deepcopy(model).to(dtype)
    x = model.inputs(tokens).detach().requires_grad_(True)  # (batch, n, d_in)
    out = model.encode(x)  # (batch, d_out)
    sq = torch.zeros(x.shape[1], dtype=x.dtype, device=x.device)  # (n,)
    for j in range(out.shape[1]):
        (g,) = torch.autograd.grad(out[:, j].sum(), x, retain_graph=True)  # (batch, n, d_in)
        sq += g.pow(2).sum(-1).mean(0)  # (n,)
    return sq.sqrt().flip(0)  # index = distance from the last position


# --- dependency patterns and path lengths ---
def local_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, r: int) -> torch.Tensor:
    """Attention restricted to the window |i - j| <= r, computing only the 2r + 1 allowed scores per query.

    Same result as ``attention(q, k, v, mask=window_mask(n, r))[0]`` at O(r n d) instead of O(n^2 d).
    q, k, v: (n, d) -> (n, d)
    """
    if q.dim() != 2 or q.shape != k.shape or k.shape != v.shape:
        raise ValueError(f"q, k, v must all be (n, d), got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    n, w = q.shape[0], 2 * r + 1
    kw = F.pad(k, (0, 0, r, r)).unfold(0, w, 1)  # (n + 2r, d) -> (n, d, w): keys i-r .. i+r for query i
    vw = F.pad(v, (0, 0, r, r)).unfold(0, w, 1)  # (n, d, w)
    slot = torch.arange(n, device=q.device).unsqueeze(1) + torch.arange(w, device=q.device) - r  # (n, w)
    inside = (slot >= 0) & (slot < n)  # (n, w): not a padding slot
    out, _ = attention(q.unsqueeze(1), kw.transpose(1, 2), vw.transpose(1, 2), mask=inside.unsqueeze(1))
    return out[:, 0, :]  # (n, 1, w) @ (n, w, d) -> (n, 1, d) -> (n, d)


def causal_conv(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """A 1-d convolution over positions that only looks back: output i reads inputs i - c * dilation, c = 0 .. k - 1.

    conv: ``nn.Conv1d(d_in, d_out, k, dilation=...)`` without padding; x: (n, d_in) -> (n, d_out)
    """
    if conv.padding != (0,) or x.dim() != 2:
        raise ValueError(f"need an unpadded nn.Conv1d and x of shape (n, d_in), got padding={conv.padding}, "
                         f"x {tuple(x.shape)}")
    left = (conv.kernel_size[0] - 1) * conv.dilation[0]
    return conv(F.pad(x.T, (left, 0))).T  # (d_in, left + n) -> (d_out, n) -> (n, d_out)


def recurrent_sweep(cell: nn.Module, x: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """One step of a recurrent cell at every position at once: position i reads position i - 1's state.

    ``state'_i = cell(x_i, state_{i-1})`` with ``state_{-1} = 0``. Starting from zeros, n sweeps give
    the recurrent layer's output exactly; the first n - 1 do not (position n - 1 is not final yet).
    cell: ``nn.RNNCell`` (state (n, hidden)) or ``nn.LSTMCell`` (state (n, 2 hidden): h and c side by side).
    x: (n, d_in) -> (n, d_state)
    """
    prev = torch.cat([torch.zeros_like(state[:1]), state[:-1]])  # (n, d_state): row i holds state i - 1
    return _cell_step(cell, x, prev)  # (n, d_state)


def _cell_step(cell: nn.Module, x: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
    """x: (m, d_in), prev: (m, d_state) -> (m, d_state); an LSTM's state is h and c side by side."""
    if isinstance(cell, nn.LSTMCell):
        h, c = cell(x, tuple(prev.chunk(2, dim=-1)))  # each (m, hidden)
        return torch.cat([h, c], dim=-1)  # (m, 2 hidden)
    if isinstance(cell, nn.RNNCell):
        return cell(x, prev)  # (m, hidden)
    raise TypeError(f"cell must be nn.RNNCell or nn.LSTMCell, got {type(cell).__name__}")


def recurrent_layer(cell: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The recurrent layer itself: ``state_t = cell(x_t, state_{t-1})`` for t = 0 .. n - 1, one step after another.

    cell: ``nn.RNNCell`` or ``nn.LSTMCell``; x: (n, d_in) -> states (n, d_state) as in :func:`recurrent_sweep`.
    """
    hidden = cell.hidden_size
    state = x.new_zeros(1, 2 * hidden if isinstance(cell, nn.LSTMCell) else hidden)  # (1, d_state)
    states = []
    for t in range(x.shape[0]):
        state = _cell_step(cell, x[t : t + 1], state)  # (1, d_in), (1, d_state) -> (1, d_state)
        states.append(state)
    return torch.cat(states)  # (n, d_state)


def sequential_steps(pattern: torch.Tensor) -> int:
    """How many rounds of parallel work one layer needs, from the dependency pattern of its outputs on each other.

    pattern: (n, n) bool, ``pattern[i, j]`` = output i needs output j of the same layer first (for a
    recurrent layer, the pattern of :func:`recurrent_sweep` on its state: i needs i - 1). Outputs that need
    nothing are computed in round 1; an output that needs others, one round after the last of them.
    -> the number of rounds: 1 for a feed-forward layer (an all-False pattern), n for a recurrence.
    """
    needs = pattern.to(torch.float64)  # (n, n)
    rounds = torch.ones(pattern.shape[0], dtype=torch.float64, device=pattern.device)  # (n,)
    for _ in range(pattern.shape[0] + 1):
        new = 1 + (needs * rounds).amax(dim=1)  # (n, n) * (n,) -> (n,): one after the latest needed output
        if torch.equal(new, rounds):
            return int(rounds.max())
        rounds = new
    raise ValueError("the pattern has a cycle: outputs need each other, no order computes them")


def dependency_pattern(layer, x: torch.Tensor) -> torch.Tensor:
    """Which outputs depend on which inputs: ``D[i, j] = any(d layer(x)[i, :] / d x[j, :] != 0)``.

    Row i is the gradient of output i's features combined with random positive weights (all rows in
    one batched backward pass), measured at the point x; with random x and weights a zero is structural.
    layer: (n, d_in) -> (n, d_out); x: (n, d_in) -> D: (n, n) bool, True = depends
    """
    x = x.detach().requires_grad_(True)
    out = layer(x)  # (n, d_out)
    n, d_out = out.shape
    gen = torch.Generator().manual_seed(0)
    mix = torch.rand(d_out, generator=gen, dtype=out.dtype).to(out.device) + 0.5  # (d_out,)
    seeds = torch.eye(n, dtype=out.dtype, device=out.device).unsqueeze(-1) * mix  # (n, n, d_out)
    if not out.requires_grad:  # nothing in the output depends on x (nor on any parameter)
        return torch.zeros(n, x.shape[0], dtype=torch.bool, device=x.device)
    (g,) = torch.autograd.grad(out, x, seeds, is_grads_batched=True, allow_unused=True)  # (n, n_in, d_in)
    if g is None:  # the output does not depend on x
        return torch.zeros(n, x.shape[0], dtype=torch.bool, device=x.device)
    return (g != 0).any(dim=2)  # (n, n_in)


def count_macs(fn, *args) -> int:
    """Multiply-adds of the matrix products and convolutions that ``fn(*args)`` runs (torch's FLOP counter / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn(*args)
    return counter.get_total_flops() // 2


def path_length(patterns, max_layers: int = 10_000) -> int:
    """Number of stacked layers until the last output depends on the first input.

    patterns: an iterable of (n, n) boolean dependency patterns, one per layer from the input up
    (``itertools.repeat(D)`` for identical layers). Dependence composes like a boolean matrix product.
    """
    reached = None  # (n,): which outputs of the stack so far depend on input 0
    for depth, pattern in enumerate(patterns, start=1):
        step = pattern.to(torch.float64)  # (n, n)
        reached = step[:, 0] if reached is None else step @ reached  # (n, n) @ (n,) -> (n,)
        reached = (reached > 0).to(torch.float64)
        if reached[-1] > 0:
            return depth
        if depth >= max_layers:
            break
    raise ValueError(f"the last output never depends on the first input within {max_layers} layers")


# --- the chapter's five layers, measured ---------------------------------------------------------


def example_layers(n: int, *, d: int = 4, kernel: int = 3, radius: int = 4, seed: int = 0) -> dict:
    """Random layers on n positions: name -> (the layer as a function, a random point to measure it at).

    Self-attention, windowed self-attention (``|i - j| <= radius``), a causal convolution, and one
    step of an RNN and of an LSTM (:func:`recurrent_sweep`, a function of the state).
    """
    torch.manual_seed(seed)
    x = torch.randn(n, d)  # (n, d)
    sa, conv = SelfAttention(d), nn.Conv1d(d, d, kernel)
    rnn, lstm, win = nn.RNNCell(d, d), nn.LSTMCell(d, d), window_mask(n, radius)
    return {
        "self-attention": (lambda x: sa(x)[0], x),
        f"windowed self-attention, r={radius}": (lambda x: sa(x, mask=win)[0], x),
        f"convolution, k={kernel}": (lambda x: causal_conv(conv, x), x),
        "RNN step": (lambda s: recurrent_sweep(rnn, x, s), torch.randn(n, d)),
        "LSTM step": (lambda s: recurrent_sweep(lstm, x, s), torch.randn(n, 2 * d)),
    }


def measure_paths(n: int, *, d: int = 4, kernel: int = 3, radius: int = 4, seed: int = 0) -> dict:
    """name -> (layers or steps from input 0 to output n - 1, rounds of sequential work per layer).

    Feed-forward layers: layers stacked until the last output depends on the first input, and
    1 round (no output waits for another output of its layer). Recurrent layers: 1 step reads
    ``x_0``, then the chain of steps; rounds measured by :func:`sequential_steps`. Also a stack of
    convolutions whose layer l looks back in steps of ``kernel ** l`` (dilated).
    """
    result = {}
    for name, (layer, point) in example_layers(n, d=d, kernel=kernel, radius=radius, seed=seed).items():
        pattern = dependency_pattern(layer, point)  # (n, n): output i depends on input j
        if name.endswith(" step"):  # the pattern of new state on old state
            steps = 1 + path_length(itertools.repeat(pattern))
            result[name.removesuffix(" step")] = (steps, sequential_steps(pattern))
        else:
            result[name] = (path_length(itertools.repeat(pattern)), 1)
    torch.manual_seed(seed + 1)
    x = torch.randn(n, d)
    convs = [nn.Conv1d(d, d, kernel, dilation=kernel**level) for level in range(12)]
    stack = (dependency_pattern(lambda x, c=c: causal_conv(c, x), x) for c in convs)
    result[f"dilated convolution, k={kernel}"] = (path_length(stack), 1)
    return result
