"""Time of one generation step of attnlib.TransformerLM with and without the key-value cache, by position.

Run by hand, not in CI (about a minute):

    .venv/bin/python benchmarks/generate.py      # 1 thread, writes generate_cpu.json
    .venv/bin/python benchmarks/generate.py --threads 2 --out generate_cpu_2threads.json
    .venv/bin/python benchmarks/generate.py --smoke --out /tmp/g.json    # seconds: two positions, one process

``--smoke`` (the test suite's check that the benchmark still runs) needs ``--out``; its numbers mean nothing.

Setup: the width and depth of chapter 10's model (d_model 64, 4 heads, 2 layers, d_ff 256) with a
context of 1024 positions and chapter 10's vocabulary size, float32, CPU, batch 1, random weights
(the time does not depend on what the weights are). One step at position n produces the logits of
token n + 1 having read tokens 1..n:

- without the cache, ``model(ids[:, :n])``: the whole prefix again, as chapter 10's first version did;
- with the cache, ``model(ids[:, n-1:n], cache)`` on a cache that holds the first n - 1 positions:
  one query, n keys (the step appends its key and value to the cache, which copies it).

Each position runs in a fresh subprocess, which warms both calls up and then calls them in turn
(alternating, so that load from other processes on a shared machine hits both alike) and reports
the median of each. The load average at the start and the end is recorded so a reader can judge the run.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

import attnlib

RESULTS = Path(__file__).parents[1] / "attnlib" / "experiments" / "data" / "benchmarks"  # read by the chapters

POSITIONS = (16, 32, 64, 128, 256, 512, 1024)
SETUP = {"vocab_size": 160, "context": 1024, "d_model": 64, "n_heads": 4, "n_layers": 2, "d_ff": 256,
         "dtype": "float32", "batch": 1}
REPEATS = 21


def model_and_ids() -> tuple[attnlib.TransformerLM, torch.Tensor]:
    torch.manual_seed(0)
    config = attnlib.Config(vocab_size=SETUP["vocab_size"], context=SETUP["context"], d_model=SETUP["d_model"],
                            n_heads=SETUP["n_heads"], n_layers=SETUP["n_layers"], d_ff=SETUP["d_ff"])
    model = attnlib.TransformerLM(config).eval()
    ids = torch.randint(SETUP["vocab_size"], (1, SETUP["context"]), generator=torch.Generator().manual_seed(0))
    return model, ids


@torch.no_grad()
def one_position(n: int, repeats: int = REPEATS) -> dict[str, float]:
    """Median seconds of one step at position n, without and with the cache (called in turn)."""
    model, ids = model_and_ids()
    prefix = attnlib.KVCache(len(model.blocks))
    if n > 1:
        model(ids[:, : n - 1], prefix)  # the cache of the first n - 1 positions

    def uncached():
        return model(ids[:, :n])[0, -1]  # (1, n) -> (vocab,)

    def cached():
        cache = attnlib.KVCache(len(model.blocks))  # a fresh cache of the same n - 1 positions each call
        cache.keys, cache.values = list(prefix.keys), list(prefix.values)
        return model(ids[:, n - 1 : n], cache)[0, -1]  # (1, 1) -> (vocab,)

    torch.testing.assert_close(cached(), uncached(), rtol=1e-5, atol=1e-5)  # the same logits
    calls = {"uncached_s": uncached, "cached_s": cached}
    times = {name: [] for name in calls}
    for _ in range(3):  # warm-up
        for fn in calls.values():
            fn()
    for _ in range(repeats):
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def table(rows: list[dict]) -> str:
    lines = [f"{'position':>8s} {'no cache (ms)':>14s} {'cache (ms)':>11s} {'speed-up':>9s}"]
    for r in rows:
        lines.append(f"{r['position']:8d} {1e3 * r['uncached_s']:14.2f} {1e3 * r['cached_s']:11.2f} "
                     f"{r['uncached_s'] / r['cached_s']:9.1f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(RESULTS / "generate_cpu.json"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: a step is small)")
    parser.add_argument("--position", type=int, help=argparse.SUPPRESS)  # internal: one subprocess
    parser.add_argument("--smoke", action="store_true", help="two positions, one process, for the tests (needs --out)")
    args = parser.parse_args()
    if args.smoke and args.out == parser.get_default("out"):
        parser.error("--smoke needs --out: it must not overwrite the recorded results")
    torch.set_num_threads(args.threads)
    if args.position is not None:
        print(json.dumps(one_position(args.position)))
        return
    load_start = os.getloadavg()[0]
    rows = []
    for n in (4, 8) if args.smoke else POSITIONS:
        if args.smoke:  # in this process, two calls each
            rows.append({"position": n, **one_position(n, repeats=2)})
            continue
        out = subprocess.run([sys.executable, __file__, "--position", str(n), "--threads", str(args.threads)],
                             check=True, capture_output=True, text=True).stdout
        rows.append({"position": n, **json.loads(out)})
        print(f"position {n} done", file=sys.stderr)
    results = {
        "machine": {"cpu": cpu_name(), "logical_cores": os.cpu_count(), "threads_used": torch.get_num_threads(),
                    "torch": torch.__version__, "python": platform.python_version(),
                    "load_average_at_start": load_start, "load_average_at_end": os.getloadavg()[0]},
        "setup": SETUP,
        "rows": rows,
        "table": table(rows),
    }
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(results["table"])


if __name__ == "__main__":
    main()
