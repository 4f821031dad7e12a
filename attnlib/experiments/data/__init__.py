"""Data the chapters read, shipped with attnlib so that a chapter downloaded alone still runs.

``benchmarks/``: the results files that the scripts in the repository's ``benchmarks/`` folder
write (run by hand, on a quiet machine); the chapters read them with :func:`benchmark_results`.
"""

import json
from pathlib import Path

FOLDER = Path(__file__).parent
BENCHMARKS = FOLDER / "benchmarks"


def benchmark_results(name: str) -> dict:
    """The results a benchmark recorded: ``benchmark_results("attention_cpu")`` reads
    ``benchmarks/attention_cpu.json`` from this package."""
    path = BENCHMARKS / f"{name}.json"
    if not path.is_file():
        known = sorted(p.stem for p in BENCHMARKS.glob("*.json"))
        raise ValueError(f"no benchmark results named {name!r}; recorded: {known}")
    return json.loads(path.read_text(encoding="utf-8"))
