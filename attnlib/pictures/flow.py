"""Chapter 1's pictures: one head's data flow, and a soft lookup in the plane.

:func:`data_flow` runs a :class:`attnlib.SelfAttention` layer on an input and draws every tensor
of the forward pass as a grid of its real shape, the weights with their real values.
:func:`lookup_arrows` draws a two-dimensional query and its keys as arrows, each key labelled
with the weight the query gives it.
"""

import torch

from ..display import COLUMN_WIDTH
from .base import COLORS, Picture, canvas, shape_text

SCORE_TEXT = {"dot": r"$S = Q K^\top$", "scaled_dot": r"$S = Q K^\top / \sqrt{d}$",
              "bilinear": r"$S = Q W K^\top$"}


def forward_tensors(layer, x: torch.Tensor) -> dict:
    """The tensors of one forward pass ``layer(x)``, read with hooks on the three projections.

    -> {"X", "Q", "K", "V", "A", "O"}: the input, the outputs of ``w_q``, ``w_k``, ``w_v``
    (each (..., n, d_head)), the weights (..., n, n) and the output (..., n, d_head).
    """
    seen = {}
    hooks = [getattr(layer, name).register_forward_hook(
        lambda _module, _inputs, output, key=key: seen.__setitem__(key, output.detach()))
        for name, key in (("w_q", "Q"), ("w_k", "K"), ("w_v", "V"))]
    try:
        with torch.no_grad():
            out, weights = layer(x)
    finally:
        for hook in hooks:
            hook.remove()
    return {"X": x.detach(), **seen, "A": weights.detach(), "O": out.detach()}


def _grid(ax, x, y, rows, cols, cell, color, values=None):
    """A rows x cols grid of cells with its upper-left corner at (x, y); values shade the cells."""
    from matplotlib.patches import Rectangle

    for i in range(rows):
        for j in range(cols):
            alpha = 0.22 if values is None else 0.06 + 0.94 * float(values[i, j] / values.max())
            ax.add_patch(Rectangle((x + j * cell, y - (i + 1) * cell), cell, cell, facecolor=color,
                                   alpha=alpha, edgecolor="white", linewidth=0.8))
    ax.add_patch(Rectangle((x, y - rows * cell), cols * cell, rows * cell, fill=False,
                           edgecolor=color, linewidth=1.4))


def _label(ax, x, y, name, shape, symbols):
    ax.text(x, y, f"{name}\n{shape_text(shape)}\n{symbols}", ha="center", va="top",
            fontsize=11, color=COLORS["ink"], linespacing=1.25)


def _path(ax, points, text="", where=0, color=COLORS["ink"]):
    """An arrow along the polyline ``points``; ``text`` sits above segment ``where``."""
    xs, ys = zip(*points, strict=True)
    ax.plot(xs[:-1], ys[:-1], color=color, lw=1.3, solid_capstyle="butt")
    ax.annotate("", xy=points[-1], xytext=points[-2],
                arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.3, "shrinkA": 0,
                            "shrinkB": 1})
    if text:
        (x0, y0), (x1, y1) = points[where], points[where + 1]
        ax.text((x0 + x1) / 2, max(y0, y1) + 0.15, text, ha="center", va="bottom", fontsize=11,
                color=color)


def data_flow(layer, x: torch.Tensor, tokens=None) -> Picture:
    """One self-attention head's forward pass, every tensor drawn as a grid of its real shape.

    layer: an :class:`attnlib.SelfAttention`; x: (n, d_model), one sequence. The layer runs on x
    (:func:`forward_tensors`); Q sits left of Kᵀ's column and S at their crossing, as in a
    matrix product, then A = softmax(S) row by row, and O = A V with V above O. The cells of A
    are shaded by the layer's weights (darkest: the largest weight). ``tokens`` (n strings) label the rows of X.
    ``drawn``: the shape of each tensor drawn ("X", "Q", "K", "V", "S", "A", "O"; S has the
    shape of A, since the softmax keeps it), the score drawn and the weights that shade A.
    """
    if x.dim() != 2:
        raise ValueError(f"x must be one sequence, (n, d_model), got {tuple(x.shape)}")
    t = forward_tensors(layer, x)
    n, d_model = t["X"].shape
    d, d_v = t["Q"].shape[-1], t["V"].shape[-1]
    shapes = {name: tuple(t[name].shape) for name in ("X", "Q", "K", "V", "A", "O")}
    shapes["S"] = shapes["A"]
    cell, gap, arrow_gap = 1.0, 0.6, 4.4
    left = 0.2 if tokens is None else 0.4 + 0.75 * max(len(t) for t in tokens)
    xs = {"X": left}
    xs["Q"] = xs["X"] + d_model + arrow_gap
    xs["S"] = xs["Q"] + d + gap
    xs["A"] = xs["S"] + n + arrow_gap
    xs["O"] = xs["A"] + n + gap
    top_band = max(d, n)  # the height of K^T and of V above the main row
    base = 5.2 + n  # the top of the main row, above three lines of labels
    width, height = xs["O"] + d_v + 0.3, base + gap + top_band + 2.9
    fig, ax = canvas(width, height, inches=COLUMN_WIDTH)

    _grid(ax, xs["X"], base, n, d_model, cell, COLORS["other"])
    _grid(ax, xs["Q"], base, n, d, cell, COLORS["query"])
    _grid(ax, xs["S"], base + gap + d, d, n, cell, COLORS["key"])  # K^T: d x n
    _grid(ax, xs["S"], base, n, n, cell, COLORS["other"])
    _grid(ax, xs["A"], base, n, n, cell, COLORS["weights"], values=t["A"])
    _grid(ax, xs["O"], base + gap + n, n, d_v, cell, COLORS["value"])  # V: n x d_v
    _grid(ax, xs["O"], base, n, d_v, cell, COLORS["output"])

    below = base - n - 0.3
    _label(ax, xs["X"] + d_model / 2, below, "$X$", shapes["X"], r"$n \times d_\mathrm{model}$")
    _label(ax, xs["Q"] + d / 2, below, "$Q$", shapes["Q"], r"$n \times d$")
    ax.text(xs["S"] + n / 2, below, SCORE_TEXT[layer.score] + f"\n{shape_text(shapes['S'])}\n"
            r"$n \times n$", ha="center", va="top", fontsize=11, linespacing=1.25)
    _label(ax, xs["A"] + n / 2, below, "$A$", shapes["A"], r"$n \times n$")
    _label(ax, xs["O"] + d_v / 2, below, "$O = A V$", shapes["O"], r"$n \times d_v$")
    ax.text(xs["S"] + n + 0.3, base + gap + d / 2, f"$K^\\top$\n{shape_text(shapes['K'][::-1])}",
            ha="left", va="center", fontsize=11)
    ax.text(xs["O"] - 0.3, base + gap + n / 2, f"$V$\n{shape_text(shapes['V'])}", ha="right",
            va="center", fontsize=11)
    if tokens is not None:
        for i, token in enumerate(tokens):
            ax.text(xs["X"] - 0.3, base - (i + 0.5) * cell, token, ha="right", va="center",
                    fontsize=11)

    mid = base - n / 2
    _path(ax, [(xs["X"] + d_model + 0.2, mid), (xs["Q"] - 0.2, mid)], r"$\cdot W_q^\top$")
    _path(ax, [(xs["S"] + n + 0.2, mid), (xs["A"] - 0.2, mid)], "softmax\nby row")
    k_mid = base + gap + d / 2
    _path(ax, [(xs["X"] + d_model / 2 - 0.8, base + 0.1), (xs["X"] + d_model / 2 - 0.8, k_mid),
               (xs["S"] - 0.2, k_mid)], r"$\cdot W_k^\top$", where=1)
    v_y = height - 1.8
    _path(ax, [(xs["X"] + d_model / 2 + 0.8, base + 0.1), (xs["X"] + d_model / 2 + 0.8, v_y),
               (xs["O"] + d_v / 2, v_y), (xs["O"] + d_v / 2, base + gap + n + 0.1)],
          r"$\cdot W_v^\top$", where=1)
    drawn = {"shapes": shapes, "score": layer.score, "weights": t["A"].clone()}
    return Picture(fig, drawn)


def lookup_arrows(query: torch.Tensor, keys: torch.Tensor, weights: torch.Tensor,
                  names=None) -> Picture:
    """A soft lookup in the plane: each key an arrow from the origin, the query an arrow too.

    query: (2,), keys: (n_k, 2), weights: (n_k,), the weight the query gives each key. A key's
    arrow is drawn as thick as its weight is large and labelled with it (and its name).
    ``drawn``: the query, the keys and the weights, as lists of floats.
    """
    if query.shape != (2,) or keys.dim() != 2 or keys.shape[1] != 2 \
            or weights.shape != keys.shape[:1]:
        raise ValueError("expected query (2,), keys (n_k, 2), weights (n_k,); got "
                         f"{tuple(query.shape)}, {tuple(keys.shape)}, {tuple(weights.shape)}")
    import matplotlib.pyplot as plt

    query, keys, weights = (t.detach().double() for t in (query, keys, weights))
    names = [f"key {j}" for j in range(len(keys))] if names is None else list(names)
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 0.55 * COLUMN_WIDTH))
    reach = float(torch.cat([keys.norm(dim=-1), query.norm().reshape(1)]).max())
    for key, weight, name in zip(keys.tolist(), weights.tolist(), names, strict=True):
        ax.annotate("", xy=key, xytext=(0, 0), arrowprops={
            "arrowstyle": "-|>", "color": COLORS["key"], "lw": 1 + 9 * weight,
            "mutation_scale": 12 + 14 * weight, "shrinkA": 0, "shrinkB": 0})
        cx, cy = (torch.tensor(key) / max(torch.tensor(key).norm().item(), 1e-12)).tolist()
        ha = "left" if cx > 0.35 else "right" if cx < -0.35 else "center"
        va = "bottom" if cy > 0.35 else "top" if cy < -0.35 else "center"
        ax.text(key[0] + 0.07 * reach * cx, key[1] + 0.07 * reach * cy,
                f"{name}\nweight {weight:.3f}", ha=ha, va=va, fontsize=11, color=COLORS["ink"])
    ax.annotate("", xy=query.tolist(), xytext=(0, 0), arrowprops={
        "arrowstyle": "-|>", "color": COLORS["query"], "lw": 2.5, "mutation_scale": 18,
        "shrinkA": 0, "shrinkB": 0})
    ax.text(query[0].item() + 0.06 * reach, query[1].item(), "query", ha="left", va="bottom",
            fontsize=11, color=COLORS["query"])
    ax.plot(0, 0, "o", color=COLORS["ink"], ms=4)
    low = min(0.0, float(keys[:, 1].min()), float(query[1]))
    ax.set_xlim(-1.75 * reach, 1.75 * reach)
    ax.set_ylim(low - 0.3 * reach, 1.4 * reach)
    ax.set_aspect("equal")
    ax.set_xlabel("component 1")
    ax.set_ylabel("component 2")
    drawn = {"query": query.tolist(), "keys": keys.tolist(), "weights": weights.tolist()}
    return Picture(fig, drawn)
