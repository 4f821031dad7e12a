"""The online softmax, block by block: the running maximum m, the running sum ℓ, the rescale (chapter 5).

``online_steps`` reads the state of :func:`attnlib.online_normalizer` after every block of one row
of scores (by running it on each block-aligned prefix, so the numbers are the library's own), and
``draw_online_softmax`` draws them: the scores with the running maximum above, and below, for every
block, the old sum before the rescale, the same sum after it, and the block's own contribution.
"""

import math

import torch

from ..checks import check_positive_int
from ..softmax import online_normalizer
from .base import COLORS, Picture


def online_steps(scores: torch.Tensor, block_size: int) -> list[dict]:
    """The online normaliser's state after each block of one row ``scores: (n_k,)``.

    Block t covers keys ``[start, stop)``. ``m`` and ``l`` are what :func:`attnlib.online_normalizer`
    holds after it (the maximum and the sum of ``exp(s_j - m)`` over the keys read so far);
    ``m_before``, ``l_before`` what it held before; ``rescale = exp(m_before - m)``, the factor the
    old sum is multiplied by; ``carried = l_before * rescale``; ``added = l - carried``, the block's
    own ``sum_j exp(s_j - m)``.
    """
    if scores.dim() != 1 or len(scores) == 0:
        raise ValueError(f"scores must be one non-empty row (n_k,), got shape {tuple(scores.shape)}")
    check_positive_int("block_size", block_size)
    steps, m_before, l_before = [], -math.inf, 0.0
    for start in range(0, len(scores), block_size):
        stop = min(start + block_size, len(scores))
        m, l = online_normalizer(scores[:stop], block_size)  # noqa: E741  the state after this block
        m, l = m.item(), l.item()  # noqa: E741
        rescale = math.exp(m_before - m) if math.isfinite(m_before) else 0.0
        carried = l_before * rescale
        steps.append({"start": start, "stop": stop, "m_before": m_before, "l_before": l_before,
                      "m": m, "l": l, "rescale": rescale, "carried": carried, "added": l - carried})
        m_before, l_before = m, l
    return steps


def draw_online_softmax(scores: torch.Tensor, block_size: int) -> Picture:
    """Two stacked panels for one row of scores read in blocks of ``block_size`` keys.

    Top: each score (a bar), the blocks shaded in turn, and the running maximum m after each block.
    Bottom: for every block, the sum before it (outline), after the rescale by ``exp(m - m')``
    (grey) with the block's own terms stacked on top (colour): their total is the new ℓ.
    ``drawn`` holds the scores, the blocks and every step's numbers (see :func:`online_steps`).
    """
    import matplotlib.pyplot as plt

    from ..display import COLUMN_WIDTH, PANEL_HEIGHT

    steps = online_steps(scores, block_size)
    s = scores.detach().double().tolist()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(COLUMN_WIDTH, 2 * PANEL_HEIGHT + 1.2))
    for t, step in enumerate(steps):
        lo, hi = step["start"] - 0.5, step["stop"] - 0.5
        if t % 2 == 0:
            top.axvspan(lo, hi, color=COLORS["skipped"], alpha=0.5, lw=0)
        top.text((lo + hi) / 2, 1.0, f"block {t + 1}", transform=top.get_xaxis_transform(),
                 ha="center", va="bottom", fontsize=11)
        top.hlines(step["m"], lo, hi, color=COLORS["output"], lw=2.5,
                   label="running maximum m" if t == 0 else None)
    top.bar(range(len(s)), s, color=COLORS["query"], width=0.6, label="score $s_j$")
    top.axhline(0, color=COLORS["ink"], lw=0.8)
    top.set_xlabel("key j")
    top.set_ylabel("score")
    top.set_xticks(range(len(s)))
    top.set_xlim(-0.5, len(s) - 0.5)
    top.legend(loc="upper left", bbox_to_anchor=(0, -0.25), ncol=2)

    x = torch.arange(len(steps), dtype=torch.float64)
    width = 0.34
    before = [step["l_before"] for step in steps]
    carried = [step["carried"] for step in steps]
    added = [step["added"] for step in steps]
    bottom.bar(x - width / 2, before, width, fill=False, edgecolor=COLORS["ink"], lw=1.2,
               label="ℓ before the block")
    bottom.bar(x + width / 2, carried, width, color=COLORS["skipped"], edgecolor=COLORS["ink"],
               lw=0.6, label="ℓ times $e^{m - m'}$")
    bottom.bar(x + width / 2, added, width, bottom=carried, color=COLORS["key"],
               label="the block's terms $e^{s_j - m'}$")
    for t, step in enumerate(steps):
        if t > 0:  # the old sum shrinks by the rescale factor
            bottom.annotate("", xy=(t + width / 2, step["carried"]), xytext=(t - width / 2, step["l_before"]),
                            arrowprops={"arrowstyle": "-|>", "color": COLORS["ink"], "lw": 1.2})
            bottom.text(t - width / 2, step["l_before"], f"×{step['rescale']:.2f}", ha="center",
                        va="bottom", fontsize=11)
    bottom.set_xticks(x.tolist(), [f"block {t + 1}\nm = {st['m']:.2f}" for t, st in enumerate(steps)])
    bottom.set_ylabel("running sum ℓ")
    bottom.set_ylim(0, 1.2 * max(st["l"] for st in steps))
    bottom.legend(loc="upper left", bbox_to_anchor=(0, -0.32), ncol=2)
    drawn = {"scores": s, "blocks": [(st["start"], st["stop"]) for st in steps], "steps": steps}
    return Picture(fig, drawn)
