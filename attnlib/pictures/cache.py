"""The key-value cache growing during a real generation: one new query row per step.

:func:`record_cached_generation` runs a greedy generation with a :class:`attnlib.KVCache`,
feeding the prompt once and then one token per step, and records every step: the positions fed,
the cache's length after the step and one head's attention weights (n_new, n_k).
:func:`draw_cache` draws that record: each row is a query, each column a cached key; a step adds
one row and one column, and the row reads every key the cache holds.
"""

import torch

from ..cache import KVCache
from .base import COLORS, Picture, canvas


def _label(ch: str) -> str:
    return {" ": "·", "\n": "↵", "\t": "→"}.get(ch, ch)


@torch.no_grad()
def record_cached_generation(model, prompt: torch.Tensor, n_new: int, *, layer: int = -1, head: int = 0,
                             cache: KVCache | None = None) -> dict:
    """Generate ``n_new`` tokens greedily with a key-value cache, recording each step.

    prompt: (n,) ids. The first step feeds the whole prompt, each later step the newest token
    only, as :func:`attnlib.generate` does (the tokens are the same). The text must fit the
    model's context (no sliding window). Returns ``{"ids": (n + n_new,), "steps": [...]}``; step
    s holds ``positions`` (the positions fed), ``cache_length`` (``len(cache)`` after the step)
    and ``weights`` (n_new, n_k), the attention of ``head`` in ``layer``.
    """
    if prompt.dim() != 1 or len(prompt) < 1:
        raise ValueError(f"prompt must have shape (n,) with n >= 1, got {tuple(prompt.shape)}")
    if len(prompt) + n_new - 1 > model.context:
        raise ValueError(f"{len(prompt)} + {n_new} tokens do not fit the context of {model.context}")
    was_training = model.training
    model.eval()
    cache = KVCache(len(model.blocks)) if cache is None else cache
    ids, feed, steps = prompt.clone(), prompt, []
    for _ in range(n_new):
        start = len(cache)
        logits, weights = model.forward_with_weights(feed[None], cache)  # (1, n_new, vocab), per layer
        steps.append({"positions": list(range(start, start + len(feed))), "cache_length": len(cache),
                      "weights": weights[layer][0, head].clone()})  # (n_new, n_k)
        feed = logits[0, -1].argmax(-1, keepdim=True)  # (1,): the greedy next token
        ids = torch.cat([ids, feed])
    model.train(was_training)
    return {"ids": ids, "steps": steps}


def draw_cache(record: dict, tokens: list[str], *, title: str = "") -> Picture:
    """Rows: the queries of each step; columns: the keys in the cache; shade: the weight.

    ``tokens``: the text of every position (at least the positions fed). A query at position p
    reads the keys 0..p (the causal mask); the prompt's rows also show, in grey, the keys that are
    already in the cache but after p. ``drawn["rows"]`` lists ``(step, query position, keys
    read)``; ``drawn["cache_lengths"]`` the cache's length after each step, as the record read it
    from the cache.
    """
    steps = record["steps"]
    n_rows = sum(len(s["positions"]) for s in steps)
    n_cols = steps[-1]["cache_length"]
    left, right, top, bottom = 4.4, 2.8, 2.2, 1.3  # margins in cell units
    fig, ax = canvas(left + n_cols + right, top + n_rows + bottom)
    y0 = bottom + n_rows  # the top edge of the first row
    for j in range(n_cols):
        ax.text(left + j + 0.5, y0 + 0.3, _label(tokens[j]), ha="center", va="bottom", fontsize=11)
    ax.text(left + n_cols / 2, y0 + 1.2, "keys and values in the cache", ha="center", va="bottom",
            fontsize=10, color=COLORS["key"])
    ax.text(left - 0.3, y0 + 1.2, "query", ha="right", va="bottom", fontsize=10, color=COLORS["query"])
    ax.text(left + n_cols + 0.3, y0 + 1.2, "len(cache)", ha="left", va="bottom", fontsize=10,
            color=COLORS["key"])
    drawn_rows, row = [], 0
    for s, step in enumerate(steps):
        n_k, before = step["cache_length"], step["positions"][0]
        for r, p in enumerate(step["positions"]):
            y = y0 - row - 1
            for j in range(n_k):
                if j > p:  # in the cache, but after the query: the causal mask hides it
                    ax.add_patch(_cell(left + j, y, COLORS["skipped"], 1.0))
                    continue
                ax.add_patch(_cell(left + j, y, COLORS["weights"], min(1.0, float(step["weights"][r, j]))))
                edge = COLORS["output"] if j >= before else "#999999"  # appended in this step, or cached
                ax.add_patch(_cell(left + j, y, "none", 1.0, edge=edge, width=1.6 if j >= before else 0.6))
            ax.text(left - 0.3, y + 0.5, _label(tokens[p]), ha="right", va="center", fontsize=11,
                    color=COLORS["query"])
            drawn_rows.append((s, p, min(n_k, p + 1)))
            row += 1
        y_mid = y0 - row + len(step["positions"]) / 2
        ax.text(0.1, y_mid, "prompt" if s == 0 else f"step {s}", ha="left", va="center", fontsize=10)
        ax.text(left + n_cols + 0.3, y_mid, f"{n_k}", ha="left", va="center", fontsize=10, color=COLORS["key"])
    ax.text(left, 0.45, "shade: attention weight; red edge: appended in that step; grey: masked",
            ha="left", va="center", fontsize=9, color=COLORS["ink"])
    if title:
        ax.set_title(title)
    return Picture(fig, {"rows": drawn_rows, "cache_lengths": [s["cache_length"] for s in steps]})


def _cell(x, y, color, alpha, *, edge=None, width=0.0):
    from matplotlib.patches import Rectangle

    if edge is None:
        return Rectangle((x + 0.04, y + 0.04), 0.92, 0.92, facecolor=color, alpha=alpha, linewidth=0)
    return Rectangle((x + 0.04, y + 0.04), 0.92, 0.92, facecolor="none", edgecolor=edge, linewidth=width)
