"""Input checks, in one place: every public function of attnlib runs them once, at its entry.

Bad input gets an error that names what was wrong and what was expected, instead of a NaN,
a silent broadcast or a raw error from deep inside torch.
"""

import torch


def check_choice(name: str, value, allowed) -> None:
    """Raise ValueError unless ``value`` is one of ``allowed`` (a score name, a pairing, ...)."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(repr(a) for a in allowed)}")


def check_positive_int(name: str, value) -> None:
    """Raise unless ``value`` is an int >= 1 (a block size, a number of heads, ...)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")


def check_heads(d_model: int, n_heads: int) -> int:
    """Raise unless ``n_heads`` divides ``d_model``; return the width of one head, ``d_model // n_heads``."""
    check_positive_int("n_heads", n_heads)
    if d_model % n_heads != 0:
        raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
    return d_model // n_heads


def check_float(name: str, t: torch.Tensor, min_dim: int = 2) -> None:
    """Raise unless ``t`` is a floating-point tensor with at least ``min_dim`` dimensions."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if t.dim() < min_dim:
        want = {1: "(..., n)", 2: "(..., n, d)"}.get(min_dim, "(..., h, n, d)")
        raise ValueError(f"{name} must have shape {want}, got {tuple(t.shape)}")


def check_same_dtype(**tensors: torch.Tensor) -> None:
    dtypes = {name: t.dtype for name, t in tensors.items()}
    if len(set(dtypes.values())) > 1:
        raise TypeError(f"tensors must share one dtype, got {dtypes}")


def batch_shape(**tensors: torch.Tensor) -> tuple[int, ...]:
    """The broadcast of the leading (batch, head) dimensions of tensors shaped (..., n, d).

    Raises ValueError naming every shape when they do not broadcast together.
    """
    try:
        return tuple(torch.broadcast_shapes(*(t.shape[:-2] for t in tensors.values())))
    except RuntimeError:
        shapes = ", ".join(f"{name} {tuple(t.shape)}" for name, t in tensors.items())
        raise ValueError(f"the leading (batch, head) dimensions do not broadcast: {shapes}") from None


def check_mask(mask: torch.Tensor, scores_shape) -> None:
    """Raise unless ``mask`` is boolean and broadcasts to ``scores_shape`` without enlarging it."""
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise TypeError(f"mask must be a boolean tensor (True = may attend), got {got}")
    try:
        shape = torch.broadcast_shapes(tuple(mask.shape), tuple(scores_shape))
    except RuntimeError:
        shape = None
    if shape != tuple(scores_shape):
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not broadcast to the scores' shape "
            f"{tuple(scores_shape)} (..., n_q, n_k)"
        )


def check_queries_keys(q: torch.Tensor, k: torch.Tensor, same_width: bool = True) -> tuple[int, ...]:
    """q: (..., n_q, d_q), k: (..., n_k, d_k): floating, one dtype, batch dims that broadcast,
    and (unless ``same_width=False``, as for bilinear and additive scores) ``d_q == d_k``.

    Returns the scores' shape (..., n_q, n_k).
    """
    check_float("q", q)
    check_float("k", k)
    check_same_dtype(q=q, k=k)
    if same_width and q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k must have the same feature size d, got q {tuple(q.shape)} (d={q.shape[-1]}) "
            f"and k {tuple(k.shape)} (d={k.shape[-1]})"
        )
    return (*batch_shape(q=q, k=k), q.shape[-2], k.shape[-2])


def check_attention_inputs(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None, same_width: bool = True
) -> tuple[int, ...]:
    """The one check of an attention call: q (..., n_q, d), k (..., n_k, d), v (..., n_k, d_v), mask.

    Floating tensors of one dtype; q and k of one width d (unless ``same_width=False``); k and v
    with the same n_k; the leading dimensions of q, k and v broadcast together; the mask is
    boolean and broadcasts to the scores. Returns the scores' shape (..., n_q, n_k).
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_float(name, t)
    check_same_dtype(q=q, k=k, v=v)
    if same_width and q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k must have the same feature size d, got q {tuple(q.shape)} (d={q.shape[-1]}) "
            f"and k {tuple(k.shape)} (d={k.shape[-1]})"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k and v must have the same number of positions n_k, got k {tuple(k.shape)} and v {tuple(v.shape)}"
        )
    scores_shape = (*batch_shape(q=q, k=k, v=v), q.shape[-2], k.shape[-2])
    if mask is not None:
        check_mask(mask, scores_shape)
    return scores_shape


def check_grouped_heads(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[int, int]:
    """q: (..., h, n_q, d), k and v: (..., h_kv, n_k, d): k and v have one head count h_kv, and h is
    a multiple of it (each group of h / h_kv query heads shares one key/value head). Returns (h, h_kv).
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_float(name, t, min_dim=3)
    h, h_kv = q.shape[-3], k.shape[-3]
    if v.shape[-3] != h_kv:
        raise ValueError(
            f"k and v must have the same number of heads h_kv, got k {tuple(k.shape)} (h_kv={h_kv}) "
            f"and v {tuple(v.shape)} (h_kv={v.shape[-3]})"
        )
    if h_kv == 0 or h % h_kv:
        raise ValueError(
            f"the number of query heads h={h} must be a multiple of the number of key/value heads "
            f"h_kv={h_kv}: q {tuple(q.shape)}, k {tuple(k.shape)}"
        )
    return h, h_kv
