"""The Chinese edition: the same notebooks and pages, the prose translated with Sphinx's gettext.

    .venv/bin/python tools/editions.py config    # write _build/_config.zh_CN.yml (the Chinese build's config)
    .venv/bin/python tools/editions.py update [PAGE ...]   # merge the English prose into locales/zh_CN
    .venv/bin/python tools/editions.py check     # fail if any English string lacks a current translation
    .venv/bin/python tools/editions.py glue-paths [NOTEBOOK ...]   # glue roles in the form both builds resolve

The translations live in ``locales/zh_CN/LC_MESSAGES/<page>.po`` (sphinx-intl's layout), one file
per page of _toc.yml. Code, outputs and figures are not translated: both editions are built from
the same executed notebooks, so every glued number is the same file's number in both.

``check`` is the drift gate of ``make test``: it extracts the English strings afresh and fails when
one has no translation (a new or edited sentence), when a translation is marked fuzzy, or when a
translation lost or changed the markup of its English original (math, inline code, roles such
as glue references and cross-references), which would change what the page shows.
"""

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[1]
LANGUAGE = "zh_CN"
LOCALES = ROOT / "locales"
ZH_CONFIG = ROOT / "_build" / f"_config.{LANGUAGE}.yml"
JB = str(Path(sys.executable).with_name("jupyter-book"))

# The pages whose Chinese translation is complete. The drift gate holds each of them to a current
# translation of every string; the browser test requires their prose to be Chinese. A page not
# listed yet is built in the Chinese site with its English text (Sphinx falls back to the msgid).
TRANSLATED = [
    "intro", "checks", "glossary", "notation", "bibliography",
    "chapters/01_queries_keys_values", "chapters/02_dot_product", "chapters/03_scaled_dot_product",
    "chapters/04_bilinear", "chapters/05_softmax", "chapters/06_self_attention",
    "chapters/07_long_range_dependencies", "chapters/08_cost_and_memory",
    "chapters/09_pretrained_attention", "chapters/10_generating_text", "chapters/11_translation",
    "chapters/12_modern_attention", "chapters/13_ring_attention",
]

# What a translation must carry over unchanged from its English original.
MARKUP = re.compile(r"(\{[a-z:-]+\}`[^`]*`|``[^`]+``|`[^`]+`|\$\$.*?\$\$|\$[^$]+\$|https?://[^\s)>\]]+)", re.DOTALL)


def zh_config(root: Path = ROOT) -> Path:
    """The Chinese build's config: the book's _config.yml (at ``root``) with the language, the title
    and the local extensions' folders changed, written to ``root``/_build/_config.zh_CN.yml."""
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    config["title"] = "自注意力，经过检验"
    config.setdefault("sphinx", {}).setdefault("config", {})["language"] = LANGUAGE
    # Jupyter Book reads a local extension's folder relative to the config file, which is in _build/
    extensions = config["sphinx"].get("local_extensions") or {}
    config["sphinx"]["local_extensions"] = {name: str(root / path) for name, path in extensions.items()}
    out = root / ZH_CONFIG.relative_to(ROOT)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return out


def extract(out: Path, root: Path = ROOT) -> Path:
    """Every translatable string of the English book at ``root``, as .pot files under ``out``."""
    subprocess.run([JB, "build", str(root), "--builder", "custom", "--custom-builder", "gettext",
                    "--path-output", str(out), "--all"], check=True, capture_output=True, text=True)
    return out / "_build" / "gettext"


TITLED_ROLE = re.compile(r"^\{(term|ref|numref|doc)\}`(?:[^`<]*<([^`>]+)>|([^`]+))`$")


def update(pot_dir: Path, pages: list[str]) -> list[str]:
    """Merge the English strings into the .po of each page (all pages if none is named), as
    sphinx-intl does: new strings are added untranslated, edited ones kept and marked fuzzy."""
    from babel.messages.pofile import write_po

    done = []
    for pot in sorted(pot_dir.rglob("*.pot")):
        page = pot.relative_to(pot_dir).with_suffix("").as_posix()
        if pages and page not in pages:
            continue
        template = read_po(pot.open(encoding="utf-8"))
        po_path = LOCALES / LANGUAGE / "LC_MESSAGES" / f"{page}.po"
        if po_path.exists():
            catalog = read_po(po_path.open(encoding="utf-8"), locale=LANGUAGE)
            catalog.update(template)
        else:
            catalog = template
            catalog.locale = LANGUAGE
        po_path.parent.mkdir(parents=True, exist_ok=True)
        with po_path.open("wb") as f:
            write_po(f, catalog, width=0, omit_header=False, ignore_obsolete=True)
        done.append(page)
    return done


def markup(text: str) -> list[str]:
    """The markup a translation must keep: math, code, URLs and roles. A role's visible title may be
    translated (``{term}`查询 <query>` `` for ``{term}`query` ``); its target may not."""
    found = []
    for item in MARKUP.findall(text):
        titled = TITLED_ROLE.match(item)
        found.append(f"{{{titled[1]}}}`<{titled[2] or titled[3]}>`" if titled else item)
    return sorted(found)


def problems(pot_dir: Path, locales: Path = LOCALES, pages=tuple(TRANSLATED)) -> list[str]:
    """What keeps the translated ``pages`` from matching the English strings in ``pot_dir``."""
    found = []
    for pot in sorted(pot_dir.rglob("*.pot")):
        page = pot.relative_to(pot_dir).with_suffix("")
        if page.as_posix() not in pages:
            continue
        po_path = locales / LANGUAGE / "LC_MESSAGES" / f"{page}.po"
        template = read_po(pot.open(encoding="utf-8"))
        if not po_path.exists():
            found.append(f"{page}: no translation file {po_path.name}")
            continue
        catalog = read_po(po_path.open(encoding="utf-8"))
        for message in template:
            if not message.id:
                continue
            english = message.id
            translated = catalog.get(english)
            short = english[:70].replace("\n", " ")
            if translated is None or not translated.string:
                found.append(f"{page}: not translated: {short!r}")
            elif translated.fuzzy:
                found.append(f"{page}: translation marked fuzzy (the English changed): {short!r}")
            elif markup(english) != markup(translated.string):
                lost = sorted(set(markup(english)) ^ set(markup(translated.string)))
                found.append(f"{page}: the translation changes the markup {lost[:4]}: {short!r}")
    return found


SHORT_GLUE = re.compile(r"\{glue:text\}`(?![^`]*::)([^`:]+)(:[^`]*)?`")


def glue_paths(notebook: Path) -> int:
    """Rewrite ``{glue:text}`key` `` as ``{glue:text}`x.ipynb::key:s` `` in a notebook's prose.

    In a translated build the short form finds no glued value (it renders empty); the form with the
    document's path (relative to the page's folder, as Sphinx resolves it) works in both editions.
    ``:s`` prints the value as the short form does. A path from the book's root, such as
    ``chapters/x.ipynb`` written inside a chapter, is made relative too."""
    import nbformat

    doc = notebook.name  # a glue path is relative to the page's own folder
    nb = nbformat.read(notebook, as_version=4)
    changed = 0
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        new, n = SHORT_GLUE.subn(lambda m: f"{{glue:text}}`{doc}::{m.group(1)}{m.group(2) or ':s'}`", cell.source)
        from_root = rf"\{{glue:text\}}`/?{notebook.parent.name}/{re.escape(doc)}::"
        new, m = re.subn(from_root, f"{{glue:text}}`{doc}::", new)
        n += m
        if n:
            cell.source, changed = new, changed + n
    if changed:
        nbformat.write(nb, notebook)
    return changed


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "check"
    if command == "config":
        print(zh_config().relative_to(ROOT))
        return 0
    if command == "glue-paths":
        for path in argv[2:] or sorted((ROOT / "chapters").glob("*.ipynb")):
            print(f"{path}: {glue_paths(Path(path))} glue references given their document's path")
        return 0
    with tempfile.TemporaryDirectory() as tmp:  # gettext needs a fresh doctree folder
        pot_dir = extract(Path(tmp))
        if command == "update":
            for page in update(pot_dir, argv[2:]):
                print(f"updated {page}")
            return 0
        found = problems(pot_dir)
    by_page: dict[str, list[str]] = {}
    for line in found:
        by_page.setdefault(line.split(":", 1)[0], []).append(line)
    for page, lines in by_page.items():  # a few examples per page, and the count
        print(f"{page}: {len(lines)} problems", *lines[:3], sep="\n  ")
    if found:
        print(f"{len(found)} strings of the English book have no current Chinese translation: edit the .po files "
              f"in {LOCALES.relative_to(ROOT)}/{LANGUAGE}/LC_MESSAGES (tools/editions.py update merges new strings)")
        return 1
    print(f"every English string of the {len(TRANSLATED)} translated pages has its Chinese translation")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
