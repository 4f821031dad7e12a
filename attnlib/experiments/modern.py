"""Chapter 12's experiments: a small decoder with rotary positions and grouped key/value heads,
and the two synthetic tasks it learns (associative recall, and the bigram-backcopy language).

Token 0 is a start token ``BOS`` in front of every sequence, as Llama's tokenizer puts ``<s>``.
"""

import torch
from torch import nn

from ..attention import grouped_query_attention
from ..masks import causal_mask
from ..positions import apply_rotary
from ..training import train

BOS = 0


class GroupedSelfAttention(nn.Module):
    """Causal self-attention with rotary positions and ``n_kv_heads`` key/value heads shared by
    ``n_heads`` query heads (``d_head = d_model // n_heads``), as in Llama 2 70B and Mistral.

    x: (batch, n, d_model), mask: (n, n) boolean, ``True`` = may attend (default: causal)
    -> output (batch, n, d_model), weights (batch, n_heads, n, n)
    ``pairing``: the feature pairs :func:`attnlib.apply_rotary` turns (``"half"``, as Llama in
    Hugging Face's code).
    """

    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int):
        super().__init__()
        if d_model % n_heads or n_heads % n_kv_heads:
            raise ValueError(f"need d_model % n_heads == 0 and n_heads % n_kv_heads == 0, got "
                             f"d_model={d_model}, n_heads={n_heads}, n_kv_heads={n_kv_heads}")
        self.n_heads, self.n_kv_heads, self.d_head = n_heads, n_kv_heads, d_model // n_heads
        self.w_q = nn.Linear(d_model, n_heads * self.d_head, bias=False)
        self.w_k = nn.Linear(d_model, n_kv_heads * self.d_head, bias=False)  # smaller than w_q if shared
        self.w_v = nn.Linear(d_model, n_kv_heads * self.d_head, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)
        self.pairing = "half"

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None):
        n = x.shape[-2]
        q = self.w_q(x).unflatten(-1, (self.n_heads, self.d_head)).transpose(-3, -2)  # (b, n, d_model) -> (b, h, n, d)
        k = self.w_k(x).unflatten(-1, (self.n_kv_heads, self.d_head)).transpose(-3, -2)  # -> (b, h_kv, n, d_head)
        v = self.w_v(x).unflatten(-1, (self.n_kv_heads, self.d_head)).transpose(-3, -2)  # -> (b, h_kv, n, d_head)
        positions = torch.arange(n, device=x.device)  # (n,)
        q = apply_rotary(q, positions, pairing=self.pairing)  # shape unchanged
        k = apply_rotary(k, positions, pairing=self.pairing)
        mask = causal_mask(n, device=x.device) if mask is None else mask  # (n, n)
        heads, weights = grouped_query_attention(q, k, v, mask=mask)  # (b, h, n, d_head), (b, h, n, n)
        return self.out(heads.transpose(-3, -2).flatten(-2)), weights  # (b, n, h, d_head) -> (b, n, d_model)


class RotaryLM(nn.Module):
    """A small decoder of pre-norm blocks with :class:`GroupedSelfAttention`; no position embedding.

    idx: (batch, n) token ids, mask: (n, n) or None (causal) -> logits (batch, n, vocab_size),
    and with :meth:`forward_with_weights` each layer's weights (batch, n_heads, n, n).
    """

    def __init__(self, vocab_size: int, d_model: int, n_heads: int, n_kv_heads: int, n_layers: int,
                 d_ff: int | None = None):
        super().__init__()
        d_ff = d_ff or 4 * d_model
        self.tok = nn.Embedding(vocab_size, d_model)
        self.attn = nn.ModuleList(GroupedSelfAttention(d_model, n_heads, n_kv_heads) for _ in range(n_layers))
        self.ff = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))
            for _ in range(n_layers)
        )
        self.ln = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)

    def forward_with_weights(self, idx: torch.Tensor, mask: torch.Tensor | None = None):
        x = self.tok(idx)  # (batch, n) -> (batch, n, d_model)
        weights = []
        for ln, attn, ff in zip(self.ln, self.attn, self.ff, strict=True):
            mixed, w = attn(ln(x), mask)  # (batch, n, d_model), (batch, n_heads, n, n)
            x = x + mixed
            x = x + ff(x)  # (batch, n, d_model)
            weights.append(w)
        return self.head(self.ln_f(x)), weights  # (batch, n, vocab_size)

    def forward(self, idx: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_with_weights(idx, mask)[0]


def recall_batch(batch_size: int, n_pairs: int, n_keys: int, n_values: int,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Key-value recall: ``BOS f1 ... fp q1 ... qp``. Each fact f is one token standing for a pair
    (key, value); each question q is a key token; the answer is that key's value.

    Token ids: 0 = BOS, 1..n_keys = questions, then one id per (key, value) fact
    (``1 + n_keys + key * n_values + value``); answers are value ids 0..n_values-1 (read by the
    model's output layer). Keys are distinct within a row; the questions ask every key once, shuffled.
    -> idx (batch, 1 + 2 n_pairs), targets (batch, 1 + 2 n_pairs), int64, -100 = not a question.
    """
    if not 1 <= n_pairs <= n_keys:
        raise ValueError(f"need 1 <= n_pairs <= n_keys, got n_pairs={n_pairs}, n_keys={n_keys}")
    keys = torch.rand(batch_size, n_keys, generator=generator).argsort(-1)[:, :n_pairs]  # (b, p) distinct
    values = torch.randint(n_values, (batch_size, n_pairs), generator=generator)  # (b, p)
    order = torch.rand(batch_size, n_pairs, generator=generator).argsort(-1)  # (b, p): order of the questions
    facts = 1 + n_keys + keys * n_values + values  # (b, p)
    questions = 1 + keys.gather(1, order)  # (b, p)
    idx = torch.cat([torch.full((batch_size, 1), BOS), facts, questions], 1)  # (b, 1 + 2p)
    targets = torch.full_like(idx, -100)
    targets[:, 1 + n_pairs :] = values.gather(1, order)  # (b, p): the answers
    return idx, targets


def bigram_backcopy_table(vocab_size: int, sharpness: float, generator: torch.Generator) -> torch.Tensor:
    """The bigram half of the bigram-backcopy language: P(x_{t+1} | x_t), (V, V), V = vocab_size.

    Each row is ``softmax(sharpness * z)``, z ~ N(0, 1), over the tokens 1..V-1 (larger = more
    predictable); the start token 0 is never emitted.
    """
    z = torch.randn(vocab_size, vocab_size - 1, generator=generator)  # (V, V-1)
    probs = torch.softmax(sharpness * z, dim=-1)  # (V, V-1)
    return torch.cat([torch.zeros(vocab_size, 1), probs], -1)  # (V, V): P(BOS) = 0


def bigram_backcopy(table: torch.Tensor, triggers: torch.Tensor, count: int, n: int,
                    generator: torch.Generator) -> torch.Tensor:
    """``count`` sequences ``BOS x1 ... x_{n-1}`` of the bigram-backcopy language (Guo et al. 2024):
    after a trigger token the next token copies the token before the trigger; otherwise it follows
    the bigram ``table``. -> (count, n) int64.
    """
    idx = torch.full((count, n), BOS)
    for t in range(1, n):
        drawn = torch.multinomial(table[idx[:, t - 1]], 1, generator=generator).squeeze(1)  # (count,)
        copy = torch.isin(idx[:, t - 1], triggers) & (t >= 3)  # (count,): x_{t-1} is a trigger
        idx[:, t] = torch.where(copy, idx[:, t - 2], drawn)
    return idx


def next_token_loss(model: nn.Module, batch: tuple, mask: torch.Tensor | None = None,
                    reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of ``targets`` (-100 = ignored); batch = (idx, targets), both (batch, n)."""
    idx, targets = batch
    logits = model(idx, mask)  # (batch, n, vocab_size)
    return nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction=reduction)


def train_lm(batch, *, vocab_size: int, d_model: int, n_heads: int, n_kv_heads: int, n_layers: int,
             steps: int, lr: float, seed: int) -> tuple[RotaryLM, list[float]]:
    """A fresh :class:`RotaryLM` (initial weights from ``seed``, inside ``fork_rng``) trained by
    :func:`attnlib.train` on ``batch(generator)`` -> (idx, targets); returns the model and its losses."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = RotaryLM(vocab_size, d_model, n_heads, n_kv_heads, n_layers)
    losses = train(model, batch, next_token_loss, steps=steps, lr=lr, seed=seed)
    return model.eval(), losses
