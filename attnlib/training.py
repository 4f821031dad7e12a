"""Seeding and the one training loop that every chapter that trains uses."""

import random
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from .checks import check_int, check_positive_int, check_positive_number


def reproducible(seed: int = 0) -> None:
    """Seed every generator (Python, NumPy, PyTorch) and set a short print format for tensors.

    The first call in every notebook. It does not pin threads or kernels: a reader's machine
    computes with its own, so the chapters print only the digits that survive that (see the README).
    """
    check_int("seed", seed, low=0)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_printoptions(precision=4, sci_mode=False)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def train(
    model: nn.Module,
    batch: Callable[[torch.Generator], tuple],
    loss: Callable[[nn.Module, tuple], torch.Tensor],
    *,
    steps: int,
    lr: float,
    seed: int,
    weight_decay: float = 0.0,
    every: int = 0,
    callback: Callable[[int, list[float]], None] | None = None,
) -> list[float]:
    """Train ``model`` with AdamW for ``steps`` steps on fresh batches; return the loss of every step.

    ``batch(generator)`` draws one batch; ``generator`` is seeded with ``seed`` here, so the same
    seed gives the same batches whatever the model is. ``loss(model, batch)`` is the scalar to
    minimise. (AdamW with ``weight_decay=0`` is Adam.) The model's initial weights are the
    caller's: seed before building it. Every ``every`` steps, ``callback(step, losses)`` runs
    (for example to record a validation loss).
    """
    check_positive_int("steps", steps)
    check_positive_number("lr", lr)
    check_int("seed", seed, low=0)
    check_int("every", every, low=0)
    if weight_decay != 0:
        check_positive_number("weight_decay", weight_decay)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    losses = []
    model.train()
    for step in range(1, steps + 1):
        value = loss(model, batch(generator))
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        losses.append(value.item())
        if callback is not None and every and step % every == 0:
            callback(step, losses)
    return losses
