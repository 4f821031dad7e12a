"""Chapter 10's experiment: language modelling on the book's text, an LSTM to compare, losses and training."""

import torch
from torch import nn
from torch.nn import functional as F

from ..training import train
from .book_text import get_batch


class LSTMLM(nn.Module):
    """Recurrent language model to compare with: embedding, LSTM layers, a linear head.

    idx: (batch, n) token ids -> logits (batch, n, vocab_size). ``context`` only limits how
    much of a prompt :func:`attnlib.generate` feeds in (with ``use_cache=False``: an LSTM keeps a
    state, not a key-value cache), as for :class:`attnlib.TransformerLM`.
    """

    def __init__(self, vocab_size: int, context: int, d_model: int, n_layers: int = 1):
        super().__init__()
        self.context = context
        self.tok = nn.Embedding(vocab_size, d_model)
        self.lstm = nn.LSTM(d_model, d_model, num_layers=n_layers, batch_first=True)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        if idx.dim() != 2 or idx.dtype != torch.long:
            raise ValueError(f"idx must be int64 token ids of shape (batch, n), got {idx.dtype} {tuple(idx.shape)}")
        h, _ = self.lstm(self.tok(idx))  # (batch, n) -> (batch, n, d_model)
        return self.head(h)  # (batch, n, d_model) -> (batch, n, vocab_size)

    @classmethod
    def matching(cls, n_params: int, vocab_size: int, context: int, n_layers: int = 1) -> "LSTMLM":
        """The LSTM LM whose parameter count is closest to ``n_params`` (hidden width searched)."""
        def size(d: int) -> int:  # embedding + 4 gates per layer (two weights, two biases) + head
            return vocab_size * d + n_layers * 4 * (2 * d * d + 2 * d) + d * vocab_size + vocab_size
        best = min(range(1, 4096), key=lambda d: abs(size(d) - n_params))
        return cls(vocab_size, context, best, n_layers)


def lm_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (nats per token) of the next-token predictions: x, y (batch, n) -> ()."""
    logits = model(x)  # (batch, n, vocab_size)
    return F.cross_entropy(logits.flatten(0, 1), y.flatten())  # (batch * n, vocab_size), (batch * n,) -> ()


@torch.no_grad()
def evaluate_loss(model: nn.Module, ids: torch.Tensor, context: int, batch_size: int = 64,
                  skip_targets: torch.Tensor | None = None) -> float:
    """Mean cross-entropy over all non-overlapping windows of ``ids`` (n,); the same windows every call.

    ``skip_targets``: token ids (k,) whose positions, as targets, are left out of the mean (for
    example characters that never occur in the training text).
    """
    n_windows = (len(ids) - 1) // context
    if n_windows < 1:
        raise ValueError(f"{len(ids)} tokens hold no window of context {context} plus a target")
    x = ids[: n_windows * context].view(n_windows, context)  # (n_windows, context)
    y = ids[1 : n_windows * context + 1].view(n_windows, context)  # shifted by one
    skip = torch.as_tensor([] if skip_targets is None else skip_targets, dtype=ids.dtype)  # (k,)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, n_windows, batch_size):
        logits = model(x[i : i + batch_size])  # (b, context, vocab_size)
        targets = y[i : i + batch_size].flatten()  # (b * context,)
        losses = F.cross_entropy(logits.flatten(0, 1), targets, reduction="none")  # (b * context,)
        keep = ~torch.isin(targets, skip)  # (b * context,) bool, True = counted
        total, count = total + losses[keep].sum().item(), count + int(keep.sum())
    model.train(was_training)
    if count == 0:
        raise ValueError("every target is in skip_targets: nothing left to average")
    return total / count


def train_lm(model: nn.Module, train_ids: torch.Tensor, val_ids: torch.Tensor, *, steps: int, batch_size: int,
             context: int, lr: float, eval_every: int, seed: int, weight_decay: float = 0.01,
             test_ids: torch.Tensor | None = None) -> dict[str, list]:
    """Train (:func:`attnlib.train`, AdamW) on random windows of ``train_ids``, batches drawn with ``seed``.

    Every ``eval_every`` steps records the mean training loss since the last record and the
    validation loss (:func:`evaluate_loss` on ``val_ids``), and the test loss if ``test_ids`` is
    given. Returns ``{"step": [...], "train": [...], "val": [...]}``, plus ``"test": [...]``.
    """
    if steps < 1 or eval_every < 1 or steps % eval_every:
        raise ValueError(f"steps ({steps}) must be a positive multiple of eval_every ({eval_every})")
    history = {"step": [], "train": [], "val": []} | ({} if test_ids is None else {"test": []})

    def record(step: int, losses: list[float]) -> None:
        history["step"].append(step)
        history["train"].append(sum(losses[-eval_every:]) / eval_every)
        history["val"].append(evaluate_loss(model, val_ids, context))
        if test_ids is not None:
            history["test"].append(evaluate_loss(model, test_ids, context))

    train(model, lambda gen: get_batch(train_ids, batch_size, context, gen), lambda m, b: lm_loss(m, *b),
          steps=steps, lr=lr, seed=seed, weight_decay=weight_decay, every=eval_every, callback=record)
    return history


def choose_learning_rate(final_val: dict[float, list[float]]) -> float:
    """The learning rate whose runs end with the lowest mean validation loss (a
    selection).

    ``final_val``: ``{lr: [final validation loss of each seed]}``, at least two rates,
    each with the same number of seeds. Only validation losses go in: the test split
    must not choose.
    """
    if len(final_val) < 2:
        raise ValueError("a choice needs at least two learning rates, got "
                         f"{list(final_val)}")
    n_seeds = {len(losses) for losses in final_val.values()}
    if len(n_seeds) != 1 or 0 in n_seeds:
        raise ValueError("every rate needs the same, non-zero number of seeds, got "
                         f"{sorted(n_seeds)}")
    return min(final_val, key=lambda lr: sum(final_val[lr]) / len(final_val[lr]))
