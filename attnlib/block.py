"""One pre-norm Transformer block and one configuration of sizes (every Transformer here).

The API (chapters 6, 10, 11 and 12 use it)::

    from attnlib.block import Block, Config

    config = Config(vocab_size=100, context=64, d_model=64, n_heads=4, n_layers=2)
    # defaults: d_ff = 4 d_model, n_kv_heads = n_heads, rotary=False, pairing="half",
    # dropout=0.0
    block = Block(config)         # causal self-attention, then feed-forward (a decoder's)
    x, weights, _ = block(x)      # x (batch, n, d_model); weights (batch, n_heads, n, n)
    encoder_block = Block(config, causal=False)   # all positions see each other
    x, weights, _ = encoder_block(x, mask=real[:, None, None, :])   # real: (batch, n)
    decoder_block = Block(config, cross=True)     # + cross-attention over memory
    x, weights, cross_weights = decoder_block(
        x, memory=memory, memory_mask=real[:, None, None, :])

A block computes, with LN a LayerNorm, FF = Linear(d_model, d_ff), GELU, Linear(d_ff, d_model)::

    x = x + drop(SelfAttn(LN1(x)))                 # causal unless causal=False
    x = x + drop(CrossAttn(LN_cross(x), memory))   # only with cross=True
    x = x + drop(FF(LN2(x)))

``drop``: dropout with ``config.dropout`` on each sublayer's output (none at 0, the
default). The self-attention is :class:`GroupedSelfAttention`: ``n_heads`` query heads
sharing ``n_kv_heads`` key/value heads, rotary positions on queries and keys if
``config.rotary``, and a key-value cache. With the defaults it computes exactly what
:class:`attnlib.MultiHeadSelfAttention` computes. Masks: boolean, ``True`` = may attend,
broadcastable to (batch, n_heads, n_q, n_k).
"""

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from .attention import attention, grouped_query_attention
from .cache import KVCache
from .checks import check_choice, check_float, check_heads, check_positive_int
from .layers import MultiHeadCrossAttention, merge_heads, split_heads  # the one head split
from .masks import causal_mask
from .positions import PAIRINGS, apply_rotary


@dataclass(frozen=True)
class Config:
    """The sizes of a Transformer, one name each (as nanoGPT's ``GPTConfig``).

    vocab_size: tokens; context: the longest sequence (positions 0 .. context - 1);
    d_model: the width; n_heads: query heads, each ``d_head = d_model // n_heads`` wide;
    n_layers: blocks; d_ff: the feed-forward's hidden width (None: 4 * d_model);
    n_kv_heads: key/value heads, a divisor of n_heads (None: n_heads, multi-head
    attention; 1: multi-query); rotary: rotary positions on queries and keys instead of
    learnt position embeddings; pairing: which features rotate together (see
    :func:`attnlib.apply_rotary`); dropout: on each sublayer's output.
    """

    vocab_size: int
    context: int
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    d_ff: int | None = None
    n_kv_heads: int | None = None
    rotary: bool = False
    pairing: str = "half"
    dropout: float = 0.0

    def __post_init__(self):
        if self.d_ff is None:
            object.__setattr__(self, "d_ff", 4 * self.d_model)
        if self.n_kv_heads is None:
            object.__setattr__(self, "n_kv_heads", self.n_heads)
        for name in ("vocab_size", "context", "d_model", "n_heads", "n_layers", "d_ff",
                     "n_kv_heads"):
            check_positive_int(name, getattr(self, name))
        d_head = check_heads(self.d_model, self.n_heads)
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads={self.n_heads} must be a multiple of "
                             f"n_kv_heads={self.n_kv_heads}")
        if not isinstance(self.rotary, bool):
            raise TypeError(f"rotary must be True or False, got {self.rotary!r}")
        if self.rotary and d_head % 2:
            raise ValueError(f"rotary positions turn pairs of features: d_head={d_head} "
                             "must be even")
        check_choice("pairing", self.pairing, PAIRINGS)
        p = self.dropout
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
            raise ValueError(f"dropout must be a number in [0, 1), got {p!r}")

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads


class GroupedSelfAttention(nn.Module):
    """Self-attention, ``n_heads`` query heads sharing ``n_kv_heads`` key/value heads.

    x: (batch, n, d_model) -> output (batch, n, d_model), weights (batch, n_heads, n, n_k).
    ``qkv`` projects to h query heads and h_kv key and value heads (one matrix of
    (h + 2 h_kv) d_head rows); query head i reads key/value head ``i // (h / h_kv)``
    (grouped-query attention, Ainslie et al. 2023). With ``rotary``, queries and keys are
    rotated by their ``positions`` (n,), default 0 .. n - 1. With a ``cache``, x holds only
    new positions: their keys and values (rotated, h_kv heads) are appended to ``cache`` at
    ``layer``, and the queries attend over all of them with the bottom-right causal mask
    (n_k = n_past + n).
    """

    def __init__(self, config: Config, causal: bool = True):
        super().__init__()
        if not isinstance(causal, bool):
            raise TypeError(f"causal must be True or False, got {causal!r}")
        h, h_kv, d_head = config.n_heads, config.n_kv_heads, config.d_head
        self.n_heads, self.n_kv_heads, self.d_head = h, h_kv, d_head
        self.causal, self.rotary, self.pairing = causal, config.rotary, config.pairing
        self.qkv = nn.Linear(config.d_model, (h + 2 * h_kv) * d_head)  # W_q, W_k, W_v
        self.out = nn.Linear(config.d_model, config.d_model)

    def forward(self, x: torch.Tensor, *, mask: torch.Tensor | None = None,
                positions: torch.Tensor | None = None, cache: KVCache | None = None,
                layer: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        h, h_kv, d_head = self.n_heads, self.n_kv_heads, self.d_head
        q, k, v = self.qkv(x).split([h * d_head, h_kv * d_head, h_kv * d_head], dim=-1)
        q = split_heads(q, h)  # (b, n, h d_head) -> (b, h, n, d_head)
        k, v = split_heads(k, h_kv), split_heads(v, h_kv)  # each (b, h_kv, n, d_head)
        if self.rotary:
            if positions is None:
                positions = torch.arange(x.shape[-2], device=x.device)  # (n,)
            q = apply_rotary(q, positions, pairing=self.pairing)  # shape unchanged
            k = apply_rotary(k, positions, pairing=self.pairing)
        causal = self.causal
        if cache is not None:
            if not causal:
                raise ValueError("a key-value cache needs causal attention: later tokens "
                                 "must not change earlier ones")
            k, v = cache.append(layer, k, v)  # each (b, h_kv, n_past + n, d_head)
            tri = causal_mask(q.shape[-2], k.shape[-2], align="bottom_right",
                              device=x.device)  # (n, n_k)
            mask, causal = (tri if mask is None else mask & tri), False
        if h_kv == h:  # multi-head attention: nothing shared
            heads, weights = attention(q, k, v, mask=mask, causal=causal)
        else:
            heads, weights = grouped_query_attention(q, k, v, mask=mask, causal=causal)
        # heads (b, h, n, d_head), weights (b, h, n, n_k)
        return self.out(merge_heads(heads)), weights  # (b, n, h d_head) -> (b, n, d)


class BlockOutput(NamedTuple):
    x: torch.Tensor  # (batch, n, d_model)
    weights: torch.Tensor  # self-attention's (batch, n_heads, n, n_k)
    cross_weights: torch.Tensor | None  # cross-attention's (b, n_heads, n, n_mem) or None


class Block(nn.Module):
    """One pre-norm Transformer block (see the module docstring).

    forward(x, *, mask=None, memory=None, memory_mask=None, positions=None, cache=None,
    layer=0) -> BlockOutput(x, weights, cross_weights). x: (batch, n, d_model); memory:
    (batch, n_mem, d_model), given exactly when ``cross``; positions, cache, layer: see
    :class:`GroupedSelfAttention`.
    """

    def __init__(self, config: Config, *, causal: bool = True, cross: bool = False):
        super().__init__()
        if not isinstance(config, Config):
            raise TypeError(f"Block takes a Config, got {type(config).__name__}")
        d = config.d_model
        self.ln1 = nn.LayerNorm(d)
        self.attn = GroupedSelfAttention(config, causal=causal)
        self.ln_cross = nn.LayerNorm(d) if cross else None
        self.cross = MultiHeadCrossAttention(d, config.n_heads) if cross else None
        self.ln2 = nn.LayerNorm(d)
        d_ff = config.d_ff
        self.ff = nn.Sequential(nn.Linear(d, d_ff), nn.GELU(), nn.Linear(d_ff, d))
        self.drop = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, *, mask: torch.Tensor | None = None,
                memory: torch.Tensor | None = None,
                memory_mask: torch.Tensor | None = None,
                positions: torch.Tensor | None = None,
                cache: KVCache | None = None, layer: int = 0) -> BlockOutput:
        check_float("x", x)
        d_model = self.ln1.normalized_shape[0]
        if x.shape[-1] != d_model:
            raise ValueError(f"x must have shape (..., n, {d_model}), "
                             f"got {tuple(x.shape)}")
        if (memory is None) != (self.cross is None):
            raise ValueError("memory must be given exactly when the block has "
                             "cross-attention (cross=True)")
        mixed, weights = self.attn(self.ln1(x), mask=mask, positions=positions,
                                   cache=cache, layer=layer)  # (b,n,d), (b,h,n,n_k)
        x = x + self.drop(mixed)  # residual: (batch, n, d_model)
        cross_weights = None
        if self.cross is not None:
            mixed, cross_weights = self.cross(self.ln_cross(x), memory,
                                              mask=memory_mask)  # (b,h,n,n_mem)
            x = x + self.drop(mixed)  # (batch, n, d_model)
        x = x + self.drop(self.ff(self.ln2(x)))  # (b,n,d) -> (b,n,d_ff) -> (b,n,d)
        return BlockOutput(x, weights, cross_weights)
