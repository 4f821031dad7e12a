"""The claims a chapter checks: each asserted where it is computed, listed at the chapter's end.

In a notebook::

    claims = Claims("chapters/03_scaled_dot_product")           # once, in a hidden cell
    ...
    claims.check(                                               # in a cell tagged remove-input
        "scaled-learns",
        "The scaled head learns the task in every run",
        holds=min(accuracy) > 0.95,
        measured=f"lowest test accuracy {min(accuracy):.3f}",
        margin=f"{min(accuracy) - 0.95:.3f} above 0.95",
    )
    ...
    claims.box()                                                # the chapter's last code cell

``check`` fails the cell (so nbval fails) when the claim does not hold, and otherwise shows
nothing but an invisible anchor that the box links to. The measured value and the margin are
text the caller formats, with only the digits the result can defend. ``index`` gives the same
list with links that work from the book's root, for the page that lists every chapter's claims.
"""

import html
import math
import re

_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def at_least(x: float, margin: float = 0.1) -> str:
    """A share in [0, 1] that moves with the CPU (a chaotic training run's accuracy) as the bound
    its digits defend: the largest tenth at least ``margin`` below it. ``at_least(0.93)`` is
    ``"≥ 0.8"`` (a symbol, so that both editions of the book read it). ``x`` may be a one-element tensor."""
    x = float(x)
    return f"≥ {max(0, math.floor(round((x - margin) * 10, 6))) / 10:.1f}"


def at_most(x: float, margin: float = 0.1) -> str:
    """The smallest tenth at least ``margin`` above a share ``x``: ``at_most(0.02)`` is ``"≤ 0.2"``."""
    x = float(x)
    return f"≤ {min(10, math.ceil(round((x + margin) * 10, 6))) / 10:.1f}"


def bound(x: float) -> str:
    """:func:`at_least` for a share of 0.5 or more, :func:`at_most` below."""
    x = float(x)
    return at_least(x) if x >= 0.5 else at_most(x)


class ClaimFailed(AssertionError):
    """A claim the chapter makes does not hold on this machine."""


class Claims:
    """The checked claims of one page, in the order the page makes them."""

    def __init__(self, page: str):
        if not isinstance(page, str) or not page or page.endswith((".ipynb", ".md", ".html")):
            raise ValueError(f"page must be the page's path without extension, e.g. 'chapters/03_x', got {page!r}")
        self.page = page
        self.items: list[dict] = []

    def check(self, key: str, claim: str, *, holds, measured: str, margin: str = "") -> None:
        """Assert ``holds`` for the sentence ``claim``; record it with its measured value and margin."""
        if not isinstance(key, str) or not _ID.match(key):
            raise ValueError(f"key must be lower-case letters, digits and '-', got {key!r}")
        if any(item["key"] == key for item in self.items):
            raise ValueError(f"claim {key!r} is checked twice on {self.page}; give each claim one key")
        if hasattr(holds, "item") and getattr(holds, "numel", lambda: 1)() == 1:
            holds = holds.item()  # a one-element tensor or NumPy value
        if not isinstance(holds, bool):
            raise TypeError(f"holds must be a bool (the claim's test), got {type(holds).__name__}")
        if not holds:
            raise ClaimFailed(f"{self.page}: {claim} (measured: {measured})")
        self.items.append({"key": key, "claim": claim, "measured": measured, "margin": margin})
        try:
            from IPython.display import HTML, display
        except ImportError:  # outside a notebook the anchor has nowhere to go
            return
        display(HTML(f"<span class='claim-anchor' id='claim-{key}'></span>"))

    def _html(self, href_prefix: str, title: str | None) -> str:
        if not self.items:
            raise ValueError(f"{self.page} has no checked claims to list")
        rows = "".join(
            "<tr>"
            f"<td>{html.escape(item['claim'])}</td>"
            f"<td>{html.escape(item['measured'])}</td>"
            f"<td>{html.escape(item['margin'])}</td>"
            f"<td><a href='{href_prefix}#claim-{item['key']}'>where</a></td>"
            "</tr>"
            for item in self.items
        )
        head = f"<p class='checked-claims-title'>{html.escape(title)}</p>" if title else ""
        table = (
            "<div class='table-scroll'><table><thead><tr><th>claim (asserted in the notebook)</th>"
            f"<th>measured</th><th>margin</th><th>cell</th></tr></thead><tbody>{rows}</tbody></table></div>"
        )
        return f"<div class='checked-claims'>{head}{table}</div>"

    def box(self):
        """The box "What this chapter checked", for the end of the chapter."""
        from IPython.display import HTML

        return HTML(self._html("", "What this chapter checked"))

    def index(self):
        """The same claims, linked from the book's root, for the page that lists every claim."""
        from IPython.display import HTML

        return HTML(self._html(f"{self.page}.html", None))
