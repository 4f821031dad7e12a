"""Every benchmark runs: its tiny setting (``--smoke``), so that a signature change breaks the tests, not a reader.

One subprocess runs the benchmarks in turn (torch and transformers are imported once), each writing to a
temporary file; the recorded results in ``attnlib/experiments/data/benchmarks/`` must stay untouched. The numbers
of a smoke run mean nothing and are not checked, only that every part of each benchmark ran.
"""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
RECORDED = ROOT / "attnlib" / "experiments" / "data" / "benchmarks"
NAMES = ("attention", "generate", "encode", "ring", "translation_budget")

DRIVER = """
import json, runpy, sys, time
scripts, folder = sys.argv[1], sys.argv[2]
report = {}
for name in ("attention", "generate", "encode", "ring", "translation_budget"):
    start = time.perf_counter(), time.process_time()
    sys.argv = [name + ".py", "--smoke", "--out", f"{folder}/{name}.json"]
    runpy.run_path(f"{scripts}/{name}.py", run_name="__main__")
    report[name] = {"wall_s": time.perf_counter() - start[0], "cpu_s": time.process_time() - start[1]}
sys.argv = ["attention.py", "--smoke"]  # without --out: refused, so the recorded results stay as they are
try:
    runpy.run_path(f"{scripts}/attention.py", run_name="__main__")
except SystemExit as refused:
    report["refused_without_out"] = refused.code
print("SMOKE " + json.dumps(report))
"""


def _digests() -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(RECORDED.glob("*.json"))}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    folder = tmp_path_factory.mktemp("benchmarks")
    before = _digests()
    result = subprocess.run([sys.executable, "-c", DRIVER, str(BENCHMARKS), str(folder)], capture_output=True,
                            text=True, cwd=folder, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("SMOKE "))
    outputs = {name: json.loads((folder / f"{name}.json").read_text()) for name in NAMES}
    return {"report": json.loads(line.removeprefix("SMOKE ")), "outputs": outputs, "before": before}


def test_attention_benchmark_runs_every_part(smoke):
    out = smoke["outputs"]["attention"]
    settings = {r["setting"] for r in out["rows"]}
    assert len(settings) == 4 and {r["impl"] for r in out["rows"]} == {
        "torch sdpa", "attnlib.attention", "attnlib.chunked_attention"}
    assert all(r["median_s"] > 0 for r in out["rows"])
    assert all("peak_counted_mib" in r for r in out["rows"] if r["backward"])
    assert [r["block_size"] for r in out["block_sweep"]] == [16, 32]
    assert out["setup"]["block_size"] == 512 and "caches_bytes" in out["machine"]


def test_generate_benchmark_runs(smoke):
    out = smoke["outputs"]["generate"]
    assert [r["position"] for r in out["rows"]] == [4, 8]
    assert all(r["cached_s"] > 0 and r["uncached_s"] > 0 for r in out["rows"])


def test_encode_benchmark_runs_and_the_encoders_agree(smoke):
    out = smoke["outputs"]["encode"]
    assert set(out["best"]) == {"attnlib", "sentence-transformers"}
    assert out["max_abs_difference"] < 1e-4  # attnlib's MiniLM gives sentence-transformers' embeddings
    assert out["machine"]["threads_used"] == 1


def test_smoke_runs_leave_the_recorded_results_alone(smoke):
    assert smoke["report"]["refused_without_out"] == 2  # argparse's error exit: --smoke needs --out
    assert _digests() == smoke["before"]


def test_ring_benchmark_runs_every_size(smoke):
    out = smoke["outputs"]["ring"]
    assert [r["n_local"] for r in out["rows"]] == [16, 32] and out["setup"]["smoke"] is True
    assert all(r["compute_s"] > 0 and r["exchange_s"] > 0 for r in out["rows"])


def test_translation_budget_runs_both_widths(smoke):
    out = smoke["outputs"]["translation_budget"]
    assert [r["run"]["d_model"] for r in out["runs"]] == [32, 64] and out["smoke"] is True
    assert all(len(r["steps"]) == len(r["watch_exact"]) == 10 for r in out["runs"])
