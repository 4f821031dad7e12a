"""The frozen corpus of chapter 10: the shipped snapshot of the book's prose, and its builder."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from attnlib.experiments import book_text as book_text_module
from attnlib.experiments.book_text import (
    CONTROL,
    SNAPSHOT,
    book_snapshot,
    load_book_snapshot,
)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from book_snapshot import book_snapshot_from_git, write_book_snapshot  # noqa: E402


def test_shipped_snapshot_loads_in_reading_order():
    pages, as_of = load_book_snapshot()
    assert as_of.startswith("commit ") and len(pages) >= 10
    assert all(isinstance(text, str) and text for text in pages.values())


def test_shipped_snapshot_has_no_control_characters():
    pages, _ = load_book_snapshot()
    for name, text in pages.items():
        assert not CONTROL.search(text), f"{name} holds a control character"


def test_shipped_snapshot_pages_are_the_pages_of_its_table_of_contents():
    # The snapshot is the book as of one commit: its pages follow that commit's table of contents
    # (the book's own may have moved on; a chapter may have left it since).
    pages, _ = load_book_snapshot()
    snapshot = json.loads((Path(book_text_module.__file__).parent / "data" / "book_text.json").read_text("utf-8"))
    toc = snapshot["toc"]
    assert [name for name in toc if name in pages] == list(pages), "pages out of the snapshot's own order"
    assert set(pages) <= set(toc), f"pages not in the snapshot's table of contents: {sorted(set(pages) - set(toc))}"
    assert {"intro", "glossary"} <= set(pages) and any(name.startswith("chapters/") for name in pages)


def test_snapshot_is_shipped_as_package_data():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert SNAPSHOT.parent.name == "data" and SNAPSHOT.suffix == ".json"
    assert '"attnlib.experiments.data"' in pyproject and '"*.json"' in pyproject


def _book(tmp_path, text):
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: notation\n")
    (tmp_path / "intro.md").write_text("# Intro\n")
    (tmp_path / "notation.md").write_text(text)
    return tmp_path


def test_builder_refuses_control_characters(tmp_path):
    book = _book(tmp_path, "$\text{distance} = \frac{a}{b}$")  # a tab and a form feed, as a plain string makes them
    with pytest.raises(ValueError, match="control character '\\\\t'"):
        book_snapshot(book, "test")


def test_builder_round_trips(tmp_path):
    book = _book(tmp_path, r"$\text{distance} = \frac{a}{b}$ and 中文")
    snapshot = book_snapshot(book, "a test book")
    assert snapshot["toc"] == ["intro", "notation"]
    write_book_snapshot(snapshot, tmp_path / "snap.json")
    assert load_book_snapshot(tmp_path / "snap.json") == (snapshot["pages"], "a test book")
    assert json.loads((tmp_path / "snap.json").read_text(encoding="utf-8")) == snapshot


def test_builder_reads_a_commit_not_the_working_tree(tmp_path):
    book = _book(tmp_path, "committed text\n")
    git = ["git", "-C", str(book), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "book"], check=True)
    (book / "notation.md").write_text("edited, not committed\n")
    snapshot = book_snapshot_from_git(book)
    assert snapshot["pages"]["notation"] == "committed text\n"
    assert snapshot["as_of"].startswith("commit ")
