"""What the chapters show: a heatmap of attention weights. matplotlib is imported only when plotting."""

import torch


def plot_weights(weights, x_labels=None, y_labels=None, ax=None, title=None, colorbar=True):
    """Heatmap of attention weights (n_q, n_k): rows are queries, columns are keys."""
    w = weights.detach().cpu() if isinstance(weights, torch.Tensor) else torch.as_tensor(weights)
    if w.dim() != 2:
        raise ValueError(f"weights must have shape (n_q, n_k), got {tuple(w.shape)}")
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(0.5 * w.shape[1] + 2, 0.5 * w.shape[0] + 1.5))
    image = ax.imshow(w.numpy(), cmap="viridis", vmin=0.0, vmax=1.0)
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
    return HTML(f"<table><thead>{top}<tr>{cells(header, 'th')}</tr></thead><tbody>{body}</tbody></table>")
