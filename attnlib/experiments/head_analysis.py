"""Chapter 9: reading the heads of a pretrained encoder without hiding where their attention goes.

A BERT-style map of weights w (rows = queries, columns = keys) starts with ``[CLS]`` and ends with
``[SEP]``; the tokens in between are the *words*. Heads often park weight on the two special tokens,
so every quantity here is about the words' rows and says what happens to the parked mass:

- ``special_share``  the share of the words' attention mass on ``[CLS]`` and ``[SEP]``
- ``word_distance``  mean |i - j| of the mass words give to words, weighted by that mass (parked
  mass counts neither as near nor as far); ``word_share_beyond``: that mass's share beyond a distance
- ``word_attention``  the old view: drop both special tokens and renormalise each row (hides the mass)
- ``value_vectors``  Kobayashi et al.'s (2020) ``f_h(x_j) = W_o^h (W_v^h x_j + b_v^h)``: what key j
  adds to a query's output per unit of weight; ``alpha_ij * ||f_h(x_j)||`` is value-weighted attention
- ``asymmetry``  ``||W - W^T||_F / ||W||_F`` of a similarity matrix W (0 symmetric, 2 antisymmetric)
- ``without_head``  a head removed (its columns of the output projection zeroed), to test it by cause
- ``word_shift``  how far the words' vectors move, ``1 - cos``, between two runs of the same text

All of these take any non-negative "mass" of shape (..., n, n), raw weights or value-weighted ones.
``PASSAGES`` are frozen paragraphs of this book's own prose (as of November 2026, math written out
in words), long enough (200 to 254 word-piece tokens) for a question about distance.
"""

from contextlib import contextmanager

import torch

from ..layers import MultiHeadSelfAttention

PASSAGES = (
    "Every introduction to the Transformer repeats one claim: self-attention handles long-range "
    "dependencies better than recurrence, because every position reaches every other position in a single "
    "step, while a recurrent network has to pass information along one position at a time. The difficulty "
    "of learning through long chains of steps is old: Bengio and his colleagues showed that gradients "
    "through many recurrent steps tend to vanish, and the LSTM was designed to keep them alive. This chapter "
    "measures the claim three ways, on small layers and models. First, paths: from the layers themselves, "
    "which outputs depend on which inputs, how many layers or steps connect the first position to the last, "
    "and how much arithmetic one layer costs. Second, a task: a synthetic task whose answer depends on one "
    "token a fixed distance back and on nothing else, learnt by a one-layer self-attention model and by an "
    "LSTM of the same size, for distances up to two hundred and fifty-six. Third, signal: how strongly the "
    "last output reacts to the input far back, at initialisation and after training. Self-attention is "
    "dense: every output depends on every input, and a recurrent step moves information one position.",
    "The paper gives its reason in two sentences and a footnote: the authors suspect that for large widths "
    "the dot products grow large in magnitude, pushing the softmax into regions where it has extremely small "
    "gradients, and the footnote shows that if the components of the query and the key are independent with "
    "mean zero and variance one, then their dot product has a variance equal to the width. This chapter "
    "derives the variance, measures it, measures what large scores do to the softmax and its gradient, "
    "trains a small model with and without the factor, and pins down which width the factor must use. The "
    "derivation assumes independent components of unit variance. That holds for random vectors and roughly "
    "at initialisation, when the projections are random and the inputs are normalised; in a trained model "
    "queries and keys are neither independent nor of unit variance. The factor does not keep the scores at "
    "variance one forever: it sets a starting point whose scale does not depend on the width, and training "
    "moves from there. A softmax over scores whose spread grows with the width puts almost all of its "
    "weight on the largest score once the width is large: the gaps between the scores grow too, and the "
    "weights depend on the exponentials of the gaps.",
    "To measure memory deterministically we count bytes rather than ask the operating system. The class "
    "below watches every operation run inside it: when an operation returns a tensor with new storage it "
    "adds the storage's bytes, and when that storage is freed it subtracts them; the largest total is the "
    "peak extra memory of the call, the output included and the inputs not. The count is the same on every "
    "run. What it cannot see is scratch memory that a fused kernel allocates internally; we come back to "
    "that below. One head's score matrix outgrows a small cache long before it outgrows the memory of a "
    "workstation. A layer has many heads, and the attention function keeps several such matrices alive at "
    "once, so the practical limits are lower still. The softmax chapter computed the normaliser of a softmax "
    "in one pass over the scores, block by block, keeping a running maximum and a running sum of "
    "exponentials. When a new block arrives with its own maximum, the running sum is rescaled by the "
    "exponential of the difference between the old and the new maximum, and the new block's exponentials "
    "are added.",
)


def _check_map(mass: torch.Tensor) -> None:
    if not isinstance(mass, torch.Tensor) or not mass.is_floating_point():
        raise TypeError(f"mass must be a floating-point tensor, got {getattr(mass, 'dtype', type(mass).__name__)}")
    if mass.dim() < 2 or mass.shape[-1] != mass.shape[-2] or mass.shape[-1] < 3:
        raise ValueError(f"mass must have shape (..., n, n) with n >= 3 ([CLS], words, [SEP]), got {tuple(mass.shape)}")


def _word_rows(mass: torch.Tensor) -> torch.Tensor:
    """(..., n, n) -> (..., m, n): the rows of the m = n - 2 words, over every key."""
    _check_map(mass)
    return mass[..., 1:-1, :]  # (..., n, n) -> (..., n - 2, n)


def special_share(mass: torch.Tensor) -> torch.Tensor:
    """Share of the words' mass on ``[CLS]`` (first key) and ``[SEP]`` (last key).

    ``sum_i (m_i0 + m_i,n-1) / sum_i sum_j m_ij`` over word queries i; for weights (rows summing to 1)
    this is the mean over the words of the weight they park. mass: (..., n, n) -> (...)
    """
    rows = _word_rows(mass)  # (..., m, n)
    parked = rows[..., [0, -1]].sum((-2, -1))  # (..., m, 2) -> (...)
    return parked / rows.sum((-2, -1))  # (...)


def _word_block(mass: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """-> the words-to-words block (..., m, m) and |i - j| for it (m, m)."""
    block = _word_rows(mass)[..., 1:-1]  # (..., m, n) -> (..., m, m)
    pos = torch.arange(block.shape[-1], device=mass.device)  # (m,)
    return block, (pos[:, None] - pos[None, :]).abs()  # (m, 1) - (1, m) -> (m, m)


def word_distance(mass: torch.Tensor) -> torch.Tensor:
    """Mean distance, in tokens, of the mass words give to words, weighted by that mass.

    ``sum_ij m_ij |i - j| / sum_ij m_ij`` over words i, j: a row that parks 90% of its weight on
    ``[CLS]``/``[SEP]`` counts a tenth as much as one that parks none (renormalising each row, as
    ``word_attention`` does, would count both fully). 0 if the words get no mass at all.
    mass: (..., n, n) -> (...)
    """
    block, dist = _word_block(mass)  # (..., m, m), (m, m)
    total = block.sum((-2, -1))  # (...)
    moved = (block * dist.to(block.dtype)).sum((-2, -1))  # (...)
    return torch.where(total > 0, moved / total.clamp_min(torch.finfo(total.dtype).tiny), 0.0)


def word_share_beyond(mass: torch.Tensor, distance: int) -> torch.Tensor:
    """Share of the mass words give to words that lands more than ``distance`` tokens away.

    ``sum_{|i-j| > distance} m_ij / sum_ij m_ij`` over words i, j; 0 if the words get no mass.
    mass: (..., n, n) -> (...)
    """
    if isinstance(distance, bool) or not isinstance(distance, int) or distance < 0:
        raise ValueError(f"distance must be a non-negative int, got {distance!r}")
    block, dist = _word_block(mass)  # (..., m, m), (m, m)
    total = block.sum((-2, -1))  # (...)
    far = (block * (dist > distance)).sum((-2, -1))  # (...)
    return torch.where(total > 0, far / total.clamp_min(torch.finfo(total.dtype).tiny), 0.0)


def word_attention(weights: torch.Tensor) -> torch.Tensor:
    """Drop ``[CLS]`` and ``[SEP]`` as queries and keys, renormalise each row over the words.

    ``w'_ij = w_ij / sum_k w_ik`` for words i, j, k. This hides how much weight was parked: a row
    with 0.01 left on words becomes as loud as a row with 1.0. weights: (..., n, n) -> (..., m, m)
    """
    block, _ = _word_block(weights)  # (..., m, m)
    return block / block.sum(-1, keepdim=True)  # (..., m, m)


def value_vectors(attn: MultiHeadSelfAttention, x: torch.Tensor) -> torch.Tensor:
    """What each key adds to a query's output per unit of weight, head by head (Kobayashi et al. 2020).

    ``f_h(x_j) = W_o^h (W_v^h x_j + b_v^h)``, where W_v^h are head h's rows of the value projection
    and W_o^h head h's columns of the output projection, so that the layer's output is
    ``y_i = sum_h sum_j alpha^h_ij f_h(x_j) + b_o``. x: (..., n, d_model) -> (..., n_heads, n, d_model)
    """
    if not isinstance(attn, MultiHeadSelfAttention):
        raise TypeError(f"attn must be an attnlib.MultiHeadSelfAttention, got {type(attn).__name__}")
    if x.dim() < 2 or x.shape[-1] != attn.d_model:
        raise ValueError(f"x must have shape (..., n, {attn.d_model}), got {tuple(x.shape)}")
    h, d, d_head = attn.n_heads, attn.d_model, attn.d_head
    w_v, b_v = attn.qkv.weight[2 * d :], attn.qkv.bias[2 * d :]  # (d_model, d_model), (d_model,)
    v = x @ w_v.T + b_v  # (..., n, d_model) @ (d_model, d_model) -> (..., n, d_model)
    v = v.unflatten(-1, (h, d_head)).transpose(-3, -2)  # -> (..., h, n, d_head)
    w_o = attn.out.weight.T.unflatten(0, (h, d_head))  # (d_model, d_model) -> (h, d_head, d_model)
    return v @ w_o  # (..., h, n, d_head) @ (h, d_head, d_model) -> (..., h, n, d_model)


def value_weighted(weights: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """Value-weighted attention ``||alpha_ij f(x_j)|| = alpha_ij ||f(x_j)||`` (weights are >= 0).

    weights: (..., n_q, n_k), vectors: (..., n_k, d_model) -> (..., n_q, n_k)
    """
    if weights.shape[:-2] != vectors.shape[:-2] or weights.shape[-1] != vectors.shape[-2]:
        raise ValueError(f"weights (..., n_q, n_k) {tuple(weights.shape)} and vectors (..., n_k, d) "
                         f"{tuple(vectors.shape)} do not match")
    return weights * vectors.norm(dim=-1).unsqueeze(-2)  # (..., n_q, n_k) * (..., 1, n_k)


def asymmetry(w: torch.Tensor) -> torch.Tensor:
    """``||W - W^T||_F / ||W||_F``: 0 for a symmetric W, 2 for an antisymmetric one. (..., d, d) -> (...)"""
    if w.dim() < 2 or w.shape[-1] != w.shape[-2]:
        raise ValueError(f"w must be square, shape (..., d, d), got {tuple(w.shape)}")
    return (w - w.transpose(-2, -1)).norm(dim=(-2, -1)) / w.norm(dim=(-2, -1))


@contextmanager
def without_head(attn: MultiHeadSelfAttention, head: int):
    """Inside the ``with`` block, head ``head`` of ``attn`` adds nothing to the layer's output.

    The layer's output is ``sum_h W_o^h o_h + b_o``; zeroing head h's columns W_o^h of the output
    projection removes its term and nothing else (its weights are still computed). The columns
    are restored on leaving the block, also after an error.
    """
    if not isinstance(attn, MultiHeadSelfAttention):
        raise TypeError(f"attn must be an attnlib.MultiHeadSelfAttention, got {type(attn).__name__}")
    if isinstance(head, bool) or not isinstance(head, int) or not 0 <= head < attn.n_heads:
        raise ValueError(f"head must be an int in [0, {attn.n_heads}), got {head!r}")
    cols = slice(head * attn.d_head, (head + 1) * attn.d_head)
    saved = attn.out.weight.data[:, cols].clone()  # (d_model, d_head)
    attn.out.weight.data[:, cols] = 0
    try:
        yield attn
    finally:
        attn.out.weight.data[:, cols] = saved


def word_shift(a: torch.Tensor, b: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
    """Mean ``1 - cos(a_i, b_i)`` over the positions i where ``words`` is True.

    a, b: (..., n, d_model) vectors of the same tokens from two runs; words: (..., n) bool -> ()
    """
    if a.shape != b.shape or a.shape[:-1] != words.shape:
        raise ValueError(f"a, b (..., n, d) and words (..., n) must match, got {tuple(a.shape)}, "
                         f"{tuple(b.shape)}, {tuple(words.shape)}")
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1)  # (..., n)
    return (1 - cos)[words].mean()
