"""Input checks, in one place: every public function of attnlib runs them once, at its entry. Each error names what
was expected and what arrived (TypeError: the wrong kind of thing; ValueError: a wrong value or shape)."""

import math
import numbers

import numpy as np
import torch

BOOLS = (bool, np.bool_)
FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)  # the dtypes attnlib computes in
INTS = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)  # token ids, positions


def describe(x) -> str:
    """What arrived, in a few words: ``"torch.int64 tensor (2, 3) on cpu"``, ``"str 'no'"``."""
    if isinstance(x, torch.Tensor):
        return f"{x.dtype} tensor {tuple(x.shape)} on {x.device}"
    return f"{type(x).__name__} {x!r}" if isinstance(x, (str, numbers.Number)) else type(x).__name__


def check_choice(name: str, value, allowed) -> None:
    """Raise ValueError unless ``value`` is one of ``allowed`` (a score name, a pairing, ...)."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(repr(a) for a in allowed)}")


def check_bool(name: str, value) -> None:
    """Raise TypeError unless ``value`` is True or False (``causal="no"`` would be truthy)."""
    if not isinstance(value, BOOLS):
        raise TypeError(f"{name} must be a bool (True or False), got {describe(value)}")


def check_int(name: str, value, low: int = 1) -> None:
    """Raise unless ``value`` is an int (not a bool) >= ``low`` (a size, a block size, a count)."""
    if isinstance(value, BOOLS) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {describe(value)}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")


check_positive_int = check_int  # an int >= 1


def check_positive_number(name: str, value) -> None:
    """Raise unless ``value`` is a finite real number > 0 (a rotary base, a learning rate)."""
    if isinstance(value, BOOLS) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {describe(value)}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")


def check_heads(d_model: int, n_heads: int) -> int:
    """Raise unless ``n_heads`` divides ``d_model``; return the width of one head, ``d_model // n_heads``."""
    check_positive_int("d_model", d_model)
    check_positive_int("n_heads", n_heads)
    if d_model % n_heads != 0:
        raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
    return d_model // n_heads


def check_float(name: str, t, min_dim: int = 2) -> None:
    """Raise unless ``t`` is a floating-point tensor with at least ``min_dim`` dimensions."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in FLOATS:
        raise TypeError(f"{name} must be a floating-point tensor (float16, bfloat16, float32 or float64), "
                        f"got dtype {t.dtype}")
    if t.dim() < min_dim:
        want = {1: "(..., n)", 2: "(..., n, d)"}.get(min_dim, "(..., h, n, d)")
        raise ValueError(f"{name} must have shape {want}, got {tuple(t.shape)}")


def check_same_dtype_device(**tensors: torch.Tensor) -> None:
    """Raise TypeError unless the tensors share one dtype, ValueError unless they share one device."""
    if len({t.dtype for t in tensors.values()}) > 1:
        raise TypeError(f"tensors must share one dtype, got {({n: t.dtype for n, t in tensors.items()})}")
    if len({t.device for t in tensors.values()}) > 1:
        raise ValueError(f"tensors must be on one device, got {({n: str(t.device) for n, t in tensors.items()})}")


def batch_shape(**tensors: torch.Tensor) -> tuple[int, ...]:
    """The broadcast of the leading (batch, head) dimensions of tensors (..., n, d); ValueError if none."""
    try:
        return tuple(torch.broadcast_shapes(*(t.shape[:-2] for t in tensors.values())))
    except RuntimeError:
        shapes = ", ".join(f"{name} {tuple(t.shape)}" for name, t in tensors.items())
        raise ValueError(f"the leading (batch, head) dimensions do not broadcast: {shapes}") from None


def check_mask(mask, scores_shape, device) -> None:
    """Raise unless ``mask`` is boolean, on ``device``, and broadcasts to ``scores_shape`` without enlarging it."""
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError(f"mask must be a boolean tensor (True = may attend), got {describe(mask)}")
    if mask.device != device:
        raise ValueError(f"mask must be on the scores' device, {device}; got mask on {mask.device}")
    shape, want = tuple(mask.shape), tuple(scores_shape)  # mask may only broadcast: every size 1 or the scores'
    if len(shape) > len(want) or any(m not in (1, w) for m, w in zip(shape[::-1], want[::-1], strict=False)):
        raise ValueError(f"mask of shape {shape} does not broadcast to the scores' shape {want} (..., n_q, n_k)")


def check_attention_inputs(q, k, v=None, mask=None, same_width: bool = True, causal: bool = False) -> tuple[int, ...]:
    """The one check of an attention call (v None: of a score function). q (..., n_q, d_q), k (..., n_k, d_k), v
    (..., n_k, d_v): floating, one dtype and device, batch dims that broadcast, d >= 1, d_q == d_k (unless same_width
    is False), one n_k; the mask boolean, on their device, broadcasting; causal a bool. -> (..., n_q, n_k)."""
    check_bool("causal", causal)
    tensors = {"q": q, "k": k} if v is None else {"q": q, "k": k, "v": v}
    for name, t in tensors.items():
        check_float(name, t)
    check_same_dtype_device(**tensors)
    if same_width and q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must have the same feature size d, got q {tuple(q.shape)} (d={q.shape[-1]}) "
                         f"and k {tuple(k.shape)} (d={k.shape[-1]})")
    if q.shape[-1] == 0 or k.shape[-1] == 0:
        raise ValueError(f"q and k need at least one feature (d >= 1), got q {tuple(q.shape)} and k {tuple(k.shape)}")
    if v is not None and k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v must have the same number of positions n_k, got k {tuple(k.shape)} "
                         f"and v {tuple(v.shape)}")
    scores_shape = (*batch_shape(**tensors), q.shape[-2], k.shape[-2])
    if mask is not None:
        check_mask(mask, scores_shape, q.device)
    return scores_shape


def check_grouped_heads(q, k, v) -> tuple[int, int]:
    """q (..., h, n_q, d), k and v (..., h_kv, n_k, d): one h_kv for k and v, h a multiple of it. -> (h, h_kv)."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_float(name, t, min_dim=3)
    h, h_kv = q.shape[-3], k.shape[-3]
    if v.shape[-3] != h_kv:
        raise ValueError(f"k and v must have one number of heads h_kv, got k {tuple(k.shape)} and v {tuple(v.shape)}")
    if h_kv == 0 or h % h_kv:
        raise ValueError(f"the number of query heads h={h} must be a multiple of the number of key/value heads "
                         f"h_kv={h_kv}: q {tuple(q.shape)}, k {tuple(k.shape)}")
    return h, h_kv


def check_weight(name: str, weight, shape: tuple, q: torch.Tensor) -> None:
    """A score function's parameter: floating, of ``shape`` (an entry "h": any size), q's dtype and device."""
    check_float(name, weight, min_dim=0)
    if (weight.dtype, weight.device) != (q.dtype, q.device):
        raise TypeError(f"{name} must have the dtype and device of q, {q.dtype} on {q.device}; got {weight.dtype} "
                        f"on {weight.device}")
    if weight.dim() != len(shape) or any(isinstance(s, int) and s != w
                                         for s, w in zip(shape, weight.shape, strict=True)):
        want = f"({', '.join(map(str, shape))}{',' if len(shape) == 1 else ''})"
        raise ValueError(f"{name} must have shape {want}, got {tuple(weight.shape)}")


def check_features(name: str, x, width: int, like: torch.Tensor) -> None:
    """A layer's input x: (..., n, width), floating, with the dtype and device of the layer's weight ``like``."""
    check_float(name, x)  # integer token ids go through an embedding first
    if x.shape[-1] != width:
        raise ValueError(f"{name} must have shape (..., n, {width}), got {tuple(x.shape)}")
    if x.dtype != like.dtype or x.device != like.device:
        raise TypeError(f"{name} must have the layer's dtype and device, {like.dtype} on {like.device}; got "
                        f"{x.dtype} on {x.device} (convert the layer with .to(...), or the input)")


def check_token_ids(ids, vocab_size: int) -> None:
    """Token ids for an embedding of ``vocab_size`` rows: an integer tensor with every id in [0, vocab_size)."""
    if not isinstance(ids, torch.Tensor) or ids.dtype not in INTS:
        raise TypeError(f"ids must be an integer tensor of token ids, got {describe(ids)}")
    if ids.numel() and not (0 <= int(ids.min()) and int(ids.max()) < vocab_size):
        raise ValueError(f"token ids must lie in [0, {vocab_size}), got ids from {int(ids.min())} to {int(ids.max())}")


def check_scores(scores, mask=None, block_size: int | None = None, name: str = "scores") -> None:
    """Scores (..., n_k) or logits (name="logits"), floating; a mask; online: a block_size, no NaN or +inf."""
    check_float(name, scores, min_dim=1)
    if block_size is not None:
        check_positive_int("block_size", block_size)
        if torch.isnan(scores).any() or (scores == float("inf")).any():
            raise ValueError(f"{name} must not contain NaN or +inf (-inf is allowed: it means weight 0)")
    if mask is not None:
        check_mask(mask, scores.shape, scores.device)


def check_positions(positions, x: torch.Tensor) -> None:
    """Rotary positions: a 1-D integer tensor with one entry per row of x (..., n, d), on x's device."""
    if not isinstance(positions, torch.Tensor) or positions.dtype not in INTS or positions.dim() != 1:
        raise TypeError(f"positions must be a 1-D integer tensor (n,), got {describe(positions)}")
    if len(positions) != x.shape[-2] or positions.device != x.device:
        raise ValueError(f"positions need one entry per row of x, on x's device: x {describe(x)}, "
                         f"got {describe(positions)}")


def check_cache_entry(layer, cached: list, k, v) -> None:
    """KVCache.append: a layer in range; k, v (batch, h, n_new, d) alike, continuing the layer's ``cached`` keys."""
    check_int("layer", layer, low=0)
    if layer >= len(cached):
        raise ValueError(f"layer must be < {len(cached)} (the cache's number of layers), got {layer}")
    check_float("k", k, min_dim=3)
    check_float("v", v, min_dim=3)
    if k.shape[:-1] != v.shape[:-1]:
        raise ValueError(f"k and v must have one (batch, heads, n_new), got k {tuple(k.shape)} and v {tuple(v.shape)}")
    check_same_dtype_device(k=k, v=v)
    if (past := cached[layer]) is not None and (past.shape[:-2], past.shape[-1], past.dtype, past.device) != (
            k.shape[:-2], k.shape[-1], k.dtype, k.device):
        raise ValueError(f"k must continue the cached keys, {describe(past)} (same batch, heads, width, dtype "
                         f"and device), got {describe(k)}")


def check_torch_attention(m) -> None:
    """For from_torch: a torch.nn.MultiheadAttention(batch_first=True) without kdim/vdim, add_bias_kv, add_zero_attn."""
    if not isinstance(m, torch.nn.MultiheadAttention) or not m.batch_first:
        raise ValueError(f"from_torch expects torch.nn.MultiheadAttention(..., batch_first=True), got {describe(m)}")
    if m.in_proj_weight is None or m.bias_k is not None or m.add_zero_attn:
        raise ValueError(f"from_torch supports neither kdim/vdim, add_bias_kv nor add_zero_attn; got kdim={m.kdim}, "
                         f"vdim={m.vdim}, add_bias_kv={m.bias_k is not None}, add_zero_attn={m.add_zero_attn}")
