"""Small models for the long-range experiments, and the tools that measure how far their signals reach."""

import torch
import torch.nn.functional as F
from torch import nn

from .attention import attention
from .layers import SelfAttention
from .positional import sinusoidal_positions
from .tasks import remember_first_token

# --- classifiers ---------------------------------------------------------------------------------


class AttentionClassifier(nn.Module):
    """Token embedding + sinusoidal positions -> one self-attention layer -> linear readout of the last position.

    ``x_t = E[token_t] + P[t]``; the last position's output ``sum_t a_t W_v x_t`` with
    ``a = softmax(q_{n-1} . k_t / sqrt(d_model))`` is mapped to class logits.
    Only the last row of the attention is read, so only that row is computed: it equals row
    ``n - 1`` of ``SelfAttention(x)``, at O(n d) instead of O(n^2 d) cost.
    tokens: (batch, n) int64 -> logits (batch, n_classes)
    """

    def __init__(self, vocab_size: int, n_classes: int, d_model: int = 32, max_len: int = 1024):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.register_buffer("positions", sinusoidal_positions(max_len, d_model), persistent=False)
        self.attn = SelfAttention(d_model)
        self.readout = nn.Linear(d_model, n_classes)

    def inputs(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 2 or tokens.shape[1] > self.positions.shape[0]:
            raise ValueError(f"tokens must be (batch, n) with n <= {self.positions.shape[0]}, got {tuple(tokens.shape)}")
        return self.embed(tokens) + self.positions[: tokens.shape[1]]  # (batch, n, d_model)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, n, d_model) -> the attention output at the last position (batch, d_model)."""
        q = self.attn.w_q(x[:, -1:, :])  # (batch, 1, d_model)
        k, v = self.attn.w_k(x), self.attn.w_v(x)  # each (batch, n, d_model)
        out, _ = attention(q, k, v)  # (batch, 1, n) @ (batch, n, d_model) -> (batch, 1, d_model)
        return out[:, 0, :]  # (batch, d_model)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.readout(self.encode(self.inputs(tokens)))  # (batch, n_classes)


class RecurrentClassifier(nn.Module):
    """Token embedding -> ``torch.nn.LSTM`` or ``torch.nn.RNN`` (tanh) -> linear readout of the last hidden state.

    tokens: (batch, n) int64 -> logits (batch, n_classes)
    """

    def __init__(self, vocab_size: int, n_classes: int, hidden: int = 20, d_embed: int | None = None,
                 cell: str = "lstm"):
        super().__init__()
        if cell not in ("lstm", "rnn"):
            raise ValueError(f"cell must be 'lstm' or 'rnn', got {cell!r}")
        d_embed = hidden if d_embed is None else d_embed
        self.embed = nn.Embedding(vocab_size, d_embed)
        rnn = nn.LSTM if cell == "lstm" else nn.RNN
        self.rnn = rnn(d_embed, hidden, batch_first=True)
        self.readout = nn.Linear(hidden, n_classes)

    def inputs(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be (batch, n), got {tuple(tokens.shape)}")
        return self.embed(tokens)  # (batch, n, d_embed)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, n, d_embed) -> the last hidden state (batch, hidden)."""
        out, _ = self.rnn(x)  # (batch, n, hidden)
        return out[:, -1, :]  # (batch, hidden)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.readout(self.encode(self.inputs(tokens)))  # (batch, n_classes)


def n_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# --- training on the task ------------------------------------------------------------------------


def train_classifier(model: nn.Module, distance: int, *, steps: int, batch_size: int, lr: float, seed: int,
                     **task) -> list[float]:
    """Adam on fresh batches of :func:`remember_first_token` (``task``: its keyword arguments). -> losses."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        tokens, labels = remember_first_token(batch_size, distance, generator=gen, **task)  # (b, n), (b,)
        loss = F.cross_entropy(model(tokens), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@torch.no_grad()
def accuracy(model: nn.Module, tokens: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of sequences whose arg-max logit is the label. tokens: (m, n), labels: (m,)."""
    return (model(tokens).argmax(-1) == labels).float().mean().item()


def gradient_by_distance(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """How strongly the last output reacts to the input d positions before it.

    ``g[d] = sqrt(mean_batch || d encode(x)_{last} / d x_{n-1-d} ||_F^2)``: the Frobenius norm
    of the Jacobian block of the last output (``model.encode``) with respect to the input vector
    at distance d, root-mean-square over the batch. tokens: (batch, n) -> g: (n,), g[0] = the last position.
    """
    x = model.inputs(tokens).detach().requires_grad_(True)  # (batch, n, d_in)
    out = model.encode(x)  # (batch, d_out)
    sq = torch.zeros(x.shape[1], dtype=x.dtype)  # (n,)
    for j in range(out.shape[1]):
        (g,) = torch.autograd.grad(out[:, j].sum(), x, retain_graph=True)  # (batch, n, d_in)
        sq += g.pow(2).sum(-1).mean(0)  # (n,)
    return sq.sqrt().flip(0)  # index = distance from the last position


# --- dependency patterns and path lengths ----------------------------------------------------------


def window_mask(n: int, r: int) -> torch.Tensor:
    """Restricted self-attention: query i may attend to key j iff |i - j| <= r. -> (n, n), True = may attend."""
    if n < 1 or r < 0:
        raise ValueError(f"need n >= 1 and r >= 0, got n={n}, r={r}")
    i = torch.arange(n).unsqueeze(1)  # (n, 1)
    j = torch.arange(n).unsqueeze(0)  # (1, n)
    return (i - j).abs() <= r  # (n, n)


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
    inside = (torch.arange(n).unsqueeze(1) + torch.arange(w) - r >= 0) & (
        torch.arange(n).unsqueeze(1) + torch.arange(w) - r < n)  # (n, w): not a padding slot
    out, _ = attention(q.unsqueeze(1), kw.transpose(1, 2), vw.transpose(1, 2), mask=inside.unsqueeze(1))
    return out[:, 0, :]  # (n, 1, w) @ (n, w, d) -> (n, 1, d) -> (n, d)


def recurrent_sweep(cell: nn.Module, x: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """One step of a recurrent cell at every position at once: position i reads position i - 1's state.

    ``state'_i = cell(x_i, state_{i-1})`` with ``state_{-1} = 0``. Starting from zeros, n sweeps give
    the recurrent layer's output exactly; the first n - 1 do not (position n - 1 is not final yet).
    cell: ``nn.RNNCell`` (state (n, hidden)) or ``nn.LSTMCell`` (state (n, 2 hidden): h and c side by side).
    x: (n, d_in) -> (n, d_state)
    """
    prev = torch.cat([torch.zeros_like(state[:1]), state[:-1]])  # (n, d_state): row i holds state i - 1
    if isinstance(cell, nn.LSTMCell):
        h, c = cell(x, tuple(prev.chunk(2, dim=-1)))  # each (n, hidden)
        return torch.cat([h, c], dim=-1)  # (n, 2 hidden)
    if isinstance(cell, nn.RNNCell):
        return cell(x, prev)  # (n, hidden)
    raise TypeError(f"cell must be nn.RNNCell or nn.LSTMCell, got {type(cell).__name__}")


def dependency_pattern(layer, x: torch.Tensor) -> torch.Tensor:
    """Which outputs depend on which inputs: ``D[i, j] = any(d layer(x)[i, :] / d x[j, :] != 0)``.

    Measured from the Jacobian at the point x (random x: a zero there is structural).
    layer: (n, d_in) -> (n, d_out); x: (n, d_in) -> D: (n, n) bool
    """
    jac = torch.autograd.functional.jacobian(layer, x, vectorize=True)  # (n, d_out, n, d_in)
    return (jac != 0).any(dim=3).any(dim=1)  # (n, n)


def path_length(patterns, max_layers: int = 10_000) -> int:
    """Number of stacked layers until the last output depends on the first input.

    patterns: an iterable of (n, n) boolean dependency patterns, one per layer from the input up
    (``itertools.repeat(D)`` for identical layers). Dependence composes like a boolean matrix product.
    """
    reach = None
    for depth, pattern in enumerate(patterns, start=1):
        step = pattern.to(torch.float64)  # (n, n)
        reach = step if reach is None else (step @ reach > 0).to(torch.float64)  # (n, n) @ (n, n) -> (n, n)
        if reach[-1, 0] > 0:
            return depth
        if depth >= max_layers:
            break
    raise ValueError(f"the last output never depends on the first input within {max_layers} layers")
