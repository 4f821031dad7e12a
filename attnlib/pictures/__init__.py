"""Pictures of the mechanism, drawn from the objects the chapters run.

Each function takes the object it depicts (a layer, a forward pass, a cache, a kernel's schedule),
reads what it draws from that object, and returns a :class:`~attnlib.pictures.base.Picture`:
the matplotlib figure and ``drawn``, the content it drew (shapes, tiles, rows), so a test can
check the picture against the object without looking at pixels. One module per subject;
``base`` holds the shared drawing primitives and uses the book's style (``attnlib.display``).
"""

from .base import Picture

__all__ = ["Picture"]
