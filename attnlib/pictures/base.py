"""Drawing primitives shared by the pictures: a canvas, labelled boxes, arrows, a tensor's shape."""

from dataclasses import dataclass, field

from ..display import COLUMN_WIDTH

# The book's palette (Okabe-Ito, as in book.mplstyle), by role.
COLORS = {
    "query": "#0072B2",
    "key": "#E69F00",
    "value": "#009E73",
    "output": "#D55E00",
    "weights": "#CC79A7",
    "other": "#56B4E9",
    "skipped": "#DDDDDD",
    "ink": "#222222",
}


@dataclass
class Picture:
    """A drawn figure and the content it shows, read from the object it depicts."""

    figure: object
    drawn: dict = field(default_factory=dict)

    def _repr_png_(self):  # a Picture as the last expression of a cell shows its figure
        import io

        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=200)
        return buffer.getvalue()


def canvas(width: float, height: float, *, inches: float = COLUMN_WIDTH):
    """A blank figure whose axes run over ``[0, width] x [0, height]`` in drawing units, no axes shown.

    The figure is ``inches`` wide and keeps the units square, so a box 1 unit wide is 1 unit tall.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(inches, inches * height / width), layout="none")
    fig.subplots_adjust(0, 0, 1, 1)
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig, ax


def box(ax, x, y, w, h, text="", *, color=COLORS["other"], alpha=0.25, fontsize=11, edge=None):
    """A rounded, filled box with its lower-left corner at (x, y) and centred text."""
    from matplotlib.patches import FancyBboxPatch

    patch = FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                           facecolor=color, alpha=alpha, edgecolor=edge or color, linewidth=1.2)
    ax.add_patch(patch)
    if text:
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize, color=COLORS["ink"])
    return patch


def arrow(ax, start, end, text="", *, color=COLORS["ink"], fontsize=10, offset=(0.0, 0.12)):
    """An arrow from ``start`` to ``end`` (drawing units), with an optional label at its middle."""
    ax.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.3,
                                                      "shrinkA": 2, "shrinkB": 2})
    if text:
        mid = ((start[0] + end[0]) / 2 + offset[0], (start[1] + end[1]) / 2 + offset[1])
        ax.text(*mid, text, ha="center", va="bottom", fontsize=fontsize, color=color)


def shape_text(shape) -> str:
    """A tensor's shape as the book writes it: ``(2, 8, 16, 64)`` -> ``"2 × 8 × 16 × 64"``."""
    return " × ".join(str(int(s)) for s in shape)
