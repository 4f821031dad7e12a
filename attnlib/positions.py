"""Positional information: attention itself does not know where a token is."""

import math

import torch

from .checks import check_choice, check_float, check_int, check_positions, check_positive_number


def sinusoidal_positions(n: int, d: int, base: float = 10000.0) -> torch.Tensor:
    """The sinusoidal position encoding of Vaswani et al. (2017).

    ``P[pos, 2i] = sin(pos / base^(2i/d))``, ``P[pos, 2i+1] = cos(pos / base^(2i/d))``.
    -> (n, d), float32; add it to token embeddings of shape (..., n, d).
    """
    check_int("n", n, low=1)
    check_int("d", d, low=2)
    check_positive_number("base", base)
    if d % 2:
        raise ValueError(f"sinusoidal positions come in (sin, cos) pairs, so d must be even; got d={d}")
    pos = torch.arange(n, dtype=torch.float64).unsqueeze(1)  # (n, 1)
    freq = torch.exp(-math.log(base) * torch.arange(0, d, 2, dtype=torch.float64) / d)  # (d/2,)
    angles = pos * freq  # (n, 1) * (d/2,) -> (n, d/2)
    enc = torch.stack([angles.sin(), angles.cos()], dim=-1)  # (n, d/2, 2)
    return enc.flatten(-2).float()  # (n, d): sin, cos interleaved


PAIRINGS = ("half", "interleaved")


def apply_rotary(x: torch.Tensor, positions: torch.Tensor, *, base: float = 10000.0,
                 pairing: str = "half") -> torch.Tensor:
    """Rotary position embedding (RoPE) of Su et al. (2021): rotate feature pairs by ``m * theta_j``.

    x: (..., n, d) with d even, positions: (n,) integers m -> rotated x, (..., n, d).
    Pair j (j = 0 .. d/2 - 1) turns by the angle ``m * theta_j``, ``theta_j = base^(-2j/d)``::

        (a, b) -> (a cos(m theta_j) - b sin(m theta_j),  a sin(m theta_j) + b cos(m theta_j))

    pairing: which features make pair j. ``"interleaved"``: features (2j, 2j + 1), as the RoFormer
    paper writes it; ``"half"``: features (j, j + d/2), as Hugging Face's Llama code does. The two
    are the same rotation up to a fixed permutation of the features.
    Rotating queries at m and keys at n makes ``q_m . k_n`` depend on the positions only through
    ``n - m``. The angles are computed in float64, then cast to x's dtype.
    """
    check_choice("pairing", pairing, PAIRINGS)
    check_float("x", x)
    check_positions(positions, x)
    check_positive_number("base", base)
    d = x.shape[-1]
    if d % 2:
        raise ValueError(f"apply_rotary rotates pairs of features, so d must be even; got x {tuple(x.shape)} (d={d})")
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64, device=x.device) / d)  # (d/2,)
    angles = positions.to(torch.float64)[:, None] * theta  # (n, 1) * (d/2,) -> (n, d/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)  # (n, d/2) each
    if pairing == "interleaved":
        a, b = x[..., 0::2], x[..., 1::2]  # (..., n, d/2) each: even and odd features
        rotated = torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1)  # (..., n, d/2, 2)
        return rotated.flatten(-2)  # (..., n, d): pairs back in place
    a, b = x[..., : d // 2], x[..., d // 2 :]  # (..., n, d/2) each: first and second half
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)  # (..., n, d)

