"""A Sphinx extension for the Chinese edition: a search that finds Chinese words, in linear time.
Loaded by `_config.yml` for both editions; it changes nothing in a build whose language is English.

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


def setup(app):
    languages["zh"] = SearchChineseSet
    return {"parallel_read_safe": True, "parallel_write_safe": True}
