"""Hygiene of the committed notebooks: what nbval does not check but a reader would notice."""

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "chapters").glob("*.ipynb"))
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
TOC_FILES = {TOC["root"]} | {c["file"] for part in TOC["parts"] for c in part["chapters"]}

MACHINE_PATH = re.compile(r"(/work/|/home/|/root/|/tmp/|site-packages|\.venv/)")
ANSI = re.compile(r"\x1b\[")
NOISE = re.compile(r"(Traceback \(most recent call last\)|\w*Warning:|it/s\]|Downloading)")


def outputs_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if "text" in out:
            parts.append("".join(out["text"]))
        for mime, data in out.get("data", {}).items():
            if mime.startswith("text/") or mime.endswith("+json"):
                parts.append(data if isinstance(data, str) else "".join(map(str, data)))
        if out.get("output_type") == "error":
            parts.append("ERROR: " + out.get("ename", ""))
    return "\n".join(parts)


def load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def test_there_are_chapters():
    assert NOTEBOOKS, "no notebooks in chapters/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_in_toc(path):
    assert f"chapters/{path.stem}" in TOC_FILES, f"{path.name} is not in _toc.yml"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_executed_top_to_bottom(path):
    counts = [c.get("execution_count") for c in load(path)["cells"] if c["cell_type"] == "code"]
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: execution counts {counts}; run `make notebooks`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_outputs_are_clean(path):
    for i, cell in enumerate(load(path)["cells"]):
        if cell["cell_type"] != "code":
            continue
        text = outputs_text(cell)
        assert not MACHINE_PATH.search(text), f"{path.name} cell {i}: a machine path in the output"
        assert not ANSI.search(text), f"{path.name} cell {i}: ANSI escapes in the output"
        assert not NOISE.search(text), f"{path.name} cell {i}: a warning, traceback or progress bar in the output"
        stderr = [o for o in cell.get("outputs", []) if o.get("name") == "stderr"]
        assert not stderr, f"{path.name} cell {i}: output on stderr"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_starts_seeded_and_ends_with_exercises(path):
    cells = load(path)["cells"]
    first_code = next(c for c in cells if c["cell_type"] == "code")
    assert "attnlib.reproducible(" in "".join(first_code["source"]), f"{path.name}: first code cell must seed"
    markdown = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    assert "## Exercises" in markdown, f"{path.name}: no Exercises section"
    exercises = re.findall(r"```\{exercise\}", markdown)
    starts = re.findall(r"```\{solution-start\} \S+\n:class: dropdown", markdown)
    assert exercises and len(starts) == len(exercises), f"{path.name}: every exercise needs a hidden solution"
    assert markdown.count("{solution-end}") == len(starts)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_solution_has_code(path):
    inside, code_cells, solutions = False, 0, []
    for cell in load(path)["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and "{solution-start}" in source:
            inside, code_cells = True, 0
        elif cell["cell_type"] == "markdown" and "{solution-end}" in source:
            solutions.append(code_cells)
            inside = False
        elif inside and cell["cell_type"] == "code":
            code_cells += 1
    assert solutions and all(solutions), f"{path.name}: each solution must contain running code, got {solutions}"


def glued(path: Path, name: str) -> str:
    for cell in load(path)["cells"]:
        for out in cell.get("outputs", []):
            if out.get("metadata", {}).get("scrapbook", {}).get("name") == name:
                return out["data"]["application/papermill.record/text/plain"]
    raise KeyError(f"{path.name} glues no {name!r}")


def test_language_model_chapter_was_run_on_the_shipped_corpus():
    # Chapter 10 trains on a frozen snapshot of the book's prose shipped with attnlib, so that prose
    # edits elsewhere leave its outputs alone; its stored outputs must come from that snapshot.
    from attnlib.experiments.book_text import PAGE_SEPARATOR, load_book_snapshot

    pages, _ = load_book_snapshot()
    chapter = ROOT / "chapters" / "10_generating_text.ipynb"
    stored = int(glued(chapter, "n_chars"))
    assert stored == len(PAGE_SEPARATOR.join(pages.values())), (
        f"chapter 10 was run on a corpus of {stored} characters, the shipped snapshot has another length: "
        "re-execute chapter 10"
    )


FLOAT = re.compile(r"^-?(\d+)\.(\d+)(?:e[+-]?\d+)?$|^-?(\d+)e[+-]?\d+$")


def significant_digits(text: str) -> int | None:
    """Significant digits of a float literal as Python prints it ('0.00123' -> 3); None if not a float."""
    text = text.strip().strip("'\"")
    if not FLOAT.match(text):
        return None
    mantissa = text.lstrip("-").split("e")[0].replace(".", "").lstrip("0")
    return len(mantissa.rstrip("0")) if "." not in text.split("e")[0] else len(mantissa)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_glued_floats_carry_honest_digits(path):
    # A float32 reduction owns about 6 significant digits; a glued raw float carries 16, and the
    # last ones change with the reader's CPU kernels. Glue the rounded value the text shows.
    for cell in load(path)["cells"]:
        for out in cell.get("outputs", []):
            name = out.get("metadata", {}).get("scrapbook", {}).get("name")
            if name is None:
                continue
            digits = significant_digits(out["data"].get("application/papermill.record/text/plain", ""))
            assert digits is None or digits <= 6, (
                f"{path.name}: glue {name!r} stores {digits} significant digits; glue round(x, k) instead"
            )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_bookkeeping_stays_off_the_page(path):
    # glue(...) calls run under nbval but are not the lesson: their cells hide their code.
    for i, cell in enumerate(load(path)["cells"]):
        if cell["cell_type"] != "code" or "glue(" not in "".join(cell["source"]):
            continue
        tags = set(cell.get("metadata", {}).get("tags", []))
        assert tags & {"remove-input", "remove-cell"}, f"{path.name} cell {i}: glue(...) in a visible cell"


def test_significant_digits():
    assert significant_digits("0.351695716381073") == 15
    assert significant_digits("1.9994719915437498") == 17
    assert significant_digits("0.00123") == 3
    assert significant_digits("2.5e-05") == 2
    assert significant_digits("768") is None
    assert significant_digits("'abc'") is None


PINS = ("set_num_threads", "ATEN_CPU_CAPABILITY", "MKL_CBWR", "OMP_NUM_THREADS", "MALLOC_")


@pytest.mark.parametrize("path", [*NOTEBOOKS, ROOT / "tests" / "conftest.py", ROOT / "pyproject.toml"],
                         ids=lambda p: p.name)
def test_nothing_pins_the_readers_kernels(path):
    # Outputs must agree because they carry honest digits, not because every machine is forced onto one path.
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".ipynb":
        text = "\n".join("".join(c["source"]) for c in json.loads(text)["cells"] if c["cell_type"] == "code")
    found = [pin for pin in PINS if pin in text]
    assert not found, f"{path.name} sets {found}"


# --- What the reader sees: the page, checked from the notebook files -------------------------

PAGES_MD = sorted(ROOT.glob("*.md"))
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # C0 control characters but tab and newline


def markdown_cells(path: Path) -> list[tuple[int, str]]:
    return [(i, "".join(c["source"])) for i, c in enumerate(load(path)["cells"]) if c["cell_type"] == "markdown"]


def visible_code_cells(path: Path) -> list[tuple[int, dict]]:
    hidden = {"remove-input", "remove-cell", "hide-input"}
    return [(i, c) for i, c in enumerate(load(path)["cells"])
            if c["cell_type"] == "code" and not hidden & set(c.get("metadata", {}).get("tags", []))]


@pytest.mark.parametrize("path", [*NOTEBOOKS, *PAGES_MD], ids=lambda p: p.name)
def test_no_control_characters_in_the_prose(path):
    # A LaTeX command written through a non-raw Python string: "\frac" is a form feed, "\text" a tab,
    # "\alpha" a bell, "\right" a carriage return. MathJax then shows "Math input error".
    texts = markdown_cells(path) if path.suffix == ".ipynb" else [(0, path.read_text(encoding="utf-8"))]
    for i, text in texts:
        found = sorted({repr(ch) for ch in CONTROL.findall(text)} | ({"'\\t'"} if "\t" in text else set()))
        assert not found, f"{path.name} cell {i}: control characters {found}"


GLUE_ROLE = re.compile(r"\{glue(?::[a-z]+)?\}`([^`]+)`")
GLUE_DIRECTIVE = re.compile(r"^(?:```|:::)\{glue(?::[a-z]+)?\}\s+(\S+)\n(?::doc:\s*(\S+))?", re.MULTILINE)


def glue_keys(path: Path) -> set[str]:
    return {out["metadata"]["scrapbook"]["name"] for c in load(path)["cells"] for out in c.get("outputs", [])
            if "scrapbook" in out.get("metadata", {})}


def glue_references(text: str) -> list[str]:
    """Every glued key a text pastes, as ``key`` or ``document::key`` (a directive's ``:doc:``)."""
    directives = [f"{doc}::{key}" if doc else key for key, doc in GLUE_DIRECTIVE.findall(text)]
    return GLUE_ROLE.findall(text) + directives


@pytest.mark.parametrize("path", [*NOTEBOOKS, *PAGES_MD], ids=lambda p: p.name)
def test_every_glued_reference_exists(path):
    # A reference to a key that no cell glues renders as nothing (or fails only in some builds).
    text = "\n".join(t for _, t in markdown_cells(path)) if path.suffix == ".ipynb" else path.read_text("utf-8")
    missing = []
    for ref in glue_references(text):
        if "::" in ref:  # a path relative to the page's folder, or to the book's root with a leading /
            doc, key = ref.split("::", 1)
            source = ROOT / doc.lstrip("/") if doc.startswith("/") else path.parent / doc
        else:
            source, key = path, ref
        key = key.split(":", 1)[0]  # {glue:text}`key:.3f`
        if source.suffix != ".ipynb" or not source.exists() or key not in glue_keys(source):
            missing.append(ref)
    assert not missing, f"{path.name}: glue references with no glued value: {missing}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_visible_code_fits_the_column(path):
    # The page column shows about 88 characters of code; longer lines hide their shape comments.
    long = [(i, n) for i, c in visible_code_cells(path)
            for n, line in enumerate("".join(c["source"]).splitlines(), 1) if len(line) > 88]
    assert not long, f"{path.name}: visible code lines over 88 characters (cell, line): {long[:10]}"


LITERALINCLUDE = re.compile(r"^[ \t]*(?P<fence>`{3,}|:{3,})\{literalinclude\}[ \t]+(?P<target>\S+)[ \t]*\n"
                            r"(?P<body>.*?)^[ \t]*(?P=fence)[ \t]*$", re.MULTILINE | re.DOTALL)
OPTION = re.compile(r"^:([\w-]+):(?:[ \t]+(.*))?$")


def literalincludes(text: str) -> list[tuple[str, dict]]:
    """Each ```{literalinclude}``` of a MyST text: its target and its options, as ``:key: value``
    lines or a ``---`` YAML block right after the directive's first line."""
    found = []
    for m in LITERALINCLUDE.finditer(text):
        lines = [line.strip() for line in m["body"].splitlines()]
        if lines and lines[0] == "---":
            options = yaml.safe_load("\n".join(lines[1:lines.index("---", 1)])) or {}
        else:
            options = {}
            for line in lines:
                if not (option := OPTION.match(line)):
                    break
                options[option[1]] = option[2]
        found.append((m["target"], {k: None if v in (None, "") else str(v).strip() for k, v in options.items()}))
    return found


def included_lines(page: Path, target: str, options: dict) -> list[str]:
    """The lines the book shows for one literalinclude, read as Sphinx reads them (pyobject, lines,
    start-/end-at/after/before, dedent, prepend, append: all of Sphinx's filters)."""
    from types import SimpleNamespace

    from sphinx.directives.code import LiteralInclude, LiteralIncludeReader

    path = ROOT / target.lstrip("/") if target.startswith("/") else page.parent / target
    converted = {k: LiteralInclude.option_spec[k](v) for k, v in options.items()}
    text, _ = LiteralIncludeReader(str(path), converted, SimpleNamespace(source_encoding="utf-8-sig")).read()
    return text.splitlines()


@pytest.mark.parametrize("path", [*NOTEBOOKS, *PAGES_MD], ids=lambda p: p.name)
def test_included_library_code_fits_the_column(path):
    # attnlib code shown with ```{literalinclude}``` (:pyobject:, :lines:, or the whole file) is
    # clipped at about 88 characters like any code on the page: wrap it in the library.
    texts = [t for _, t in markdown_cells(path)] if path.suffix == ".ipynb" else [path.read_text("utf-8")]
    long, broken = [], []
    for text in texts:
        includes = literalincludes(text)
        assert len(includes) == text.count("{literalinclude}"), (
            f"{path.name}: a literalinclude this test cannot parse; extend LITERALINCLUDE"
        )
        for target, options in includes:
            where = f"{target} {options.get('pyobject') or options.get('lines') or '(whole file)'}"
            try:
                lines = included_lines(path, target, options)
            except (OSError, KeyError, ValueError) as error:
                broken.append(f"{where}: {error!r}")
                continue
            long += [f"{where}: {len(line)} characters: {line.strip()[:60]}" for line in lines if len(line) > 88]
    assert not broken, f"{path.name}: literalincludes the book cannot show: {broken}"
    assert not long, f"{path.name}: included code lines over 88 characters: {long[:10]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_test_markers_or_test_output_on_the_page(path):
    for i, cell in visible_code_cells(path):
        assert "NBVAL_" not in "".join(cell["source"]), f"{path.name} cell {i}: an nbval marker on the page"
    for i, cell in enumerate(load(path)["cells"]):
        if cell["cell_type"] == "code" and "remove-cell" not in cell.get("metadata", {}).get("tags", []):
            text = outputs_text(cell)
            assert not re.search(r"(^|\n)\s*claim: ", text), f"{path.name} cell {i}: a printed 'claim:' line"
            assert not re.search(r"<= ?[0-9.]+ met\b", text), f"{path.name} cell {i}: an acceptance target"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_cell_uses_the_book_style(path):
    first_code = next(c for c in load(path)["cells"] if c["cell_type"] == "code")
    assert "use_book_style()" in "".join(first_code["source"]), f"{path.name}: first code cell must set the style"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_lists_what_it_checked(path):
    cells = load(path)["cells"]
    headings = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown"
                and re.search(r"^## What this chapter checked", "".join(c["source"]), re.MULTILINE)]
    exercises = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown"
                 and re.search(r"^## Exercises", "".join(c["source"]), re.MULTILINE)]
    assert len(headings) == 1 and exercises and headings[0] < exercises[0], (
        f"{path.name}: one '## What this chapter checked' section, before the exercises"
    )
    box = [c for c in cells[headings[0]:exercises[0]] if c["cell_type"] == "code"
           and "claims.box()" in "".join(c["source"])]
    assert box and "checked-claims" in outputs_text(box[0]), f"{path.name}: no box of checked claims"
    assert "checked_claims" in glue_keys(path), f"{path.name}: glue('checked_claims', claims.index()) is missing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_figures_are_numbered_captioned_and_described(path):
    for i, cell in enumerate(load(path)["cells"]):
        if cell["cell_type"] != "code" or "remove-cell" in cell.get("metadata", {}).get("tags", []):
            continue
        if not any("image/png" in out.get("data", {}) for out in cell.get("outputs", [])):
            continue
        meta = cell.get("metadata", {}).get("mystnb", {})
        figure, image = meta.get("figure", {}), meta.get("image", {})
        assert figure.get("caption") and figure.get("name"), f"{path.name} cell {i}: a figure without caption/name"
        alt = image.get("alt", "")
        assert len(alt) > 15 and "/" not in alt and not alt.endswith(".png"), (
            f"{path.name} cell {i}: alt text must say what the figure shows, got {alt!r}"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_glue_references_name_their_document(path):
    # In the Chinese edition (a translated build) a short {glue:text}`key` renders empty; the form
    # with the document's path, {glue:text}`x.ipynb::key:s`, works in both editions.
    # `.venv/bin/python tools/editions.py glue-paths chapters/x.ipynb` rewrites them.
    text = "\n".join(t for _, t in markdown_cells(path))
    short = [ref for ref in GLUE_ROLE.findall(text) if "::" not in ref]
    assert not short, f"{path.name}: glue references without their document's path: {short[:5]}"
