"""The tiles that chunked attention walks over, shared by its forward and its backward pass.

A tile is ``block`` queries by ``block`` keys (fewer at the edges) of one flattened batch-and-head
dimension B. Both passes visit the same tiles, mask them the same way and reuse flat buffers.
"""

import math

import torch


def buffer_view(buffer: torch.Tensor, *shape: int) -> torch.Tensor:
    """A contiguous tensor of ``shape`` on the first elements of a flat, reused ``buffer``."""
    return buffer[: math.prod(shape)].view(shape)


def key_starts(q1: int, n_k: int, block: int, causal: bool) -> range:
    """The first key of every key block that queries ``< q1`` need: all of them, or (causal) none after q1 - 1."""
    return range(0, min(n_k, q1) if causal else n_k, block)


def mask_tile_(s, forbid, causal, q0, k0, lead, triangles) -> None:
    """Set the forbidden scores of one tile ``s: (B, b_q, b_k)`` to -inf, in place.

    forbid: ``~mask`` expanded to (*lead, n_q, n_k) (True = may NOT attend), or None.
    causal: key j is forbidden to query i when j > i; ``triangles`` caches one such tile per offset.
    """
    b_q, b_k = s.shape[-2:]
    if forbid is not None:
        s.view(*lead, b_q, b_k).masked_fill_(forbid[..., q0 : q0 + b_q, k0 : k0 + b_k], float("-inf"))
    if causal and k0 + b_k - 1 > q0:  # some key in the tile lies after some query
        key = (b_q, b_k, q0 - k0)
        if key not in triangles:  # (b_q, b_k): True where k0 + c > q0 + r, i.e. key after query
            triangles[key] = torch.ones(b_q, b_k, dtype=torch.bool, device=s.device).triu_(q0 - k0 + 1)
        s.masked_fill_(triangles[key], float("-inf"))
