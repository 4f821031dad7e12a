"""The Chinese edition's drift gate, shown on a copy of the book: an English sentence changed
without its translation makes the check (and so `make test`) fail."""

import shutil
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
