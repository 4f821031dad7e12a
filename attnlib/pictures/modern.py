"""Chapter 12's pictures, each drawn from the object it shows.

- :func:`rotary_pair`: one feature pair of a vector, rotated by :func:`attnlib.apply_rotary` at
  positions 0, 1, 2, ...: the pair turns by its angle theta_j at every position.
- :func:`head_groups`: which query heads read which key/value head, found by running
  :func:`attnlib.grouped_query_attention` with the head counts of real attention layers.
- :func:`window_pattern`: the keys each query sees under :func:`attnlib.sliding_window_mask`,
  split into the window, the sinks, and the keys the window has evicted.
"""

import math

import torch

from ..attention import grouped_query_attention
from ..masks import causal_mask, sliding_window_mask
from ..positions import apply_rotary
from .base import COLORS, Picture, box, canvas


def rotary_pair(x: torch.Tensor, pairs: tuple[int, ...], n_positions: int, *, pairing: str = "half") -> Picture:
    """x: (d,) one query or key. For each feature pair j in ``pairs``, the pair's two features
    (a, b) after ``apply_rotary(x, m)`` at m = 0 .. n_positions - 1, drawn as arrows from the
    origin, one small panel per pair. ``drawn["points"][j]``: [(m, a, b), ...]."""
    import matplotlib.pyplot as plt

    from ..display import COLUMN_WIDTH

    d = x.shape[-1]
    positions = torch.arange(n_positions)
    rotated = apply_rotary(x.double().expand(n_positions, d), positions, pairing=pairing)  # (n_pos, d)
    fig, axes = plt.subplots(1, len(pairs), figsize=(COLUMN_WIDTH, COLUMN_WIDTH / len(pairs) + 0.4))
    points = {}
    for ax, j in zip(axes, pairs, strict=True):
        first, second = (j, j + d // 2) if pairing == "half" else (2 * j, 2 * j + 1)
        ab = rotated[:, [first, second]]  # (n_pos, 2): the pair at every position
        points[j] = [(m, ab[m, 0].item(), ab[m, 1].item()) for m in range(n_positions)]
        radius = ab[0].norm().item()
        ax.add_patch(plt.Circle((0, 0), radius, fill=False, color=COLORS["skipped"]))
        colors = plt.cm.viridis(torch.linspace(0, 0.9, n_positions).numpy())
        last_label = None  # the angle of the last labelled arrow: labels at least 0.3 rad apart
        for (m, a, b), color in zip(points[j], colors, strict=True):
            ax.annotate("", xy=(a, b), xytext=(0, 0),
                        arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.5})
            angle = math.atan2(b, a)
            if last_label is None or abs(angle - last_label) >= 0.3 or m == n_positions - 1:
                ax.text(1.18 * a, 1.18 * b, f"m={m}", ha="center", va="center", fontsize=11, color=color)
                last_label = angle
        ax.set_xlim(-1.35 * radius, 1.35 * radius)
        ax.set_ylim(-1.35 * radius, 1.35 * radius)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        (_, a0, b0), (_, a1, b1) = points[j][:2]
        step = (math.atan2(b1, a1) - math.atan2(b0, a0)) % (2 * math.pi)  # the turn per position
        ax.set_title(f"pair j = {j}: turns {step:.2g} rad per position", fontsize=11)
        ax.set_xlabel(f"feature {first}")
        ax.set_ylabel(f"feature {second}")
    return Picture(fig, {"points": points, "d": d, "pairing": pairing})


def _reads(h: int, h_kv: int) -> list[tuple[int, int]]:
    """(query head, key/value head) it reads, found by running grouped_query_attention on values
    that are each key/value head's own number."""
    q, k = torch.zeros(1, h, 1, 1), torch.zeros(1, h_kv, 1, 1)
    v = torch.arange(h_kv, dtype=torch.float32).view(1, h_kv, 1, 1)  # head g's value is g
    out, _ = grouped_query_attention(q, k, v)  # (1, h, 1, 1): the value each query head read
    return [(i, int(out[0, i, 0, 0])) for i in range(h)]


def head_groups(attns) -> Picture:
    """One row per attention layer in ``attns`` (modules with ``n_heads`` and ``n_kv_heads``, as
    :class:`attnlib.block.GroupedSelfAttention`): its query heads above, its key/value heads below,
    a line from each query head to the key/value head it reads.
    ``drawn["rows"]``: [{"n_heads", "n_kv_heads", "reads": [(query head, kv head), ...]}, ...]."""
    rows = [{"n_heads": a.n_heads, "n_kv_heads": a.n_kv_heads, "reads": _reads(a.n_heads, a.n_kv_heads)}
            for a in attns]
    width, row_height = 10.0, 3.0
    fig, ax = canvas(width, row_height * len(rows) + 0.2)
    for r, row in enumerate(rows):
        top = row_height * (len(rows) - r) - 0.4  # this row's upper edge
        h, h_kv = row["n_heads"], row["n_kv_heads"]
        q_x = [2.2 + (i + 0.5) * 7.6 / h for i in range(h)]  # box centres
        kv_x = [2.2 + (g + 0.5) * 7.6 / h_kv for g in range(h_kv)]
        name = {h: "multi-head", 1: "multi-query"}.get(h_kv, "grouped")
        ax.text(0.1, top - 1.1, f"{name}\nh = {h}, h_kv = {h_kv}", ha="left", va="center", fontsize=11)
        for i, x in enumerate(q_x):
            box(ax, x - 0.45, top - 0.7, 0.9, 0.6, f"q{i}", color=COLORS["query"])
        for g, x in enumerate(kv_x):
            box(ax, x - 0.7, top - 2.3, 1.4, 0.6, f"k{g}, v{g}", color=COLORS["key"])
        for i, g in row["reads"]:
            ax.plot([q_x[i], kv_x[g]], [top - 0.72, top - 1.68], color=COLORS["ink"], lw=1.2)
    return Picture(fig, {"rows": rows})


def window_pattern(n: int, window: int, sinks: int) -> Picture:
    """The (n, n) grid of queries by keys under ``sliding_window_mask(n, window, sinks=sinks)``:
    keys in the window, sink keys (seen only because of ``sinks``), evicted keys (in the past but
    outside the window and not sinks), and the future, each in its own colour.
    ``drawn``: the sets of (query, key) cells of each kind."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from ..display import COLUMN_WIDTH

    seen = sliding_window_mask(n, window, sinks=sinks)  # (n, n), True = may attend
    windowed = sliding_window_mask(n, window)  # (n, n): the same window, no sinks
    past = causal_mask(n)  # (n, n): keys j <= i
    kinds = {"window": windowed, "sink": seen & ~windowed, "evicted": past & ~seen, "future": ~past}
    codes = torch.zeros(n, n, dtype=torch.long)
    for code, cells in enumerate(kinds.values()):
        codes[cells] = code
    colors = [COLORS["query"], COLORS["key"], COLORS["skipped"], "#FFFFFF"]
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 0.6 * COLUMN_WIDTH))
    ax.imshow(codes.numpy(), cmap=ListedColormap(colors), vmin=-0.5, vmax=3.5)
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticks([t - 0.5 for t in range(1, n)], minor=True)
    ax.set_yticks([t - 0.5 for t in range(1, n)], minor=True)
    ax.grid(False)
    ax.grid(which="minor", color="#999999", lw=0.5)
    ax.tick_params(which="minor", length=0)
    ax.set_xlabel("key position j")
    ax.set_ylabel("query position i")
    labels = [f"window (last {window} keys)", f"sink (first {sinks})", "evicted", "future (causal)"]
    ax.legend([Patch(facecolor=c, edgecolor="#999999") for c in colors], labels,
              loc="upper left", bbox_to_anchor=(1.02, 1))
    drawn = {kind: {(i, j) for i, j in cells.nonzero().tolist()} for kind, cells in kinds.items()}
    return Picture(fig, drawn | {"settings": {"n": n, "window": window, "sinks": sinks}})
