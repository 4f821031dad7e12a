"""Boolean attention masks. ``True`` = may attend, as in ``scaled_dot_product_attention``.

(Beware: ``torch.nn.MultiheadAttention``'s boolean masks mean the opposite.)
"""

import torch

from .checks import check_choice, check_int

ALIGNS = ("top_left", "bottom_right")


def causal_mask(
    n_q: int, n_k: int | None = None, *, align: str = "top_left", device=None
) -> torch.Tensor:
    """Causal mask (n_q, n_k): query i may attend to key j only if j is not in its
    future.

    With n_q == n_k both alignments give the lower triangle (the diagonal included).
    They differ when n_q != n_k, for example 2 new queries after a cache of 3 keys
    (n_q = 2, n_k = 5)::

        align="top_left"          align="bottom_right"
        (query i sees j <= i)     (query i sees j <= i + n_k - n_q)
            keys 0 1 2 3 4            keys 0 1 2 3 4
        q0       1 0 0 0 0        q0       1 1 1 1 0
        q1       1 1 0 0 0        q1       1 1 1 1 1

    ``"top_left"`` is what ``scaled_dot_product_attention(..., is_causal=True)`` does:
    right when queries and keys start at the same position (training).
    ``"bottom_right"`` is right when the queries are the *last* n_q positions of the
    keys' sequence (a block of new tokens that continues a cached prefix): query i
    stands at position n_k - n_q + i.
    """
    n_k = n_q if n_k is None else n_k
    check_int("n_q", n_q, low=0)
    check_int("n_k", n_k, low=0)
    check_choice("align", align, ALIGNS)
    offset = 0 if align == "top_left" else n_k - n_q
    return torch.ones(n_q, n_k, dtype=torch.bool, device=device).tril(diagonal=offset)


def window_mask(n: int, r: int, device=None) -> torch.Tensor:
    """Restricted self-attention: query i may attend to key j iff |i - j| <= r. -> (n, n)."""
    check_int("n", n, low=1)
    check_int("r", r, low=0)
    i = torch.arange(n, device=device).unsqueeze(1)  # (n, 1)
    j = torch.arange(n, device=device).unsqueeze(0)  # (1, n)
    return (i - j).abs() <= r  # (n, n)


def sliding_window_mask(n: int, window: int, *, sinks: int = 0, device=None) -> torch.Tensor:
    """Causal sliding window with sink tokens. -> (n, n), ``True`` = may attend.

    Query i sees its last ``window`` keys, itself included (``i - window < j <= i``), and the
    first ``sinks`` keys (``j < sinks``, the "attention sinks" of Xiao et al. 2023), never a key
    after it. With n = 6, window = 2, sinks = 1::

            keys 0 1 2 3 4 5
        q0       1 0 0 0 0 0
        q1       1 1 0 0 0 0
        q2       1 1 1 0 0 0
        q3       1 0 1 1 0 0
        q4       1 0 0 1 1 0
        q5       1 0 0 0 1 1

    Built from :func:`causal_mask` and :func:`window_mask` (the window is ``r = window - 1``).
    """
    check_int("n", n, low=1)
    check_int("window", window, low=1)
    check_int("sinks", sinks, low=0)
    causal = causal_mask(n, device=device)  # (n, n)
    recent = causal & window_mask(n, window - 1, device=device)  # (n, n): i - window < j <= i
    sink = torch.arange(n, device=device) < sinks  # (n,): the first `sinks` keys
    return recent | (causal & sink)  # (n, n) | ((n, n) & (1, n)) -> (n, n)
