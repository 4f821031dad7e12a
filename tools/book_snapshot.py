"""Rebuild chapter 10's corpus, the snapshot of the book's prose shipped with attnlib, from one commit.

    .venv/bin/python tools/book_snapshot.py [COMMIT]     # default HEAD

Writes attnlib/experiments/data/book_text.json (book_text.SNAPSHOT). The snapshot is the book as
committed, not the working tree, so uncommitted edits never reach it; chapter 10's numbers change
with it, so re-execute that chapter (`make notebooks`) after a rebuild.
"""

import io
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from attnlib.experiments.book_text import SNAPSHOT, book_snapshot

ROOT = Path(__file__).resolve().parents[1]


def book_snapshot_from_git(repo: str | Path, commit: str = "HEAD") -> dict:
    """:func:`book_snapshot` of the book as committed in ``commit``, not of the working tree.

    The commit's files are unpacked (``git archive``) into a temporary folder; ``as_of`` names
    the commit by its short hash and date.
    """
    def git(*args) -> bytes:
        return subprocess.run(["git", "-C", str(repo), *args], check=True,
                              capture_output=True).stdout

    label = git("log", "-1", "--format=commit %h of %ad", "--date=short", commit).decode().strip()
    with tempfile.TemporaryDirectory() as folder:
        with tarfile.open(fileobj=io.BytesIO(git("archive", commit))) as archive:
            archive.extractall(folder, filter="data")
        return book_snapshot(folder, label)


def write_book_snapshot(snapshot: dict, path: str | Path = SNAPSHOT) -> None:
    """Write a snapshot as JSON (UTF-8, one stable layout: the same book gives the same file)."""
    text = json.dumps(snapshot, ensure_ascii=False, indent=1) + "\n"
    Path(path).write_text(text, encoding="utf-8")


def main(argv: list[str]) -> None:
    commit = argv[1] if len(argv) > 1 else "HEAD"
    snapshot = book_snapshot_from_git(ROOT, commit)
    write_book_snapshot(snapshot)
    print(f"{SNAPSHOT.relative_to(ROOT)}: {len(snapshot['pages'])} pages, {snapshot['as_of']}")


if __name__ == "__main__":
    main(sys.argv)
