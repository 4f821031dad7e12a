"""Attention as ``torch.nn`` modules: self-attention (one head, and many) and cross-attention.

Each layer returns ``(output, weights)``, as :func:`attnlib.attention` does. ``split_heads`` and
``merge_heads`` are the one head split and concatenation every multi-head module uses.
"""

import inspect

import torch
from torch import nn

from .attention import SCORES, attention
from .checks import check_choice, check_features, check_heads, check_positive_int, check_torch_attention


def split_heads(t: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(..., n, n_heads * d_head) -> (..., n_heads, n, d_head): head i gets the i-th slice of the features."""
    t = t.unflatten(-1, (n_heads, -1))  # (..., n, d_model) -> (..., n, h, d_head)
    return t.transpose(-3, -2)  # -> (..., h, n, d_head)


def merge_heads(t: torch.Tensor) -> torch.Tensor:
    """(..., n_heads, n, d_head) -> (..., n, n_heads * d_head): the heads' outputs side by side (concatenated)."""
    return t.transpose(-3, -2).flatten(-2)  # (..., n, h, d_head) -> (..., n, d_model)


class SelfAttention(nn.Module):
    """One head of self-attention: queries, keys and values are projections of the same x.

    ``Q = X W_q^T, K = X W_k^T, V = X W_v^T``, then ``attention(Q, K, V)``.
    x: (..., n, d_model) -> output (..., n, d_head), weights (..., n, n)
    score: one of ``"dot"``, ``"scaled_dot"``, ``"bilinear"`` (then ``self.weight``,
    initialised to the identity, is learnt too).
    """

    def __init__(self, d_model: int, d_head: int | None = None, score: str = "scaled_dot"):
        super().__init__()
        check_choice("score", score, SCORES)
        d_head = d_model if d_head is None else d_head
        check_positive_int("d_model", d_model)
        check_positive_int("d_head", d_head)
        self.score = score
        self.w_q = nn.Linear(d_model, d_head, bias=False)
        self.w_k = nn.Linear(d_model, d_head, bias=False)
        self.w_v = nn.Linear(d_model, d_head, bias=False)
        self.weight = nn.Parameter(torch.eye(d_head)) if score == "bilinear" else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                causal: bool = False):
        """x: (..., n, d_model) -> output (..., n, d_head), weights (..., n, n).

        ``mask`` and ``causal`` as in :func:`attnlib.attention`."""
        check_features("x", x, self.w_q.in_features, self.w_q.weight)
        q, k, v = self.w_q(x), self.w_k(x), self.w_v(x)  # each (..., n, d_head)
        return attention(q, k, v, score=self.score, mask=mask, causal=causal,
                         weight=self.weight)


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention: split into heads, attend in each, concatenate, project.

    x: (..., n, d_model) -> output (..., n, d_model), weights (..., n_heads, n, n)
    Each head has width ``d_head = d_model // n_heads`` and scales its scores by
    ``1/sqrt(d_head)``. ``mask``: boolean, broadcastable to (..., n_heads, n, n),
    ``True`` = may attend; for a key-padding mask ``(batch, n)`` pass ``mask[:, None, None, :]``.
    ``causal`` is an argument of ``forward``, as for :class:`SelfAttention`.
    """

    def __init__(self, d_model: int, n_heads: int, bias: bool = True):
        super().__init__()
        self.d_model, self.n_heads = d_model, n_heads
        self.d_head = check_heads(d_model, n_heads)
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)  # W_q, W_k, W_v stacked, as in torch
        self.out = nn.Linear(d_model, d_model, bias=bias)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        return split_heads(t, self.n_heads)  # (..., n, d_model) -> (..., h, n, d_head)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, causal: bool = False):
        check_features("x", x, self.d_model, self.qkv.weight)
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # each (..., n, d_model)
        q, k, v = (split_heads(t, self.n_heads) for t in (q, k, v))  # each (..., h, n, d_head)
        heads, weights = attention(q, k, v, mask=mask, causal=causal)  # (..., h, n, d_head), (..., h, n, n)
        return self.out(merge_heads(heads)), weights  # (..., n, d_model) -> (..., n, d_model)

    @classmethod
    def from_torch(cls, m: nn.MultiheadAttention) -> "MultiHeadSelfAttention":
        """Copy the weights of a ``torch.nn.MultiheadAttention(batch_first=True)``.

        The result gives the same output as ``m(x, x, x)`` (and ``new(x, causal=True)`` the same
        as ``m(x, x, x, attn_mask=...)`` with torch's causal mask).
        """
        check_torch_attention(m)
        new = cls(m.embed_dim, m.num_heads, bias=m.in_proj_bias is not None)
        new = new.to(dtype=m.in_proj_weight.dtype, device=m.in_proj_weight.device)
        with torch.no_grad():
            new.qkv.weight.copy_(m.in_proj_weight)
            new.out.weight.copy_(m.out_proj.weight)
            if m.in_proj_bias is not None:
                new.qkv.bias.copy_(m.in_proj_bias)
                new.out.bias.copy_(m.out_proj.bias)
        return new


class MultiHeadCrossAttention(nn.Module):
    """Multi-head cross-attention: queries from x, keys and values from another sequence, ``memory``.

    x: (..., n_q, d_model), memory: (..., n_k, d_model) -> output (..., n_q, d_model), weights
    (..., n_heads, n_q, n_k). ``Q = x W_q^T``, ``K = memory W_k^T``, ``V = memory W_v^T``, then per head
    ``attention(Q, K, V)`` scaled by ``1/sqrt(d_head)``, concatenated and projected, as in
    :class:`MultiHeadSelfAttention` (which is the case ``memory = x``). In a translator x is the decoder's
    sequence and memory the encoder's output. ``mask``: boolean, broadcastable to (..., n_heads, n_q, n_k),
    ``True`` = may attend; for the memory's padding ``(batch, n_k)`` pass ``mask[:, None, None, :]``.
    """

    def __init__(self, d_model: int, n_heads: int, bias: bool = True):
        super().__init__()
        self.d_model, self.n_heads = d_model, n_heads
        self.d_head = check_heads(d_model, n_heads)
        self.q = nn.Linear(d_model, d_model, bias=bias)  # W_q
        self.kv = nn.Linear(d_model, 2 * d_model, bias=bias)  # W_k, W_v stacked, as in torch
        self.out = nn.Linear(d_model, d_model, bias=bias)
        self.register_forward_pre_hook(check_cross_inputs, with_kwargs=True)  # the checks, before forward

    _split = MultiHeadSelfAttention._split

    def forward(self, x: torch.Tensor, memory: torch.Tensor,
                mask: torch.Tensor | None = None):
        for name, t in (("x", x), ("memory", memory)):
            if t.dim() < 2 or t.shape[-1] != self.d_model:
                raise ValueError(f"{name} must have shape (..., n, {self.d_model}), "
                                 f"got {tuple(t.shape)}")
        q = self._split(self.q(x))  # (..., n_q, d_model) -> (..., h, n_q, d_head)
        k, v = self.kv(memory).chunk(2, dim=-1)  # each (..., n_k, d_model)
        k, v = self._split(k), self._split(v)  # each (..., h, n_k, d_head)
        # heads (..., h, n_q, d_head), weights (..., h, n_q, n_k)
        heads, weights = attention(q, k, v, mask=mask)
        # (..., n_q, h, d_head) -> (..., n_q, d_model)
        concat = heads.transpose(-3, -2).flatten(-2)
        return self.out(concat), weights  # (..., n_q, d_model)

    @classmethod
    def from_torch(cls, m: nn.MultiheadAttention) -> "MultiHeadCrossAttention":
        """Copy the weights of a ``torch.nn.MultiheadAttention(batch_first=True)``.

        The result gives the same output as ``m(x, memory, memory)``.
        """
        check_torch_attention(m)
        d = m.embed_dim
        new = cls(d, m.num_heads, bias=m.in_proj_bias is not None)
        new = new.to(dtype=m.in_proj_weight.dtype, device=m.in_proj_weight.device)
        with torch.no_grad():
            new.q.weight.copy_(m.in_proj_weight[:d])  # (d_model, d_model)
            new.kv.weight.copy_(m.in_proj_weight[d:])  # (2 d_model, d_model)
            new.out.weight.copy_(m.out_proj.weight)
            if m.in_proj_bias is not None:
                new.q.bias.copy_(m.in_proj_bias[:d])
                new.kv.bias.copy_(m.in_proj_bias[d:])
                new.out.bias.copy_(m.out_proj.bias)
        return new


def check_cross_inputs(layer: MultiHeadCrossAttention, args: tuple, kwargs: dict) -> None:
    """Run before :meth:`MultiHeadCrossAttention.forward`: x and memory (..., n, d_model), of the layer's dtype and
    device. (forward keeps its own, older shape check: chapter 11 prints that method as it stands.)"""
    given = inspect.signature(layer.forward).bind(*args, **kwargs).arguments
    for name in ("x", "memory"):
        check_features(name, given[name], layer.d_model, layer.q.weight)
