"""What the chapters show: the book's figure style, heatmaps of attention weights, HTML tables.

matplotlib is imported only when plotting or styling.
"""

from pathlib import Path

import torch

STYLE = Path(__file__).with_name("book.mplstyle")
COLUMN_WIDTH = 6.4  # inches: a figure this wide fills the page column at 100 dpi
PANEL_HEIGHT = 3.2  # inches: one panel of a stacked figure


def use_book_style() -> None:
    """Apply the book's figure style (``book.mplstyle``) and draw inline figures at 2x resolution.

    The first code cell of every chapter calls it, once, so every figure has the same fonts,
    colours and width, and stays sharp on high-density screens.
    """
    import matplotlib.pyplot as plt

    plt.style.use(STYLE)
    try:
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:  # outside Jupyter
        return
    set_matplotlib_formats("retina")


def plot_weights(weights, x_labels=None, y_labels=None, ax=None, title=None, colorbar=True):
    """Heatmap of attention weights (n_q, n_k): rows are queries, columns are keys."""
    w = weights.detach().cpu() if isinstance(weights, torch.Tensor) else torch.as_tensor(weights)
    if w.dim() != 2:
        raise ValueError(f"weights must have shape (n_q, n_k), got {tuple(w.shape)}")
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(0.5 * w.shape[1] + 2, 0.5 * w.shape[0] + 1.5))
    image = ax.imshow(w.numpy(), cmap="viridis", vmin=0.0, vmax=1.0)
    ax.grid(False)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    if x_labels is not None:
        ax.set_xticks(range(len(x_labels)), x_labels, rotation=90)
    if y_labels is not None:
        ax.set_yticks(range(len(y_labels)), y_labels)
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="attention weight")
    return ax


def html_table(header, rows, groups=()):
    """A small HTML table for the rendered book: ``display(html_table(...))`` in a notebook.

    header: column titles; rows: lists of cells (already formatted as text); groups: optional
    ``(title, number of columns)`` pairs for a first header row over groups of columns.
    Cells are inserted as HTML, so they may hold markup; nbval compares the HTML text too.
    The table sits in a box that scrolls sideways on a narrow screen, never the page.
    """
    from IPython.display import HTML

    widths = {len(header)} | {len(row) for row in rows}
    if len(widths) != 1 or (groups and sum(span for _, span in groups) != len(header)):
        raise ValueError(f"every row and the groups must span the {len(header)} columns of the header")

    def cells(row, tag):
        return "".join(f"<{tag}>{c}</{tag}>" for c in row)

    top = "".join(f"<th colspan='{span}'>{title}</th>" for title, span in groups)
    top = f"<tr>{top}</tr>" if groups else ""
    body = "".join(f"<tr>{cells(r, 'td')}</tr>" for r in rows)
    table = f"<table><thead>{top}<tr>{cells(header, 'th')}</tr></thead><tbody>{body}</tbody></table>"
    return HTML(f"<div class='table-scroll'>{table}</div>")
