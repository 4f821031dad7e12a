"""A Sphinx extension for the Chinese edition: a search that finds Chinese words, in linear time,
and translated pages that hold only their own nodes. Loaded by `_config.yml` for both editions; it
changes nothing in a build whose language is English (no page is translated there).

Sphinx 7.4's Chinese search language (``sphinx.search.zh``) indexes the words of Chinese prose
only when jieba is installed: without it a search for 梯度 (gradient) found no page of this book,
with it 10. It also keeps every Latin term of the book in a list that each stemmed word is looked
up in, quadratic in the book's length; Sphinx 8.1 fixed that (python/docsbuild-scripts#209), and
Jupyter Book 1 runs Sphinx 7, so this registers the same language with a set (the search index's
part of the Chinese build went from 11 s to 4 s here).
"""

from sphinx.search import languages
from sphinx.search.zh import JIEBA, SearchChinese

if JIEBA:
    import jieba


class SearchChineseSet(SearchChinese):
    """sphinx.search.zh.SearchChinese with its Latin terms in a set: the same index, in linear time."""

    def init(self, options: dict[str, str]) -> None:
        super().init(options)
        self.latin_terms = set()

    def split(self, input: str) -> list[str]:  # SearchChinese.split, with a set
        chinese = list(jieba.cut_for_search(input)) if JIEBA else []
        latin = [term.strip() for term in self.latin1_letters.findall(input)]
        self.latin_terms.update(latin)
        return chinese + latin


def own_document(app, doctree) -> None:
    """Point every node of a translated page at the page's own document.

    Sphinx parses each translation as a small document of its own (sphinx.transforms.i18n's
    publish_msgstr) and moves its nodes into the page; they keep a reference to that document,
    whose settings hold the whole build environment. Pickled with the page, they made each Chinese
    doctree carry the outputs of every page read before it (chapter 13's grew to 3.7 MB, 28x the
    English one), and every cross-reference to a figure unpickles its target's doctree.
    """
    for node in doctree.findall():
        if node is not doctree and node._document not in (None, doctree):
            node.document = doctree


def setup(app):
    languages["zh"] = SearchChineseSet
    app.connect("doctree-read", own_document)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
