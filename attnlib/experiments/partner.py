"""The partner task: every token must read the label of its partner under a fixed permutation.

The vocabulary is cut into cycles of ``cycle_length`` tokens; ``perm`` maps every token to the
next token of its cycle (``a -> b -> c -> a``). A sequence is a few whole cycles in random order,
and every position also carries a random label. Position i must output the label at the
position that holds ``perm(tokens[i])``: to do so it has to attend to its partner.

Queries and keys see only the tokens, values see only the labels, so the score function alone
decides whether the right position is found. Three heads compete (chapter 4): a tied dot product
of the embeddings, a bilinear score, and a projected, scaled dot product (a Transformer head).
``attention_parts`` and ``obstacle_tests`` read where a trained head's attention goes.
"""

from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from ..attention import attention
from ..checks import check_choice, check_positive_int
from ..training import train

PARTNER_SCORES = ("dot", "bilinear", "projected")


class PartnerBatch(NamedTuple):
    tokens: torch.Tensor  # (batch, n) token ids
    labels: torch.Tensor  # (batch, n) the label each position carries
    partner: torch.Tensor  # (batch, n) position of perm(tokens[b, i]) in sequence b
    targets: torch.Tensor  # (batch, n) label at the partner's position


class PartnerTask:
    """A fixed permutation of ``vocab_size`` tokens made of cycles of ``cycle_length``.

    ``seed`` fixes the permutation. ``batch`` draws sequences of ``n_cycles * cycle_length``
    distinct tokens (whole cycles, so every partner is present) with labels in ``[0, n_labels)``.
    """

    def __init__(self, vocab_size: int = 24, cycle_length: int = 3, n_cycles: int = 3, n_labels: int = 8, seed=0):
        if cycle_length < 2 or vocab_size % cycle_length != 0:
            raise ValueError(
                f"cycle_length must be >= 2 and divide vocab_size, got cycle_length={cycle_length}, "
                f"vocab_size={vocab_size}"
            )
        if not 1 <= n_cycles <= vocab_size // cycle_length or n_labels < 2:
            raise ValueError(
                f"need 1 <= n_cycles <= vocab_size / cycle_length = {vocab_size // cycle_length} and "
                f"n_labels >= 2, got n_cycles={n_cycles}, n_labels={n_labels}"
            )
        self.vocab_size, self.n_cycles, self.n_labels = vocab_size, n_cycles, n_labels
        order = torch.randperm(vocab_size, generator=torch.Generator().manual_seed(seed))
        self.cycles = order.view(-1, cycle_length)  # (vocab_size / cycle_length, cycle_length)
        self.perm = torch.empty(vocab_size, dtype=torch.long)  # (vocab_size,): token -> partner
        self.perm[self.cycles] = self.cycles.roll(-1, dims=1)  # each token -> the next in its cycle

    def batch(self, batch_size: int, generator: torch.Generator | None = None) -> PartnerBatch:
        """Draw ``batch_size`` sequences; ``generator`` makes the draw reproducible."""
        n_all = self.cycles.shape[0]
        picks = torch.rand(batch_size, n_all, generator=generator).argsort(dim=1)[:, : self.n_cycles]
        tokens = self.cycles[picks].flatten(1)  # (batch, n_cycles, cycle_length) -> (batch, n)
        n = tokens.shape[1]
        shuffle = torch.rand(batch_size, n, generator=generator).argsort(dim=1)  # (batch, n)
        tokens = tokens.gather(1, shuffle)  # whole cycles, in random positions
        labels = torch.randint(self.n_labels, (batch_size, n), generator=generator)  # (batch, n)
        position = torch.zeros(batch_size, self.vocab_size, dtype=torch.long)  # (batch, vocab_size)
        position.scatter_(1, tokens, torch.arange(n).expand(batch_size, n))  # token -> its position
        partner = position.gather(1, self.perm[tokens])  # (batch, n)
        return PartnerBatch(tokens, labels, partner, labels.gather(1, partner))

    def _check_model(self, model) -> None:
        if not isinstance(model, PartnerAttention):
            raise TypeError(f"model must be a PartnerAttention, got {type(model).__name__}")
        sizes = (model.embed.num_embeddings, model.values.num_embeddings)
        if sizes != (self.vocab_size, self.n_labels):
            raise ValueError(
                f"model has (vocab_size, n_labels) = {sizes}, the task ({self.vocab_size}, {self.n_labels})"
            )

    def train(
        self, model: "PartnerAttention", steps: int = 400, batch_size: int = 64, lr: float = 0.03, seed: int = 0
    ) -> list[float]:
        """Train ``model`` on the cross-entropy of the targets (:func:`attnlib.train`); returns every step's loss."""
        self._check_model(model)
        return train(model, lambda gen: self.batch(batch_size, gen), _partner_loss, steps=steps, lr=lr, seed=seed)

    @torch.no_grad()
    def evaluate(self, model: "PartnerAttention", batch_size: int = 2000, seed: int = 1) -> tuple[float, float]:
        """Return ``(accuracy, partner_hit)`` on fresh sequences.

        accuracy: fraction of positions whose largest logit is the target label.
        partner_hit: fraction of positions whose largest attention weight is on the partner.
        """
        self._check_model(model)
        b = self.batch(batch_size, torch.Generator().manual_seed(seed))
        logits, weights = model(b.tokens, b.labels)  # (batch, n, n_labels), (batch, n, n)
        accuracy = (logits.argmax(-1) == b.targets).float().mean().item()
        partner_hit = (weights.argmax(-1) == b.partner).float().mean().item()
        return accuracy, partner_hit


class PartnerAttention(nn.Module):
    """One attention layer for the partner task; queries and keys come from one token embedding ``e``.

    ``score="dot"`` (tied dot): ``s_ij = e_i · e_j``, no projections, no scale.
    ``score="bilinear"``: ``s_ij = e_i^T W e_j`` with ``W: (d_model, d_model)`` learnt, initialised
    to the identity (so it starts as the same function as the tied dot model).
    ``score="projected"`` (a Transformer head): ``s_ij = (W_q e_i) · (W_k e_j) / sqrt(d_head)``
    with ``W_q, W_k: (d_head, d_model)`` learnt, initialised with standard deviation
    ``1/sqrt(d_model)``; the same as a bilinear score with ``W = W_q^T W_k / sqrt(d_head)``, of
    rank at most ``d_head``. Its ``2 d_model d_head`` parameters equal the bilinear model's
    ``d_model^2`` when ``d_head = d_model / 2``.

    The embedding starts with standard deviation ``1/sqrt(d_model)``, so ``|e| ≈ 1``. Values are a
    learnt embedding of the labels, of width ``n_labels``, and the attention output is read as the
    label logits.
    tokens, labels: (batch, n) -> logits (batch, n, n_labels), weights (batch, n, n)
    """

    def __init__(self, vocab_size: int, n_labels: int, d_model: int = 16, score: str = "dot", d_head: int = 8):
        super().__init__()
        check_choice("score", score, PARTNER_SCORES)
        check_positive_int("d_model", d_model)
        check_positive_int("d_head", d_head)
        self.score = score
        self.embed = nn.Embedding(vocab_size, d_model)
        nn.init.normal_(self.embed.weight, std=d_model**-0.5)
        self.values = nn.Embedding(n_labels, n_labels)
        self.weight = nn.Parameter(torch.eye(d_model)) if score == "bilinear" else None
        if score == "projected":
            self.w_q = nn.Linear(d_model, d_head, bias=False)  # weight (d_head, d_model)
            self.w_k = nn.Linear(d_model, d_head, bias=False)
            nn.init.normal_(self.w_q.weight, std=d_model**-0.5)
            nn.init.normal_(self.w_k.weight, std=d_model**-0.5)

    def forward(self, tokens: torch.Tensor, labels: torch.Tensor):
        """tokens, labels: (batch, n) -> logits (batch, n, n_labels),
        weights (batch, n, n)."""
        _check_tokens_labels(tokens, labels)
        e = self.embed(tokens)  # (batch, n) -> (batch, n, d_model)
        v = self.values(labels)  # (batch, n) -> (batch, n, n_labels)
        if self.score == "projected":  # a Transformer head: W_q e, W_k e, scaled
            q, k = self.w_q(e), self.w_k(e)  # (batch, n, d_model) -> (batch, n, d_head)
            return attention(q, k, v, score="scaled_dot")
        return attention(e, e, v, score=self.score, weight=self.weight)  # q = k = e


def _check_tokens_labels(tokens: torch.Tensor, labels: torch.Tensor) -> None:
    if tokens.shape != labels.shape or tokens.dim() < 1:
        raise ValueError(
            f"tokens and labels must have the same shape (..., n), got "
            f"{tuple(tokens.shape)} and {tuple(labels.shape)}"
        )


@torch.no_grad()
def attention_parts(model: "PartnerAttention", b: PartnerBatch) -> dict[str, float]:
    """Mean attention weight on each position itself, its partner, its predecessor and the rest.

    The predecessor of position i is the position whose partner i is (for cycles of three or
    more, three different positions). Also ``"row maximum"``, the mean of each row's largest weight.
    """
    _, weights = model(b.tokens, b.labels)  # (batch, n, n)
    own = torch.arange(b.tokens.shape[1]).expand_as(b.partner)  # (batch, n)
    predecessor = b.partner.argsort(dim=1)  # (batch, n): position j with partner[j] == i
    parts = {name: weights.gather(-1, idx[..., None]).mean().item()
             for name, idx in (("self", own), ("partner", b.partner), ("predecessor", predecessor))}
    parts["the rest"] = 1.0 - sum(parts.values())
    parts["row maximum"] = weights.amax(-1).mean().item()
    return parts


@torch.no_grad()
def obstacle_tests(model: "PartnerAttention", task: PartnerTask) -> tuple[torch.Tensor, torch.Tensor]:
    """For every token t: does t weigh its partner above itself, and above its predecessor?

    All ``vocab_size`` tokens are fed as one sequence (labels do not affect the weights), so row
    t of the weights is token t's query. Returns two boolean tensors of shape ``(vocab_size,)``.
    """
    task._check_model(model)
    tokens = torch.arange(task.vocab_size)[None]  # (1, vocab_size): every token once
    _, w = model(tokens, torch.zeros_like(tokens))  # (1, vocab, vocab)
    on_partner = w[0].gather(1, task.perm[:, None])[:, 0]  # (vocab,)
    on_predecessor = w[0].gather(1, task.perm.argsort()[:, None])[:, 0]  # (vocab,)
    return on_partner > w[0].diagonal(), on_partner > on_predecessor


def _partner_loss(model: PartnerAttention, b: PartnerBatch) -> torch.Tensor:
    logits, _ = model(b.tokens, b.labels)  # (batch, n, n_labels)
    return F.cross_entropy(logits.flatten(0, 1), b.targets.flatten())  # (batch * n, n_labels)
