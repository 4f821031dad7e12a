"""A decoder-only Transformer built on MultiHeadSelfAttention, and text generation from it (chapter 10)."""

import torch
from torch import nn

from .layers import MultiHeadSelfAttention
from .softmax import softmax


class Block(nn.Module):
    """One pre-norm Transformer block: ``x + attn(LN(x))``, then ``x + FF(LN(x))``.

    x: (..., n, d_model) -> output (..., n, d_model), weights (..., n_heads, n, n).
    The attention is causal: position t reads positions 0..t only.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = MultiHeadSelfAttention(d_model, n_heads)
        self.causal = True  # a language model must not read the future (a test switches it off)
        self.ln2 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))

    def forward(self, x: torch.Tensor):
        mixed, weights = self.attn(self.ln1(x), causal=self.causal)  # (..., n, d_model), (..., n_heads, n, n)
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
