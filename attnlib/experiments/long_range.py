"""Chapter 7's experiment: a task whose answer is one token ``distance`` positions back, and two classifiers.

Matched attention and recurrent classifiers, trained through :func:`attnlib.train` with a validation
split and an early stop, over a grid of learning rates x seeds (each model is taken at its best rate).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..attention import attention
from ..checks import check_choice
from ..layers import SelfAttention
from ..positions import sinusoidal_positions
from ..training import train


def remember_first_token(batch_size: int, distance: int, *, n_classes: int = 8, n_distractors: int = 8,
                         length: int | None = None, generator: torch.Generator | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences of distractors with one informative token ``distance`` positions before the last one.

    Token ids ``0 .. n_classes - 1`` are the informative tokens; ids ``n_classes ..
    n_classes + n_distractors - 1`` are distractors. Position ``length - 1 - distance`` holds an
    informative token drawn uniformly; every other position holds a uniform random distractor.
    The label is the informative token: ``label = tokens[:, -1 - distance]`` (see :func:`label_of`).
    ``length`` defaults to ``distance + 1``, so the informative token is the first token; a longer
    ``length`` only adds distractors before it.
    -> tokens (batch_size, length) int64, labels (batch_size,) int64. Same ``generator`` state, same batch.
    """
    length = distance + 1 if length is None else length
    if batch_size < 1 or distance < 0 or n_classes < 2 or n_distractors < 1:
        raise ValueError(f"need batch_size >= 1, distance >= 0, n_classes >= 2, n_distractors >= 1; got "
                         f"{batch_size=}, {distance=}, {n_classes=}, {n_distractors=}")
    if length < distance + 1:
        raise ValueError(f"length must be at least distance + 1 = {distance + 1}, got length={length}")
    tokens = n_classes + torch.randint(n_distractors, (batch_size, length), generator=generator)  # (batch_size, length)
    labels = torch.randint(n_classes, (batch_size,), generator=generator)  # (batch_size,)
    tokens[:, length - 1 - distance] = labels
    return tokens, labels


def label_of(tokens: torch.Tensor, distance: int) -> torch.Tensor:
    """The label rule: the token ``distance`` positions before the last one. (batch_size, length) -> (batch_size,)"""
    if tokens.dim() != 2 or not 0 <= distance < tokens.shape[1]:
        raise ValueError(f"need tokens (batch_size, length) with length > distance={distance}, "
                         f"got {tuple(tokens.shape)}")
    return tokens[:, -1 - distance]


class AttentionClassifier(nn.Module):
    """Token embedding + sinusoidal positions -> one self-attention layer -> linear readout of the last position.

    ``x_t = E[token_t] + P[t]``; the last position's output ``sum_t a_t W_v x_t`` with
    ``a = softmax(q_{n-1} . k_t / sqrt(d_model))`` is mapped to class logits.
    Only the last row of the attention is read, so only that row is computed: it equals row
    ``n - 1`` of ``SelfAttention(x)``, at O(n d) instead of O(n^2 d) cost.
    ``positions=False`` leaves the positions out (all zeros): the model then sees a bag of tokens.
    tokens: (batch, n) int64 -> logits (batch, n_classes)
    """

    def __init__(self, vocab_size: int, n_classes: int, d_model: int = 32, context: int = 1024,
                 positions: bool = True):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        enc = sinusoidal_positions(context, d_model) if positions else torch.zeros(context, d_model)  # (context, d)
        self.register_buffer("positions", enc, persistent=False)
        self.attn = SelfAttention(d_model)
        self.readout = nn.Linear(d_model, n_classes)

    def inputs(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 2 or tokens.shape[1] > self.positions.shape[0]:
            raise ValueError(f"tokens must be (batch, n), n <= {self.positions.shape[0]}, got {tuple(tokens.shape)}")
        return self.embed(tokens) + self.positions[: tokens.shape[1]]  # (batch, n, d_model)

    def last_row(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (batch, n, d_model) -> (output at the last position (batch, d_model), its weights (batch, n)).

        The weights are row ``n - 1`` of the layer's attention matrix: where the last position looks.
        """
        q = self.attn.w_q(x[:, -1:, :])  # (batch, 1, d_model)
        k, v = self.attn.w_k(x), self.attn.w_v(x)  # each (batch, n, d_model)
        out, w = attention(q, k, v)  # (batch, 1, n) @ (batch, n, d_model) -> (batch, 1, d_model)
        return out[:, 0, :], w[:, 0, :]  # (batch, d_model), (batch, n)

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # (batch, n, d_model) -> last position's output (batch, d_model)
        return self.last_row(x)[0]

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.readout(self.encode(self.inputs(tokens)))  # (batch, n_classes)


class RecurrentClassifier(nn.Module):
    """Token embedding -> ``torch.nn.LSTM`` or ``torch.nn.RNN`` (tanh) -> linear readout of the last hidden state.

    ``forget_bias`` (LSTM only): start the forget gate's bias at this value instead of torch's random
    one, ``f_t = sigmoid(W_if x_t + W_hf h_{t-1} + forget_bias)``, so that the gate starts nearly open
    (``sigmoid(3) = 0.95``) and the cell state keeps most of itself at every step.
    tokens: (batch, n) int64 -> logits (batch, n_classes)
    """

    def __init__(self, vocab_size: int, n_classes: int, d_hidden: int = 20, d_model: int | None = None,
                 cell: str = "lstm", forget_bias: float | None = None):
        super().__init__()
        check_choice("cell", cell, ("lstm", "rnn"))
        if forget_bias is not None and cell != "lstm":
            raise ValueError(f"forget_bias needs cell='lstm' (only an LSTM has a forget gate), got cell={cell!r}")
        d_model = d_hidden if d_model is None else d_model
        self.embed = nn.Embedding(vocab_size, d_model)
        rnn = nn.LSTM if cell == "lstm" else nn.RNN
        self.rnn = rnn(d_model, d_hidden, batch_first=True)
        self.readout = nn.Linear(d_hidden, n_classes)
        if forget_bias is not None:  # torch orders an LSTM's gates input, forget, cell, output
            with torch.no_grad():
                self.rnn.bias_ih_l0[d_hidden : 2 * d_hidden] = forget_bias
                self.rnn.bias_hh_l0[d_hidden : 2 * d_hidden] = 0.0

    def inputs(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be (batch, n), got {tuple(tokens.shape)}")
        return self.embed(tokens)  # (batch, n, d_model)

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # (batch, n, d_model) -> last hidden state (batch, d_hidden)
        return self.rnn(x)[0][:, -1, :]  # (batch, n, d_hidden) -> (batch, d_hidden)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.readout(self.encode(self.inputs(tokens)))  # (batch, n_classes)


class _Reached(Exception):  # raised by train_classifier's check to end training once the target is met
    pass


def train_classifier(model: nn.Module, distance: int, *, steps: int, batch_size: int, lr: float, seed: int,
                     validation: tuple[torch.Tensor, torch.Tensor] | None = None, every: int = 20,
                     target: float | None = None, **task) -> list[tuple[int, float]]:
    """Train on fresh batches of :func:`remember_first_token` (``task``: its keyword arguments).

    With ``validation = (tokens, labels)``, the accuracy on those held-out sequences is recorded every
    ``every`` steps, and training stops early once it is at least ``target`` (``steps`` is then a budget:
    the most steps any run gets). -> the record ``[(step, validation accuracy), ...]``, empty without validation.
    """
    record = []

    def check(step: int, losses: list[float]) -> None:
        record.append((step, accuracy(model, *validation)))
        if target is not None and record[-1][1] >= target:
            raise _Reached

    try:
        train(
            model,
            lambda gen: remember_first_token(batch_size, distance, generator=gen, **task),  # (b, n), (b,)
            lambda m, batch: F.cross_entropy(m(batch[0]), batch[1]),
            steps=steps, lr=lr, seed=seed, every=every if validation is not None else 0,
            callback=check if validation is not None else None,
        )
    except _Reached:
        pass
    return record


def steps_to(record: list[tuple[int, float]], threshold: float) -> float:
    """The first recorded step whose validation accuracy is >= threshold; ``inf`` if none is."""
    return next((float(step) for step, acc in record if acc >= threshold), float("inf"))


@torch.no_grad()
def accuracy(model: nn.Module, tokens: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of sequences whose arg-max logit is the label. tokens: (m, n), labels: (m,)."""
    return (model(tokens).argmax(-1) == labels).float().mean().item()


@dataclass
class Grid:
    """Runs at every (learning rate, seed): accuracies and steps to 95% as (n_lrs, n_seeds) tensors."""

    lrs: list[float]
    val: torch.Tensor  # (n_lrs, n_seeds): validation accuracy where training ended
    test: torch.Tensor  # (n_lrs, n_seeds): test accuracy of the same models
    steps: torch.Tensor  # (n_lrs, n_seeds): first checked step with validation accuracy >= 0.95 (inf: never)
    models: list[list[nn.Module]]  # [lr][seed]

    def best(self) -> int:
        """Index of the rate with the highest mean validation accuracy; ties go to fewer mean steps, then the first."""
        keys = [(self.val[i].mean().item(), -self.steps[i].mean().item()) for i in range(len(self.lrs))]
        return max(range(len(self.lrs)), key=lambda i: (keys[i], -i))


def train_grid(make_model, distance: int, *, lrs, seeds, validation, test, **train_kw) -> Grid:
    """``make_model(seed)`` trained by :func:`train_classifier` at every rate in ``lrs`` and seed in ``seeds``.

    A seed fixes the initial weights (``make_model`` seeds torch) and the training batches, the same for
    every rate. ``validation`` picks the rate (:meth:`Grid.best`); ``test`` = (tokens, labels) measures.
    """
    shape = (len(lrs), len(seeds))
    val, acc, steps = torch.zeros(shape), torch.zeros(shape), torch.zeros(shape, dtype=torch.float64)
    models = [[None] * len(seeds) for _ in lrs]
    for i, lr in enumerate(lrs):
        for j, seed in enumerate(seeds):
            model = models[i][j] = make_model(seed)
            record = train_classifier(model, distance, lr=lr, seed=seed, validation=validation, **train_kw)
            val[i, j], acc[i, j] = record[-1][1], accuracy(model, *test)
            steps[i, j] = steps_to(record, 0.95)
    return Grid(list(lrs), val, acc, steps, models)
