"""The shape of attnlib itself: small modules, one training loop, no plotting on import, no cycles."""

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
