"""The key-value cache of a decoder: keys and values of past positions are kept, each step computes one query.

Without a cache, every new token re-runs the model over the whole context: the keys and values of
the past positions are recomputed although they cannot change (the causal mask keeps them from
reading the new token). With the cache, a step computes the query, key and value of the new
position only, appends its key and value to the cache, and attends over all of them (chapter 10).
"""

import torch

from .attention import attention
from .checks import check_cache_entry, check_features, check_int, check_positive_int
from .layers import MultiHeadSelfAttention, merge_heads, split_heads
from .masks import causal_mask


def kv_cache_bytes(n_layers: int, n: int, d_model: int, bytes_per_number: int) -> int:
    """Memory of a cache of ``n`` positions for one sequence: ``2 * n_layers * n * d_model * bytes``.

    The 2 is one key and one value per position, layer and head; the heads together are d_model wide.
    """
    for name, value in (("n_layers", n_layers), ("n", n), ("d_model", d_model), ("bytes_per_number", bytes_per_number)):
        check_int(name, value, low=0)
    return 2 * n_layers * n * d_model * bytes_per_number


class KVCache:
    """Keys and values of the positions a decoder has read, per layer.

    ``keys[layer]``, ``values[layer]``: (batch, n_heads, n_past, d_head), ``None`` before the first
    step. ``len(cache)`` is n_past, the position at which the next token stands.
    """

    def __init__(self, n_layers: int):
        check_positive_int("n_layers", n_layers)
        self.keys: list[torch.Tensor | None] = [None] * n_layers
        self.values: list[torch.Tensor | None] = [None] * n_layers

    def __len__(self) -> int:
        return 0 if self.keys[-1] is None else self.keys[-1].shape[-2]

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append the new positions' k, v (batch, n_heads, n_new, d_head) to ``layer``'s; return all of them."""
        check_cache_entry(layer, self.keys, k, v)
        if self.keys[layer] is not None:
            k = torch.cat([self.keys[layer], k], dim=-2)  # (batch, h, n_past + n_new, d_head)
            v = torch.cat([self.values[layer], v], dim=-2)  # (batch, h, n_past + n_new, d_head)
        self.keys[layer], self.values[layer] = k, v
        return k, v

    def nbytes(self) -> int:
        """Bytes held by the cached keys and values."""
        return sum(t.numel() * t.element_size() for t in self.keys + self.values if t is not None)


def cached_self_attention(
    attn: MultiHeadSelfAttention, x: torch.Tensor, cache: KVCache, layer: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal self-attention of new positions that continue the positions held in
    ``cache``.

    x: (batch, n_new, d_model), the new positions only -> output
    (batch, n_new, d_model), weights (batch, n_heads, n_new, n_past + n_new). Queries
    come from the new positions; keys and values from the cache and the new positions
    (appended to the cache). New query i stands at position n_past + i, so it may
    attend to keys j <= n_past + i: the *bottom-right* causal mask (``True`` = may
    attend). The top-left mask would let query i see only keys j <= i.
    """
    check_features("x", x, attn.d_model, attn.qkv.weight)
    q, k, v = attn.qkv(x).chunk(3, dim=-1)  # each (batch, n_new, d_model)
    q, k, v = (split_heads(t, attn.n_heads)
               for t in (q, k, v))  # each (batch, h, n_new, d_head)
    k, v = cache.append(layer, k, v)  # each (batch, h, n_past + n_new, d_head)
    mask = causal_mask(q.shape[-2], k.shape[-2], align="bottom_right",
                       device=x.device)  # (n_new, n_k)
    # heads (batch, h, n_new, d_head), weights (batch, h, n_new, n_k)
    heads, weights = attention(q, k, v, mask=mask)
    # (batch, n_new, h, d_head) -> (batch, n_new, d_model)
    return attn.out(merge_heads(heads)), weights
