"""A toy task that needs attention (associative recall) and the one-head model that learns it."""

import math
from collections.abc import Callable

import torch
from torch import nn

from ..analysis import attention_entropy
from ..attention import attention
from ..checks import check_choice, check_positive_number
from ..training import train


def retrieval_batch(
    batch_size: int, n_pairs: int, n_symbols: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Associative recall: ``n_pairs`` (key, value) symbol pairs and a query equal to one of the keys.

    The answer is the value paired with the query's key; the other ``n_pairs - 1`` pairs are
    distractors. Keys are distinct within a row, values are drawn with replacement.
    -> keys (batch, n_pairs), values (batch, n_pairs), query (batch,), target (batch,); all int64.
    """
    if batch_size < 1 or n_pairs < 1 or n_symbols < n_pairs:
        raise ValueError(
            f"need batch_size >= 1 and 1 <= n_pairs <= n_symbols, got batch_size={batch_size}, "
            f"n_pairs={n_pairs}, n_symbols={n_symbols}"
        )
    order = torch.rand(batch_size, n_symbols, generator=generator).argsort(dim=-1)  # (batch, n_symbols)
    keys = order[:, :n_pairs]  # (batch, n_pairs): distinct symbols
    values = torch.randint(n_symbols, (batch_size, n_pairs), generator=generator)  # (batch, n_pairs)
    position = torch.randint(n_pairs, (batch_size, 1), generator=generator)  # (batch, 1): the pair asked for
    query = keys.gather(1, position).squeeze(1)  # (batch,)
    target = values.gather(1, position).squeeze(1)  # (batch,)
    return keys, values, query, target


class RetrievalAttention(nn.Module):
    """One attention head for :func:`retrieval_batch`: the query symbol attends over
    the keys.

    ``q = W_q e(query)``, ``k_j = W_k e(key_j)``, ``v_j = f(value_j)``, then
    ``logits = W_out attention(q, k, v)``. ``e`` and ``f`` are embeddings with N(0, 1)
    components and ``W_q``, ``W_k`` start as N(0, 1/d_head), so q and k start with
    unit-variance components.
    score: ``"dot"`` or ``"scaled_dot"`` (divide by sqrt(d_head)).
    w_q_gain: ``W_q`` starts as ``w_q_gain`` times that draw (the same random numbers
    whatever the gain), so ``score="dot", w_q_gain=d_head**-0.5`` starts as the same
    function as ``score="scaled_dot"`` from the same seed.
    keys, values: (batch, n_pairs), query: (batch,) -> logits (batch, n_symbols),
    weights (batch, n_pairs)
    """

    def __init__(self, n_symbols: int, d_head: int, score: str = "scaled_dot",
                 w_q_gain: float = 1.0):
        super().__init__()
        check_choice("score", score, ("dot", "scaled_dot"))
        check_positive_number("w_q_gain", w_q_gain)
        self.score = score
        self.key_embedding = nn.Embedding(n_symbols, d_head)
        self.value_embedding = nn.Embedding(n_symbols, d_head)
        self.w_q = nn.Linear(d_head, d_head, bias=False)
        self.w_k = nn.Linear(d_head, d_head, bias=False)
        nn.init.normal_(self.w_q.weight, std=d_head**-0.5)
        nn.init.normal_(self.w_k.weight, std=d_head**-0.5)
        with torch.no_grad():
            self.w_q.weight.mul_(w_q_gain)
        self.readout = nn.Linear(d_head, n_symbols)

    def forward(self, keys: torch.Tensor, values: torch.Tensor, query: torch.Tensor):
        if (keys.dim() != 2 or values.shape != keys.shape
                or query.shape != keys.shape[:1]):
            raise ValueError(
                "expected keys (batch, n_pairs), values (batch, n_pairs), "
                f"query (batch,); got {tuple(keys.shape)}, {tuple(values.shape)}, "
                f"{tuple(query.shape)}"
            )
        q = self.w_q(self.key_embedding(query)).unsqueeze(1)  # (batch, 1, d_head)
        k = self.w_k(self.key_embedding(keys))  # (batch, n_pairs, d_head)
        v = self.value_embedding(values)  # (batch, n_pairs) -> (batch, n_pairs, d_head)
        # out (batch, 1, d_head), weights (batch, 1, n_pairs)
        out, weights = attention(q, k, v, score=self.score)
        return (self.readout(out.squeeze(1)),  # (batch, n_symbols)
                weights.squeeze(1))  # (batch, n_pairs)


def nudge(model: nn.Module) -> None:
    """Move every parameter of ``model`` by one rounding step, in place: each entry becomes the next
    representable number towards +inf (``torch.nextafter``), a relative change of about 1e-7 in float32.
    """
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.nextafter(p, torch.full_like(p, math.inf)))


def initial_model(
    score: str, *, d_head: int, n_symbols: int, seed: int, nudged: bool = False, w_q_gain: float = 1.0
) -> RetrievalAttention:
    """The untrained model of :func:`train_retrieval`: weights from ``torch.manual_seed(seed)`` inside
    ``torch.random.fork_rng`` (the global generator is left as it was), then :func:`nudge` if ``nudged``.
    ``w_q_gain`` scales the initial ``W_q`` (:class:`RetrievalAttention`).
    """
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = RetrievalAttention(n_symbols, d_head, score=score, w_q_gain=w_q_gain)
    if nudged:
        nudge(model)
    return model


def train_retrieval(
    score: str, *, d_head: int, n_symbols: int, n_pairs: int, steps: int, batch_size: int = 64,
    lr: float = 1e-3, seed: int = 0, nudged: bool = False, w_q_gain: float = 1.0, every: int = 0,
    callback: Callable[[int, RetrievalAttention], None] | None = None,
) -> tuple[RetrievalAttention, list[float]]:
    """Train a fresh :class:`RetrievalAttention` on fresh batches (:func:`attnlib.train`); return it and the losses.

    The same ``seed`` gives the same initial weights (:func:`initial_model`) and the same batches
    whatever ``score`` is, so two runs differ only in the scale of the scores. ``nudged=True``
    moves every initial weight by one rounding step (:func:`nudge`) and changes nothing else: the
    twin of the run with ``nudged=False``. ``w_q_gain`` scales the initial ``W_q``: under Adam,
    whose steps do not depend on the size of the gradient, ``score="dot"`` is ``score="scaled_dot"``
    with ``W_q`` started ``sqrt(d_head)`` times larger and stepped ``sqrt(d_head)`` times faster, so
    the gain separates the start from the step size. Every ``every`` steps,
    ``callback(step, model)`` runs (for example to record the weights). Loss: cross-entropy of the answer.
    """
    model = initial_model(score, d_head=d_head, n_symbols=n_symbols, seed=seed, nudged=nudged,
                          w_q_gain=w_q_gain)
    losses = train(
        model,
        lambda gen: retrieval_batch(batch_size, n_pairs, n_symbols, generator=gen),
        retrieval_loss,
        steps=steps, lr=lr, seed=seed, every=every,
        callback=None if callback is None else lambda step, _: callback(step, model),
    )
    return model, losses


def retrieval_loss(model: RetrievalAttention, batch: tuple) -> torch.Tensor:
    """Cross-entropy of the answer: ``batch`` is what :func:`retrieval_batch` returns."""
    keys, values, query, target = batch
    logits, _ = model(keys, values, query)  # (batch, n_symbols)
    return nn.functional.cross_entropy(logits, target)


def evaluate(model: RetrievalAttention, test: tuple) -> tuple[float, float]:
    """Cross-entropy (nats) and accuracy of ``model`` on ``test``, a batch of :func:`retrieval_batch`."""
    keys, values, query, target = test
    with torch.no_grad():
        logits, _ = model(keys, values, query)  # (batch, n_symbols)
    return nn.functional.cross_entropy(logits, target).item(), (logits.argmax(-1) == target).float().mean().item()


def twin_runs(score: str, *, seed: int, test: tuple, every: int = 25, **setting) -> dict:
    """A run of :func:`train_retrieval` and its twin (``nudged=True``), compared along the way.

    ``setting``: the other arguments of :func:`train_retrieval` (``d_head``, ``n_symbols``,
    ``n_pairs``, ``steps``, ``batch_size``, ``lr``, ``w_q_gain``); ``test``: a batch of
    :func:`retrieval_batch` to evaluate on. Returns ``loss`` and ``accuracy`` on ``test``
    (run, twin), the training ``curves`` (run, twin), ``gap``: the twins' relative distance
    ``||θ - θ'|| / ||θ||`` at steps 0, every, 2 every, ..., and ``start_entropy``: the mean entropy
    of the untrained run's attention weights on ``test`` (nats).
    """
    from torch.nn.utils import parameters_to_vector

    def flat(model):
        return parameters_to_vector(model.parameters()).detach().clone()

    found = {}
    for nudged in (False, True):
        start = initial_model(score, d_head=setting["d_head"], n_symbols=setting["n_symbols"], seed=seed,
                              nudged=nudged, w_q_gain=setting.get("w_q_gain", 1.0))
        snapshots = [flat(start)]
        model, curve = train_retrieval(score, seed=seed, nudged=nudged, every=every,
                                       callback=lambda _, m, s=snapshots: s.append(flat(m)), **setting)
        found[nudged] = (evaluate(model, test), curve, torch.stack(snapshots), start)
    (run, curve, theta, start), (twin, twin_curve, theta_twin, _) = found[False], found[True]
    with torch.no_grad():
        _, w0 = start(*test[:3])  # (batch, n_pairs): the weights before training
    return {
        "loss": (run[0], twin[0]),
        "accuracy": (run[1], twin[1]),
        "curves": (curve, twin_curve),
        "gap": (theta - theta_twin).norm(dim=-1) / theta.norm(dim=-1),  # (steps // every + 1,)
        "start_entropy": attention_entropy(w0).mean().item(),
    }
