"""Text data for a character-level language model: the book's own text, a tokenizer, splits, batches.

The corpus of chapter 10 is a frozen snapshot of the book's prose, shipped with attnlib as
``data/book_text.json`` (:func:`load_book_snapshot`), so the chapter runs downloaded alone and its
numbers do not move with every edit of the prose. :func:`book_documents` reads the live book;
``tools/book_snapshot.py`` rebuilds the snapshot from one commit of the repository.
"""

import json
import re
from pathlib import Path

import torch
import yaml


def find_book_root(start: str | Path = ".") -> Path:
    """The first folder, from ``start`` upwards, that holds the book's ``_toc.yml``."""
    here = Path(start).resolve()
    for folder in [here, *here.parents]:
        if (folder / "_toc.yml").is_file():
            return folder
    raise ValueError(f"no _toc.yml in {here} or any folder above it")


def _toc_entries(node) -> list[str]:
    """Every ``root:`` and ``file:`` entry of a Jupyter Book table of contents, in reading order."""
    if isinstance(node, list):
        return [entry for item in node for entry in _toc_entries(item)]
    if not isinstance(node, dict):
        return []
    own = [str(node[key]) for key in ("root", "file") if key in node]
    return own + [entry for value in node.values() for entry in _toc_entries(value)]


def _markdown_of_notebook(path: Path) -> str:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    sources = [c["source"] for c in cells if c["cell_type"] == "markdown"]
    return "\n\n".join(s if isinstance(s, str) else "".join(s) for s in sources)


def book_documents(root: str | Path) -> dict[str, str]:
    """The book's prose, one entry per page: ``{name: text}`` in reading order.

    Pages are the entries of ``root/_toc.yml`` (a notebook contributes its markdown cells, a
    ``.md`` page its whole text), then any ``chapters/*.ipynb`` the table of contents does not
    list yet. Entries whose file does not exist (yet) are skipped. Names have no extension.
    """
    root = Path(root)
    toc_path = root / "_toc.yml"
    if not toc_path.is_file():
        raise ValueError(f"{root} has no _toc.yml; pass the book's root folder (see find_book_root)")
    names = [str(Path(e).with_suffix("")) for e in _toc_entries(yaml.safe_load(toc_path.read_text(encoding="utf-8")))]
    names += sorted(str(p.relative_to(root).with_suffix("")) for p in (root / "chapters").glob("*.ipynb"))
    documents = {}
    for name in dict.fromkeys(names):  # de-duplicated, order kept
        if (root / f"{name}.ipynb").is_file():
            documents[name] = _markdown_of_notebook(root / f"{name}.ipynb")
        elif (root / f"{name}.md").is_file():
            documents[name] = (root / f"{name}.md").read_text(encoding="utf-8")
    return documents


PAGE_SEPARATOR = "\n\n"  # between two pages in book_text
SNAPSHOT = Path(__file__).parent / "data" / "book_text.json"  # the corpus of chapter 10
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")  # control characters but the newline


def book_snapshot(root: str | Path, as_of: str) -> dict:
    """The book's prose as a snapshot:
    ``{"as_of": ..., "toc": [...], "pages": {name: text}}``.

    ``pages`` is :func:`book_documents` of ``root``; ``toc`` the page names in reading
    order; ``as_of`` says which state of the book it is (for example a commit). A
    control character in the prose (a tab or a form feed where a Python string ate the
    backslash of ``\\text`` or ``\\frac``) is an error to repair in the book, not text
    to learn.
    """
    pages = book_documents(root)
    for name, page in pages.items():
        found = CONTROL.search(page)
        if found:
            context = page[max(0, found.start() - 20) : found.end() + 20]
            raise ValueError(f"{name} holds the control character {found.group()!r} in "
                             f"{context!r}: repair it")
    return {"as_of": as_of, "toc": list(pages), "pages": pages}


def load_book_snapshot(path: str | Path = SNAPSHOT) -> tuple[dict[str, str], str]:
    """The snapshot's pages ``{name: text}`` in reading order, and what state of the book it is."""
    snapshot = json.loads(Path(path).read_text(encoding="utf-8"))
    if list(snapshot["pages"]) != snapshot["toc"]:
        raise ValueError(f"{path}: the pages are not in the order of its table of contents")
    return snapshot["pages"], snapshot["as_of"]


def book_text(root: str | Path) -> str:
    """All of :func:`book_documents` joined into one string, pages separated by a blank line."""
    return PAGE_SEPARATOR.join(book_documents(root).values())


def page_spans(documents: dict[str, str]) -> dict[str, tuple[int, int]]:
    """Where each page lies in the joined text: ``{name: (start, end)}``, so that
    ``PAGE_SEPARATOR.join(documents.values())[start:end] == documents[name]``."""
    spans, start = {}, 0
    for name, page in documents.items():
        spans[name] = (start, start + len(page))
        start += len(page) + len(PAGE_SEPARATOR)
    return spans


class CharTokenizer:
    """Characters as tokens: the vocabulary is the sorted set of characters of a text.

    ``encode(text) -> (n,)`` int64 ids; ``decode(ids) -> text``; ``decode(encode(t)) == t``.
    """

    def __init__(self, text: str):
        if not text:
            raise ValueError("the text is empty: no vocabulary to build")
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        unknown = sorted(set(text) - self.index.keys())
        if unknown:
            raise ValueError(f"characters not in the vocabulary: {unknown!r}")
        return torch.tensor([self.index[c] for c in text], dtype=torch.long)  # (n,)

    def decode(self, ids) -> str:
        ids = torch.as_tensor(ids)
        if ids.dim() != 1:
            raise ValueError(f"ids must have shape (n,), got {tuple(ids.shape)}")
        if len(ids) and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"ids must lie in [0, {self.vocab_size}), got {ids.min()}..{ids.max()}")
        return "".join(self.chars[i] for i in ids.tolist())


def interleaved_split(
    ids: torch.Tensor, block_size: int, every: int = 10
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cut a token sequence (n,) into blocks of ``block_size`` tokens and deal them
    out in turns of ``every`` blocks: in each turn, block ``every // 2 - 1`` (counted
    from 0) goes to validation, the last block, ``every - 1``, to test, and the others
    to training.

    Returns the training, validation and test blocks, each joined in their original
    order. The three parts share no position and together hold every position once;
    validation and test sample the whole sequence rather than its end, and never the
    same place. A window drawn from the joined training part can straddle a seam where
    a held-out block was taken out (at most ``context`` of every ``block_size``
    positions on each side of the seam).
    """
    if ids.dim() != 1:
        raise ValueError(f"ids must have shape (n,), got {tuple(ids.shape)}")
    if block_size < 1 or every < 3:
        raise ValueError(f"block_size must be >= 1 and every >= 3, got {block_size} "
                         f"and {every}")
    # each position's block, counted within its turn
    turn = torch.arange(len(ids)) // block_size % every  # (n,)
    is_val = turn == every // 2 - 1  # (n,) bool
    is_test = turn == every - 1  # (n,) bool
    if not is_test.any():
        raise ValueError(f"{len(ids)} tokens hold no complete set of {every} blocks of "
                         f"{block_size}")
    is_train = ~(is_val | is_test)  # (n,) bool
    return ids[is_train], ids[is_val], ids[is_test]  # (n_train,), (n_val,), (n_test,)


def get_batch(
    ids: torch.Tensor, batch_size: int, context: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows of a token sequence and their targets, the same windows shifted by one.

    ids: (n,) -> x (batch_size, context), y (batch_size, context) with ``y[b, t] = x[b, t + 1]``
    inside the window: the model reads ``x[b, :t+1]`` and must predict ``y[b, t]``.
    """
    if ids.dim() != 1:
        raise ValueError(f"ids must have shape (n,), got {tuple(ids.shape)}")
    if batch_size < 1 or context < 1:
        raise ValueError(f"batch_size and context must be >= 1, got {batch_size} and {context}")
    if len(ids) <= context:
        raise ValueError(f"a sequence of {len(ids)} tokens has no window of context {context} plus a target")
    starts = torch.randint(len(ids) - context, (batch_size,), generator=generator)  # (batch_size,)
    offsets = torch.arange(context)  # (context,)
    x = ids[starts[:, None] + offsets]  # (batch_size, 1) + (context,) -> (batch_size, context)
    y = ids[starts[:, None] + offsets + 1]  # (batch_size, context), shifted by one
    return x, y
