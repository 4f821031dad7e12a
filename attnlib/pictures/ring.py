"""Ring attention as pictures, read from what the processes of a real ring recorded.

Both functions take the per-process records of one call of :func:`attnlib.ring_attention`: for each
process, its :class:`attnlib.ring.RingStats` (or its ``forward`` list of per-step dicts), in rank order.

- :func:`draw_ring`: which key/value block each process holds at each step, and whether it computed
  with it (a causal ring skips the blocks whose keys all come after the process's queries);
- :func:`draw_work`: the score entries each process computed at each step, one panel per layout.
"""

from ..display import COLUMN_WIDTH, PANEL_HEIGHT
from .base import COLORS, Picture, arrow, box, canvas

PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]


def steps_of(record) -> list[dict]:
    """The per-step dicts of one process's record (a RingStats or its ``forward`` list)."""
    return record.forward if hasattr(record, "forward") else list(record)


def draw_ring(records, title: str | None = None) -> Picture:
    """A grid: one row per process, one column per step; cell (r, t) names the block process r holds
    at step t, coloured by the process it came from, grey where it computed nothing with it.
    Arrows follow the blocks from one process to the next. ``drawn``: ``holds[r][t]`` (the source
    process) and ``computed[r][t]`` (whether any score was computed), as recorded."""
    steps = [steps_of(r) for r in records]
    P = len(steps)
    holds = [[s["source"] for s in row] for row in steps]
    computed = [[s["score_entries"] > 0 for s in row] for row in steps]
    cell_w, cell_h, left, top = 1.6, 0.8, 1.9, 0.7
    fig, ax = canvas(left + P * cell_w + 0.2, P * cell_h + top + 0.6, inches=COLUMN_WIDTH)
    height = P * cell_h + 0.6
    for t in range(P):
        ax.text(left + (t + 0.5) * cell_w, height + 0.25, f"step {t}", ha="center", va="center", fontsize=11)
    for r in range(P):
        y = height - (r + 1) * cell_h
        ax.text(left - 0.1, y + cell_h / 2, f"process {r}", ha="right", va="center", fontsize=11)
        for t in range(P):
            source = holds[r][t]
            color = PALETTE[source % len(PALETTE)] if computed[r][t] else COLORS["skipped"]
            label = f"K, V of {source}" if computed[r][t] else f"({source}: skipped)"
            box(ax, left + t * cell_w + 0.08, y + 0.08, cell_w - 0.16, cell_h - 0.16, label,
                color=color, alpha=0.35 if computed[r][t] else 0.6, fontsize=10)
            if t < P - 1 and r < P - 1:  # the block moves on to the next process for the next step
                arrow(ax, (left + (t + 0.85) * cell_w, y + 0.2), (left + (t + 1.15) * cell_w, y - 0.2),
                      color=COLORS["ink"])
    ax.text(left + P * cell_w / 2, 0.25, f"each block moves to the next process; process {P - 1} sends to process 0",
            ha="center", va="center", fontsize=10, color=COLORS["ink"])
    if title:
        ax.set_title(title)
    return Picture(fig, {"holds": holds, "computed": computed})


def draw_work(runs: dict, unit: int = 1) -> Picture:
    """One panel per layout (``runs[layout]`` = the records of a causal call in that layout): bars of
    the score entries each process computed at each step, divided by ``unit``, and a dashed line at
    each step's largest (a step lasts as long as its slowest process). ``drawn[layout][r][t]``: the
    entries drawn (before dividing by ``unit``)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(runs), 1, figsize=(COLUMN_WIDTH, len(runs) * PANEL_HEIGHT), sharey=True,
                             squeeze=False, layout="constrained")
    drawn = {}
    for ax, (layout, records) in zip(axes[:, 0], runs.items(), strict=True):
        work = [[s["score_entries"] for s in steps_of(r)] for r in records]
        drawn[layout] = work
        P = len(work)
        width = 0.8 / P
        for r, row in enumerate(work):
            xs = [t - 0.4 + (r + 0.5) * width for t in range(P)]
            ax.bar(xs, [w / unit for w in row], width=width, color=PALETTE[r % len(PALETTE)], label=f"process {r}")
        for t in range(P):
            ax.hlines(max(row[t] for row in work) / unit, t - 0.45, t + 0.45, colors=COLORS["ink"], linestyles="--")
        total = sum(max(row[t] for row in work) for t in range(P)) / unit
        ax.set_title(f"{layout}: sum over steps of the slowest process {total:g}")
        ax.set_xticks(range(P), [f"step {t}" for t in range(P)])
        ax.set_ylabel("score entries" if unit == 1 else f"score entries / {unit}")
    axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1, 1))
    return Picture(fig, drawn)
