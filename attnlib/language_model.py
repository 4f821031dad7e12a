"""A tiny decoder-only language model built on MultiHeadSelfAttention, an LSTM to compare, training, sampling."""

import torch
from torch import nn
from torch.nn import functional as F

from .layers import MultiHeadSelfAttention
from .softmax import softmax
from .text_data import get_batch


def count_parameters(model: nn.Module) -> int:
    """Number of trainable numbers in a model."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class Block(nn.Module):
    """One pre-norm Transformer block: ``x + attn(LN(x))``, then ``x + FF(LN(x))``.

    x: (..., n, d_model) -> output (..., n, d_model), weights (..., n_heads, n, n).
    The attention is causal: position t reads positions 0..t only.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = MultiHeadSelfAttention(d_model, n_heads, causal=True)
        self.ln2 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))

    def forward(self, x: torch.Tensor):
        mixed, weights = self.attn(self.ln1(x))  # (..., n, d_model), (..., n_heads, n, n)
        x = x + mixed  # residual: (..., n, d_model)
        x = x + self.ff(self.ln2(x))  # (..., n, d_model) -> (..., n, d_ff) -> (..., n, d_model)
        return x, weights


class TransformerLM(nn.Module):
    """Decoder-only language model: token + position embeddings, causal blocks, a linear head.

    idx: (batch, n) token ids, n <= context -> logits (batch, n, vocab_size); ``logits[:, t]``
    scores the token that follows ``idx[:, :t+1]``.
    """

    def __init__(self, vocab_size: int, context: int, d_model: int = 64, n_heads: int = 4, n_layers: int = 2,
                 d_ff: int | None = None):
        super().__init__()
        self.context = context
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(context, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, d_ff or 4 * d_model) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)

    def forward_with_weights(self, idx: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits (batch, n, vocab_size) and each layer's attention weights (batch, n_heads, n, n)."""
        if idx.dim() != 2 or idx.dtype != torch.long:
            raise ValueError(f"idx must be int64 token ids of shape (batch, n), got {idx.dtype} {tuple(idx.shape)}")
        n = idx.shape[1]
        if not 1 <= n <= self.context:
            raise ValueError(f"sequence length must be between 1 and context={self.context}, got {n}")
        x = self.tok(idx) + self.pos(torch.arange(n, device=idx.device))  # (batch, n, d) + (n, d) -> (batch, n, d)
        weights = []
        for block in self.blocks:
            x, w = block(x)  # (batch, n, d_model), (batch, n_heads, n, n)
            weights.append(w)
        return self.head(self.ln_f(x)), weights  # (batch, n, d_model) -> (batch, n, vocab_size)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.forward_with_weights(idx)[0]


class LSTMLM(nn.Module):
    """Recurrent language model to compare with: embedding, LSTM layers, a linear head.

    idx: (batch, n) token ids -> logits (batch, n, vocab_size). ``context`` only limits how
    much of a prompt :func:`generate` feeds in, as for :class:`TransformerLM`.
    """

    def __init__(self, vocab_size: int, context: int, d_hidden: int, n_layers: int = 1):
        super().__init__()
        self.context = context
        self.tok = nn.Embedding(vocab_size, d_hidden)
        self.lstm = nn.LSTM(d_hidden, d_hidden, num_layers=n_layers, batch_first=True)
        self.head = nn.Linear(d_hidden, vocab_size)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        if idx.dim() != 2 or idx.dtype != torch.long:
            raise ValueError(f"idx must be int64 token ids of shape (batch, n), got {idx.dtype} {tuple(idx.shape)}")
        h, _ = self.lstm(self.tok(idx))  # (batch, n) -> (batch, n, d_hidden)
        return self.head(h)  # (batch, n, d_hidden) -> (batch, n, vocab_size)

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
             context: int, lr: float, eval_every: int, seed: int) -> dict[str, list]:
    """Train with AdamW on random windows of ``train_ids``, batches drawn by a generator seeded with ``seed``.

    Every ``eval_every`` steps records the mean training loss since the last record and the
    validation loss (:func:`evaluate_loss`). Returns ``{"step": [...], "train": [...], "val": [...]}``.
    """
    if steps < 1 or eval_every < 1 or steps % eval_every:
        raise ValueError(f"steps ({steps}) must be a positive multiple of eval_every ({eval_every})")
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    history, running = {"step": [], "train": [], "val": []}, []
    model.train()
    for step in range(1, steps + 1):
        x, y = get_batch(train_ids, batch_size, context, generator)  # each (batch_size, context)
        loss = lm_loss(model, x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        running.append(loss.item())
        if step % eval_every == 0:
            history["step"].append(step)
            history["train"].append(sum(running) / len(running))
            history["val"].append(evaluate_loss(model, val_ids, context))
            running = []
    return history


@torch.no_grad()
def generate(model: nn.Module, prompt: torch.Tensor, n_new: int, *, temperature: float,
             generator: torch.Generator) -> torch.Tensor:
    """Sample ``n_new`` tokens after ``prompt`` (n,), one at a time, from ``softmax(logits / temperature)``.

    The model reads at most its last ``model.context`` tokens. The draws come from ``generator``
    only, so a generator seeded the same way gives the same text. Returns (n + n_new,) ids.
    """
    if prompt.dim() != 1 or len(prompt) < 1:
        raise ValueError(f"prompt must have shape (n,) with n >= 1, got {tuple(prompt.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    was_training = model.training
    model.eval()
    ids = prompt.clone()
    for _ in range(n_new):
        logits = model(ids[-model.context :][None])[0, -1]  # (1, n) -> (1, n, vocab) -> (vocab,)
        probs = softmax(logits / temperature)  # (vocab,)
        next_id = torch.multinomial(probs, 1, generator=generator)  # (1,)
        ids = torch.cat([ids, next_id])  # (n + 1,)
    model.train(was_training)
    return ids
