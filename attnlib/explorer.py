"""An attention explorer for the book's pages: hover (or tap) a token to see where it attends.

:func:`attention_explorer` turns attention weights into one self-contained HTML fragment, in the
manner of bertviz's head view: the query tokens in a column on the left, the key tokens on the
right, a line from query i to key j as strong as the weight, and selectors for the layer and the
head. The page's script (``_static/attention-explorer.js``, written for this book, no CDN) builds
the interactive view from a JSON block in the fragment; without that script (in Jupyter, or
printed) the fragment shows a still heatmap of the selected head instead, drawn here as SVG.

The fragment is deterministic, so strict nbval can compare it: weights are rounded to hundredths
(stored as one byte each), nothing random, no timestamps, and the element id is a hash of the
content. Rounding to hundredths is portable only if no weight sits within rounding error of a
boundary (x.xx5): pass weights computed in float64, or few enough that none does.
"""

import base64
import hashlib
import html
import json

import torch

SCALE = 100  # weights are stored as round(100 * w): hundredths
_CELL = 12  # px: one cell of the still heatmap


def _names(names, count: int, default: str, what: str) -> list[str]:
    if names is None:
        return [f"{default} {i}" for i in range(count)]
    names = [str(n) for n in names]
    if len(names) != count:
        raise ValueError(f"{what} must name all {count} of them, got {len(names)} names")
    return names


def _tokens(tokens, count: int, what: str) -> list[str]:
    if isinstance(tokens, str) or not hasattr(tokens, "__len__"):
        raise TypeError(f"{what} must be a list of strings, got {type(tokens).__name__}")
    tokens = [str(t) for t in tokens]
    if len(tokens) != count:
        raise ValueError(f"{what} has {len(tokens)} tokens but the weights have {count}")
    return tokens


def _json_for_html(payload: dict) -> str:
    """JSON that is safe inside a <script> element (no '<', '>' or '&' as such)."""
    text = json.dumps(payload, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _still_svg(w: torch.Tensor, q_tokens: list[str], k_tokens: list[str], label: str) -> str:
    """A heatmap of one head, (n_q, n_k) hundredths, as SVG text: rows are queries, columns keys."""
    n_q, n_k = w.shape
    left = 7 * max(len(t) for t in q_tokens) + 8  # px for the query labels
    top = 7 * max(len(t) for t in k_tokens) + 8  # px for the rotated key labels
    width, height = left + n_k * _CELL, top + n_q * _CELL
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' class='ae-still-svg' viewBox='0 0 {width} {height}' "
             f"width='{width}' height='{height}' role='img' aria-label='{html.escape(label, quote=True)}'>",
             "<g font-size='10' font-family='sans-serif' fill='#222'>"]
    for i, t in enumerate(q_tokens):
        parts.append(f"<text x='{left - 4}' y='{top + i * _CELL + 9}' text-anchor='end'>{html.escape(t)}</text>")
    for j, t in enumerate(k_tokens):
        x, y = left + j * _CELL + 9, top - 4
        parts.append(f"<text transform='translate({x},{y}) rotate(-90)'>{html.escape(t)}</text>")
    parts.append("</g><g fill='#0072B2'>")
    for i, j in (w > 0).nonzero().tolist():
        opacity = f"{int(w[i, j]) / SCALE:.2f}".lstrip("0")
        parts.append(f"<rect x='{left + j * _CELL}' y='{top + i * _CELL}' width='{_CELL}' height='{_CELL}' "
                     f"fill-opacity='{opacity}'/>")
    parts.append(f"</g><rect x='{left}' y='{top}' width='{n_k * _CELL}' height='{n_q * _CELL}' "
                 "fill='none' stroke='#888'/></svg>")
    return "".join(parts)


def attention_explorer(weights, query_tokens, key_tokens=None, *, layer_names=None, head_names=None,
                       title: str = "", layer: int = 0, head: int = 0):
    """An interactive view of attention weights for the book's pages (an ``IPython.display.HTML``).

    weights: (layers, heads, n_q, n_k) or (heads, n_q, n_k), each row a distribution over keys
    (values in [0, 1]); ``query_tokens``: n_q strings; ``key_tokens``: n_k strings (default: the
    query tokens, for self-attention). ``layer_names``, ``head_names``: labels of the selectors
    (default "layer 0", ..., "head 0", ...). ``layer``, ``head``: the head selected at first, and
    the one the still image (shown in print and where the page's script is missing) draws.

    On the page, hovering or tapping a query token shows its weights on the keys (a tap pins
    the token, a second tap releases it); hovering a key shows which queries read it.
    """
    w = torch.as_tensor(weights).detach().to("cpu", torch.float64)
    if w.dim() == 3:
        w = w[None]  # (heads, n_q, n_k) -> (1, heads, n_q, n_k)
    if w.dim() != 4:
        raise ValueError(f"weights must have shape (layers, heads, n_q, n_k) or (heads, n_q, n_k), "
                         f"got {tuple(torch.as_tensor(weights).shape)}")
    n_layers, n_heads, n_q, n_k = w.shape
    if not torch.isfinite(w).all() or w.min() < -1e-6 or w.max() > 1 + 1e-6:
        raise ValueError("weights must be finite and lie in [0, 1]")
    q_tokens = _tokens(query_tokens, n_q, "query_tokens")
    k_tokens = q_tokens if key_tokens is None else _tokens(key_tokens, n_k, "key_tokens")
    if key_tokens is None and n_q != n_k:
        raise ValueError(f"without key_tokens the weights must be square, got n_q={n_q}, n_k={n_k}")
    layers = _names(layer_names, n_layers, "layer", "layer_names")
    heads = _names(head_names, n_heads, "head", "head_names")
    for name, value, count in (("layer", layer, n_layers), ("head", head, n_heads)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < count:
            raise ValueError(f"{name} must be an int in [0, {count}), got {value!r}")

    hundredths = torch.round(w.clamp(0, 1) * SCALE).to(torch.uint8)  # (layers, heads, n_q, n_k)
    payload = {
        "shape": [n_layers, n_heads, n_q, n_k], "scale": SCALE, "q": q_tokens, "k": k_tokens,
        "layers": layers, "heads": heads, "layer": layer, "head": head, "title": str(title),
        "w": base64.b64encode(hundredths.numpy().tobytes()).decode("ascii"),
    }
    data = _json_for_html(payload)
    uid = "ae-" + hashlib.sha256(data.encode("ascii")).hexdigest()[:12]
    label = f"{title + ': ' if title else ''}attention weights of {layers[layer]}, {heads[head]}"
    still = _still_svg(hundredths[layer, head], q_tokens, k_tokens, label)
    fragment = (
        f"<div class='attention-explorer' id='{uid}'>"
        f"<script type='application/json' class='ae-data'>{data}</script>"
        "<div class='ae-screen'></div>"
        f"<figure class='ae-still'>{still}<figcaption>{html.escape(label)} (rows: queries, columns: keys; "
        "on the web page every layer and head can be chosen)</figcaption></figure>"
        "</div>"
    )
    from IPython.display import HTML

    return HTML(fragment)
