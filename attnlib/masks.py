"""Boolean attention masks. ``True`` = may attend, as in ``scaled_dot_product_attention``.

(Beware: ``torch.nn.MultiheadAttention``'s boolean masks mean the opposite.)
"""

import torch

from .checks import check_choice

ALIGNS = ("top_left", "bottom_right")


def causal_mask(n_q: int, n_k: int | None = None, *, align: str = "top_left", device=None) -> torch.Tensor:
    """Causal mask (n_q, n_k): query i may attend to key j only if j is not in its future.

    With n_q == n_k both alignments give the lower triangle (the diagonal included). They differ
    when n_q != n_k, for example 2 new queries after a cache of 3 keys (n_q = 2, n_k = 5)::

        align="top_left"          align="bottom_right"
        (query i sees j <= i)     (query i sees j <= i + n_k - n_q)
            keys 0 1 2 3 4            keys 0 1 2 3 4
        q0       1 0 0 0 0        q0       1 1 1 1 0
        q1       1 1 0 0 0        q1       1 1 1 1 1

    ``"top_left"`` is what ``scaled_dot_product_attention(..., is_causal=True)`` does: right when
    queries and keys start at the same position (training). ``"bottom_right"`` is right when the
    queries are the *last* n_q positions of the keys' sequence (a block of new tokens that
    continues a cached prefix): query i stands at position n_k - n_q + i.
    """
    check_choice("align", align, ALIGNS)
    n_k = n_q if n_k is None else n_k
    offset = 0 if align == "top_left" else n_k - n_q
    return torch.ones(n_q, n_k, dtype=torch.bool, device=device).tril(diagonal=offset)


def window_mask(n: int, r: int, device=None) -> torch.Tensor:
    """Restricted self-attention: query i may attend to key j iff |i - j| <= r. -> (n, n)."""
    if n < 1 or r < 0:
        raise ValueError(f"need n >= 1 and r >= 0, got n={n}, r={r}")
    i = torch.arange(n, device=device).unsqueeze(1)  # (n, 1)
    j = torch.arange(n, device=device).unsqueeze(0)  # (1, n)
    return (i - j).abs() <= r  # (n, n)
