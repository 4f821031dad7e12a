"""A synthetic task whose answer depends on one token ``distance`` positions before the end, and nothing else."""

import torch


def remember_first_token(
    n_seqs: int,
    distance: int,
    *,
    n_classes: int = 8,
    n_distractors: int = 8,
    length: int | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences of distractors with one informative token ``distance`` positions before the last one.

    Token ids ``0 .. n_classes - 1`` are the informative tokens; ids ``n_classes ..
    n_classes + n_distractors - 1`` are distractors. Position ``length - 1 - distance`` holds an
    informative token drawn uniformly; every other position holds a uniform random distractor.
    The label is the informative token: ``label = tokens[:, -1 - distance]`` (see :func:`label_of`).
    ``length`` defaults to ``distance + 1``, so the informative token is the first token; a longer
    ``length`` only adds distractors before it.

    -> tokens (n_seqs, length) int64, labels (n_seqs,) int64. Same ``generator`` state, same batch.
    """
    length = distance + 1 if length is None else length
    if n_seqs < 1 or distance < 0 or n_classes < 2 or n_distractors < 1:
        raise ValueError(
            f"need n_seqs >= 1, distance >= 0, n_classes >= 2, n_distractors >= 1; got n_seqs={n_seqs}, "
            f"distance={distance}, n_classes={n_classes}, n_distractors={n_distractors}"
        )
    if length < distance + 1:
        raise ValueError(f"length must be at least distance + 1 = {distance + 1}, got length={length}")
    tokens = n_classes + torch.randint(n_distractors, (n_seqs, length), generator=generator)  # (n_seqs, length)
    labels = torch.randint(n_classes, (n_seqs,), generator=generator)  # (n_seqs,)
    tokens[:, length - 1 - distance] = labels
    return tokens, labels


def label_of(tokens: torch.Tensor, distance: int) -> torch.Tensor:
    """The task's label rule: the token ``distance`` positions before the last one.

    tokens: (n_seqs, length) -> (n_seqs,)
    """
    if tokens.dim() != 2 or not 0 <= distance < tokens.shape[1]:
        raise ValueError(f"need tokens (n_seqs, length) with length > distance={distance}, got {tuple(tokens.shape)}")
    return tokens[:, -1 - distance]
