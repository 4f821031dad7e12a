"""A decoder-only Transformer built of :class:`attnlib.block.Block`, and text generation from it (chapters 10, 12).

::

    model = TransformerLM(Config(vocab_size=100, context=64, d_model=64, n_heads=4, n_layers=2))
    model = TransformerLM(Config(100, 64, n_kv_heads=1, rotary=True))   # chapter 12's settings
    logits = model(idx)                          # idx (batch, n) -> (batch, n, vocab_size)
    cache = KVCache(model.config.n_layers)
    logits = model(idx[:, :5], cache)            # fills the cache; then one token at a time:
    logits = model(idx[:, 5:6], cache)           # the same logits as model(idx[:, :6])[:, 5:]
    text = generate(model, prompt, 100, temperature=1.0, generator=torch.Generator().manual_seed(0))
"""

import torch
from torch import nn

from .block import Block, Config
from .cache import KVCache
from .checks import check_positive_int, check_token_ids, describe
from .softmax import softmax


class TransformerLM(nn.Module):
    """Decoder-only language model: token embeddings, causal :class:`Block` s, a LayerNorm, a linear head.

    idx: (batch, n) token ids, n <= context -> logits (batch, n, vocab_size); ``logits[:, t]``
    scores the token that follows ``idx[:, :t+1]``. Positions: learnt absolute embeddings
    0 .. context - 1 added to the tokens, or with ``config.rotary`` none added, the queries and keys
    rotated instead. ``config.n_kv_heads`` key/value heads (the cache keeps only those).
    """

    def __init__(self, config: Config):
        super().__init__()
        if not isinstance(config, Config):
            raise TypeError(f"TransformerLM takes a Config, got {type(config).__name__}: write "
                            "TransformerLM(Config(vocab_size, context, d_model=..., n_heads=..., n_layers=...))")
        self.config, self.context = config, config.context
        self.tok = nn.Embedding(config.vocab_size, config.d_model)
        self.pos = None if config.rotary else nn.Embedding(config.context, config.d_model)
        self.drop = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab_size)

    def forward_with_weights(self, idx: torch.Tensor, cache: KVCache | None = None, *,
                             mask: torch.Tensor | None = None):
        """Logits (batch, n, vocab_size) and each layer's attention weights
        (batch, n_heads, n, n_k).

        With a ``cache`` (a :class:`KVCache`), ``idx`` holds only the new tokens, which
        stand at positions ``len(cache)`` onwards; their keys and values are appended to
        the cache. ``mask``: boolean (n, n_k), ``True`` = may attend, applied in every
        layer on top of the causal mask (for example
        :func:`attnlib.sliding_window_mask`).
        """
        if (not isinstance(idx, torch.Tensor) or idx.dim() != 2
                or idx.dtype != torch.long):
            raise ValueError("idx must be int64 token ids of shape (batch, n), "
                             f"got {describe(idx)}")
        check_token_ids(idx, self.config.vocab_size)  # every id in [0, vocab_size)
        start, n = (0 if cache is None else len(cache)), idx.shape[1]
        if not 1 <= start + n <= self.context:
            raise ValueError(f"sequence length (cached {start} + new {n}) must be "
                             f"between 1 and context={self.context}")
        positions = torch.arange(start, start + n, device=idx.device)  # (n,)
        x = self.tok(idx)  # (batch, n) -> (batch, n, d_model)
        if self.pos is not None:
            x = x + self.pos(positions)  # (batch, n, d) + (n, d) -> (batch, n, d)
        x = self.drop(x)
        weights = []
        for layer, block in enumerate(self.blocks):
            x, w, _ = block(x, mask=mask, positions=positions, cache=cache,
                            layer=layer)  # (b, n, d), (b, h, n, n_k)
            weights.append(w)
        # (batch, n, d_model) -> (batch, n, vocab_size)
        return self.head(self.ln_f(x)), weights

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None, *,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_with_weights(idx, cache, mask=mask)[0]


def filter_logits(logits: torch.Tensor, *, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Remove unlikely tokens by setting their logits to -inf: top-k, then top-p (nucleus).

    logits: (..., vocab_size) -> the same shape; the kept logits are unchanged.
    ``top_k``: keep the k largest logits (ties with the k-th are kept too). ``top_p``: keep the
    most probable tokens, in order, until their probability ``softmax(logits)`` reaches p (the
    token that crosses p is kept; so is the most probable one always). ``top_p=1`` keeps all.
    """
    check_sampling(top_k=top_k, top_p=top_p)
    removed = torch.zeros_like(logits, dtype=torch.bool)  # (..., vocab), True = removed
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]  # (..., 1): the k-th largest logit
        removed |= logits < kth
    if top_p is not None and top_p < 1:
        probs = softmax(logits.masked_fill(removed, float("-inf")))  # (..., vocab)
        sorted_probs, order = probs.sort(dim=-1, descending=True)  # (..., vocab) each
        before = sorted_probs.cumsum(-1) - sorted_probs  # (..., vocab): mass of the more probable tokens
        removed |= torch.zeros_like(removed).scatter(-1, order, before >= top_p)  # back to vocabulary order
    return logits.masked_fill(removed, float("-inf"))


def check_sampling(*, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None) -> None:
    """Raise unless temperature >= 0, top_k is None or an int >= 1, top_p is None or in (0, 1]."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature >= 0:
        raise ValueError(f"temperature must be a number >= 0 (0 = greedy), got {temperature!r}")
    if top_k is not None:
        check_positive_int("top_k", top_k)
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0 < top_p <= 1):
        raise ValueError(f"top_p must lie in (0, 1], got {top_p!r}")


def next_token(logits: torch.Tensor, *, temperature: float, generator: torch.Generator | None,
               top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Draw one token from next-token logits (vocab_size,) -> (1,) id.

    ``temperature == 0``: the most likely token (greedy). Otherwise ``p = softmax(filter_logits(
    logits / temperature))`` and one uniform draw u from ``generator`` picks the first token, in
    vocabulary order, whose cumulative probability exceeds u (inverse-CDF sampling). A filter
    that removes nothing leaves p, hence the draw, exactly as without it.
    """
    check_sampling(temperature=temperature, top_k=top_k, top_p=top_p)
    if temperature == 0:
        return logits.argmax(-1, keepdim=True)  # (1,)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"sampling (temperature > 0) needs a torch.Generator, got {type(generator).__name__}")
    probs = softmax(filter_logits(logits / temperature, top_k=top_k, top_p=top_p))  # (vocab,)
    cdf = probs.cumsum(-1)  # (vocab,)
    u = torch.rand(1, generator=generator, dtype=cdf.dtype, device=cdf.device) * cdf[-1]  # (1,), in [0, total)
    last_kept = int(probs.nonzero()[-1])  # u rounded up to the total must not land on a removed token
    return torch.searchsorted(cdf, u, right=True).clamp(max=last_kept)  # (1,)


@torch.no_grad()
def generate(model: nn.Module, prompt: torch.Tensor, n_new: int, *, temperature: float,
             generator: torch.Generator | None, top_k: int | None = None, top_p: float | None = None,
             use_cache: bool = True) -> torch.Tensor:
    """Append ``n_new`` tokens to ``prompt`` (n,), one at a time (see :func:`next_token`); -> (n + n_new,) ids.

    The model reads exactly its last ``model.context`` tokens. With ``use_cache`` (a
    :class:`TransformerLM` only), the first step reads the prompt and fills a :class:`KVCache`;
    each later step feeds only the newest token. Once the text outgrows the context the window
    slides, every token's position changes (its learnt embedding, or its rotation) and every
    cached key with it, so the cache is rebuilt from the last ``context`` tokens: cached and
    uncached generation give the same tokens.
    The draws come from ``generator`` only: a generator seeded the same way gives the same text.
    """
    if not isinstance(prompt, torch.Tensor) or prompt.dim() != 1 or len(prompt) < 1:
        raise ValueError(f"prompt must be a tensor of shape (n,) with n >= 1, got {getattr(prompt, 'shape', prompt)}")
    if isinstance(n_new, bool) or not isinstance(n_new, int) or n_new < 0:
        raise ValueError(f"n_new must be an int >= 0, got {n_new!r}")
    check_sampling(temperature=temperature, top_k=top_k, top_p=top_p)
    if use_cache and not isinstance(model, TransformerLM):
        raise ValueError(f"use_cache=True needs a TransformerLM, got {type(model).__name__}; pass use_cache=False")
    was_training = model.training
    model.eval()
    ids, cache = prompt.clone(), None
    for _ in range(n_new):
        if not use_cache:
            logits = model(ids[-model.context :][None])[0, -1]  # (1, n) -> (1, n, vocab) -> (vocab,)
        elif cache is None or len(cache) == model.context:  # first step, or the window slides: (re)build
            cache = KVCache(model.config.n_layers)
            logits = model(ids[-model.context :][None], cache)[0, -1]  # (1, n) -> (vocab,)
        else:
            logits = model(ids[-1:][None], cache)[0, -1]  # (1, 1) -> (1, 1, vocab) -> (vocab,)
        next_id = next_token(logits, temperature=temperature, generator=generator, top_k=top_k, top_p=top_p)
        ids = torch.cat([ids, next_id])  # (n + 1,)
    model.train(was_training)
    return ids
