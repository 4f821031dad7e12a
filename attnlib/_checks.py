"""Input checks shared by the public functions: clear errors instead of NaNs or silent broadcasts."""

import torch


def check_float(name: str, t: torch.Tensor) -> None:
    """Raise TypeError unless ``t`` is a floating-point tensor with at least two dimensions."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if t.dim() < 2:
        raise ValueError(f"{name} must have shape (..., n, d), got {tuple(t.shape)}")


def check_same_dtype(**tensors: torch.Tensor) -> None:
    dtypes = {name: t.dtype for name, t in tensors.items()}
    if len(set(dtypes.values())) > 1:
        raise TypeError(f"tensors must share one dtype, got {dtypes}")


def check_batch(shape_a, shape_b, what: str) -> None:
    """Raise ValueError unless the leading (batch/head) dimensions of two shapes broadcast."""
    try:
        torch.broadcast_shapes(tuple(shape_a[:-2]), tuple(shape_b[:-2]))
    except RuntimeError:
        raise ValueError(
            f"leading dimensions of {what} do not broadcast: {tuple(shape_a)} and {tuple(shape_b)}"
        ) from None


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


def check_queries_keys(q: torch.Tensor, k: torch.Tensor, same_width: bool = True) -> None:
    """q: (..., n_q, d_q), k: (..., n_k, d_k): floating, one dtype, batch dims that broadcast,
    and (unless ``same_width=False``, as for bilinear and additive scores) ``d_q == d_k``."""
    check_float("q", q)
    check_float("k", k)
    check_same_dtype(q=q, k=k)
    if same_width and q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k must have the same feature size d, got q {tuple(q.shape)} (d={q.shape[-1]}) "
            f"and k {tuple(k.shape)} (d={k.shape[-1]})"
        )
    check_batch(q.shape, k.shape, "q and k")


def check_keys_values(k: torch.Tensor, v: torch.Tensor) -> None:
    """k: (..., n_k, d), v: (..., n_k, d_v): floating, one dtype, same n_k, batch dims that broadcast."""
    check_float("k", k)
    check_float("v", v)
    check_same_dtype(k=k, v=v)
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k and v must have the same number of positions n_k, got k {tuple(k.shape)} "
            f"and v {tuple(v.shape)}"
        )
    check_batch(k.shape, v.shape, "k and v")
