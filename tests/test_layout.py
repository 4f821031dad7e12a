"""The shape of attnlib itself: small modules, one training loop, no plotting on import, no cycles."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "attnlib"
MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_read_in_one_sitting(path):
    n = len(path.read_text().splitlines())
    assert n <= 210, f"{path.name} has {n} lines; split it by concept"


def test_one_place_steps_an_optimiser():
    stepping = {
        str(p.relative_to(PACKAGE))
        for p in MODULES
        if re.search(r"torch\.optim\.|\boptimizer\.step\(\)", p.read_text())
    }
    assert stepping == {"training.py"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_nothing_pins_threads_or_kernels(path):
    text = path.read_text()
    if path.name == "processes.py":  # the one exception: a worker process runs on one thread
        text = text.replace("def one_thread() -> None:", "", 1).replace("torch.set_num_threads(1)", "", 1)
    for pin in ("set_num_threads", "ATEN_CPU_CAPABILITY", "MKL_CBWR", "OMP_NUM_THREADS", "MALLOC_"):
        assert pin not in text, f"{path.name} sets {pin}: a reader's machine must run its own kernels"


def test_import_is_light_and_every_module_imports_alone():
    # Each module imported first, with every attnlib module forgotten before: a cycle would fail here.
    names = [".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts) for p in MODULES]
    names = [n.removesuffix(".__init__") for n in names]
    code = f"""
import importlib, sys
for name in {names!r}:
    for loaded in [m for m in sys.modules if m == "attnlib" or m.startswith("attnlib.")]:
        del sys.modules[loaded]
    importlib.import_module(name)
    assert "matplotlib" not in sys.modules, name + " imports matplotlib"
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr.strip().splitlines()[-1]


def _private_uses_across_modules(path: Path) -> list[str]:
    """Private names (``_name``) of other attnlib modules that ``path`` imports or reads."""
    tree = ast.parse(path.read_text())
    imported, found = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("attnlib")):
            for alias in node.names:
                imported.add(alias.asname or alias.name)
                if alias.name.startswith("_"):
                    found.append(f"line {node.lineno}: imports {alias.name}")
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name) and node.value.id in imported):
            found.append(f"line {node.lineno}: reads {ast.unparse(node)}")
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_reaches_into_another_modules_private_names(path):
    assert _private_uses_across_modules(path) == []


def test_the_private_name_check_can_fail(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from .scores import _dot\nfrom .layers import MultiHeadSelfAttention as M\nM._split\n")
    assert len(_private_uses_across_modules(bad)) == 2


def test_every_library_attnlib_imports_is_a_dependency():
    import importlib.metadata
    import tomllib

    declared = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]["dependencies"]
    declared = {re.split(r"[<>=!~; \[]", d)[0].lower().replace("_", "-") for d in declared}
    providers = importlib.metadata.packages_distributions()  # module -> the distributions that provide it
    missing = set()
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and not node.level else [])
            for top in {n.split(".")[0] for n in names} - set(sys.stdlib_module_names) - {"attnlib"}:
                if not {d.lower().replace("_", "-") for d in providers.get(top, [top])} & declared:
                    missing.add(f"{top} ({path.name})")
    assert not missing, f"imported but not in pyproject's dependencies: {sorted(missing)}"


def test_every_listing_a_chapter_includes_exists():
    # A chapter shows library code with {literalinclude} ... :pyobject: NAME; a renamed function would break the book.
    missing, included = [], 0
    for notebook in sorted((PACKAGE.parent / "chapters").glob("*.ipynb")):
        text = notebook.read_text()
        for path, name in re.findall(r'literalinclude\} \.\./([^\\\s"]+)\\n",\s*":pyobject: ([\w.]+)', text):
            included += 1
            nodes = ast.parse((PACKAGE.parent / path).read_text()).body
            for part in name.split("."):
                found = [n for n in nodes if isinstance(n, ast.FunctionDef | ast.ClassDef) and n.name == part]
                if not found:
                    missing.append(f"{notebook.name}: {path} {name}")
                    break
                nodes = found[0].body
    assert included >= 20 and not missing, missing
