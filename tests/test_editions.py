"""The Chinese edition's drift gate, shown on a copy of the book: an English sentence changed
without its translation makes the check (and so `make test`) fail."""

import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import editions  # noqa: E402

PAGE = "notation"  # a page with no notebook behind it: the copy builds in seconds


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    """A copy of the book with one page, its translation, the book's config and its extension."""
    copy = tmp_path_factory.mktemp("book")
    for name in ("_config.yml", "references.bib", f"{PAGE}.md", "tools/zh_edition.py"):
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, copy / name)  # the config loads tools/zh_edition.py
    (copy / "_toc.yml").write_text(f"format: jb-book\nroot: {PAGE}\n", encoding="utf-8")
    po = Path("locales") / editions.LANGUAGE / "LC_MESSAGES" / f"{PAGE}.po"
    (copy / po).parent.mkdir(parents=True)
    shutil.copy(ROOT / po, copy / po)
    return copy


def check(book: Path, out: Path) -> list[str]:
    return editions.problems(editions.extract(out, root=book), locales=book / "locales", pages=[PAGE])


def test_the_translation_is_complete(book, tmp_path):
    assert check(book, tmp_path) == []


def test_an_english_sentence_changed_without_its_translation_fails(book, tmp_path):
    page = book / f"{PAGE}.md"
    original = page.read_text(encoding="utf-8")
    page.write_text(original.replace("Every symbol the chapters use", "Every symbol the chapters now use"), "utf-8")
    try:
        found = check(book, tmp_path)
    finally:
        page.write_text(original, encoding="utf-8")
    assert any("not translated" in line and "Every symbol the chapters now use" in line for line in found), found


def test_a_translation_that_changes_the_math_fails():
    assert editions.markup("width $d$ of `q`") != editions.markup("宽度 $k$，`q`")
    assert editions.markup("{term}`query` and {ref}`the chapter <ch-x>`") == editions.markup(
        "{term}`查询 <query>` 与 {ref}`这一章 <ch-x>`"
    )


def test_the_translated_pages_are_pages_of_the_book():
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    pages = {toc["root"]} | {c["file"] for part in toc["parts"] for c in part["chapters"]}
    assert set(editions.TRANSLATED) <= pages
    for page in editions.TRANSLATED:
        assert (editions.LOCALES / editions.LANGUAGE / "LC_MESSAGES" / f"{page}.po").exists(), page


def test_a_translated_page_holds_only_its_own_nodes(book, tmp_path):
    """Sphinx parses each translation as a small document of its own and moves its nodes into the
    page; tools/zh_edition.py points them back at the page. Without that, each pickled Chinese
    page kept those documents, and through their settings the whole build environment: every
    page read before it (chapter 13's grew to 28 times its English size)."""
    config = editions.zh_config(root=book)
    subprocess.run([editions.JB, "build", str(book), "--config", str(config), "--path-output", str(tmp_path),
                    "--all"], check=True, capture_output=True, text=True)
    doctree = pickle.loads((tmp_path / "_build" / ".doctrees" / f"{PAGE}.doctree").read_bytes())
    text = doctree.astext()
    assert sum("\u4e00" <= c <= "\u9fff" for c in text) > len(text) / 10  # the page is in Chinese
    foreign = [node for node in doctree.findall() if node.document is not doctree]
    assert foreign == [], f"{len(foreign)} nodes of other documents, e.g. {foreign[0].astext()[:60]!r}"
