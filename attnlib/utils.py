"""Reproducibility: the first call in every notebook."""

import random

import numpy as np
import torch


def reproducible(seed: int = 0) -> None:
    """Seed every generator and pin PyTorch to one thread.

    With one intra-op thread every reduction runs in the same order, so results are the
    same bit for bit whatever ``OMP_NUM_THREADS`` says. Also sets a short print format
    (4 decimals, no scientific notation) for tensors.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.set_printoptions(precision=4, sci_mode=False)
