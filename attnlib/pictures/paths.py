"""Chapter 7's picture: the path from the first token to the last, through a recurrence and attention.

The picture takes the dependency patterns that :mod:`attnlib.experiments.paths` measures from the
layers themselves and draws the shortest chain of dependencies it finds in them: for a recurrent
layer, the step that reads ``x_0`` into the state and then one step per position (the pattern of
one step says state ``i`` depends on state ``i - 1``); for self-attention, the one hop of its
pattern from every input to the last output.
"""

from collections import deque

import torch

from .base import COLORS, Picture, canvas


def shortest_chain(pattern: torch.Tensor, start: int, end: int) -> list[int]:
    """The shortest chain ``start -> ... -> end`` in a dependency pattern applied again and again.

    pattern: (n, n) bool, ``pattern[i, j]`` = position i (after the step) depends on position j
    (before it). -> the positions visited, ``[start, ..., end]``; one step per link.
    """
    before = {start: None}
    queue = deque([start])
    while queue:
        j = queue.popleft()
        if j == end and len(before) > 1:
            break
        for i in torch.nonzero(pattern[:, j]).flatten().tolist():  # positions that read j
            if i not in before:
                before[i] = j
                queue.append(i)
    if end not in before:
        raise ValueError(f"position {end} never depends on position {start}")
    chain = [end]
    while before[chain[-1]] is not None:
        chain.append(before[chain[-1]])
    return chain[::-1]


def draw_paths(recurrent_step: torch.Tensor, attention: torch.Tensor) -> Picture:
    """Two rows of n tokens: a recurrence's chain to the last state above, attention's hops below.

    recurrent_step: (n, n) bool, the pattern of one recurrent step (new state on old state);
    attention: (n, n) bool, the pattern of one self-attention layer (output on input).
    -> Picture with ``drawn["recurrence"]``: the links drawn, ``("x", 0) -> ("h", 0)`` and then
    ``("h", i) -> ("h", j)``; ``drawn["attention"]``: the links ``("x", j) -> ("y", n - 1)``;
    ``drawn["hops"]``: the links on the path from the first input to the last output, per row.
    """
    n = recurrent_step.shape[0]
    if attention.shape != (n, n) or recurrent_step.shape != (n, n):
        raise ValueError(f"need two (n, n) patterns, got {tuple(recurrent_step.shape)} and "
                         f"{tuple(attention.shape)}")
    chain = shortest_chain(recurrent_step, 0, n - 1)  # states 0 .. n - 1
    steps = zip(chain[:-1], chain[1:], strict=True)
    recurrence = [(("x", 0), ("h", chain[0]))] + [(("h", a), ("h", b)) for a, b in steps]
    readers = torch.nonzero(attention[n - 1]).flatten().tolist()  # inputs output n - 1 reads
    links = [(("x", j), ("y", n - 1)) for j in readers]
    one_hop = [link for link in links if link[0] == ("x", 0)]
    fig, ax = canvas(n + 1.6, 6.0)
    rows = {"recurrence": (3.3, "h", COLORS["other"]), "attention": (0.2, "y", COLORS["weights"])}
    for name, (y0, out, colour) in rows.items():
        for i in range(n):
            _node(ax, 1.2 + i, y0 + 0.35, f"x{_sub(i)}", COLORS["query"])
        outputs = range(n) if name == "recurrence" else [n - 1]
        for i in outputs:
            _node(ax, 1.2 + i, y0 + 1.85, f"{out}{_sub(i)}", colour)
    for (_, a), (_, b) in recurrence:
        start, end = ((1.2 + a, 3.3 + 0.65), (1.2 + b, 3.3 + 1.55)) if a == b else (
            (1.2 + a + 0.3, 3.3 + 1.85), (1.2 + b - 0.3, 3.3 + 1.85))
        _link(ax, start, end, COLORS["ink"])
    for (_, j), _ in links:
        _link(ax, (1.2 + j, 0.2 + 0.65), (1.2 + n - 1, 0.2 + 1.55), COLORS["weights"]
              if j else COLORS["ink"], width=2.0 if j == 0 else 1.0)
    ax.text(0.1, 3.3 + 2.45, f"recurrence: {len(recurrence)} steps from x{_sub(0)} to "
            f"h{_sub(n - 1)}, one after another", fontsize=12, va="center")
    ax.text(0.1, 0.2 + 2.45, f"self-attention: {len(one_hop)} hop from x{_sub(0)} to "
            f"y{_sub(n - 1)} (and from every other token)", fontsize=12, va="center")
    drawn = {"recurrence": recurrence, "attention": links,
             "hops": {"recurrence": len(recurrence), "attention": len(one_hop)}}
    return Picture(fig, drawn)


def _sub(i: int) -> str:
    return str(i).translate(str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉"))


def _node(ax, x, y, text, colour):
    from matplotlib.patches import Circle

    ax.add_patch(Circle((x, y), 0.3, facecolor=colour, alpha=0.3, edgecolor=colour, linewidth=1.2))
    ax.text(x, y, text, ha="center", va="center", fontsize=11, color=COLORS["ink"])


def _link(ax, start, end, colour, width=1.3):
    ax.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "-|>", "color": colour,
                                                      "lw": width, "shrinkA": 0, "shrinkB": 0})
