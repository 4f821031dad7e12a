"""Positional information: attention itself does not know where a token is."""

import math

import torch


def sinusoidal_positions(n: int, d: int, base: float = 10000.0) -> torch.Tensor:
    """The sinusoidal position encoding of Vaswani et al. (2017).

    ``P[pos, 2i] = sin(pos / base^(2i/d))``, ``P[pos, 2i+1] = cos(pos / base^(2i/d))``.
    -> (n, d), float32; add it to token embeddings of shape (..., n, d).
    """
    if n < 1 or d < 2 or d % 2:
        raise ValueError(f"need n >= 1 and an even d >= 2, got n={n}, d={d}")
    pos = torch.arange(n, dtype=torch.float64).unsqueeze(1)  # (n, 1)
    freq = torch.exp(-math.log(base) * torch.arange(0, d, 2, dtype=torch.float64) / d)  # (d/2,)
    angles = pos * freq  # (n, 1) * (d/2,) -> (n, d/2)
    enc = torch.stack([angles.sin(), angles.cos()], dim=-1)  # (n, d/2, 2)
    return enc.flatten(-2).float()  # (n, d): sin, cos interleaved
