"""Ring attention on this CPU: per step, the time to compute against the time to pass a block on.

Run by hand, not in CI (about a minute on a quiet machine):

    .venv/bin/python benchmarks/ring.py     # writes attnlib/experiments/data/benchmarks/ring_cpu.json
    .venv/bin/python benchmarks/ring.py --smoke --out /tmp/r.json   # seconds: tiny sizes; numbers mean nothing

Setup: rings of 2 processes on one machine (``attnlib.run_on_processes``: gloo over the loopback
interface), one thread per process, 4 heads of width 64, float32, not causal, n_local = 128 ... 2048
positions per process. For each n_local, ``attnlib.experiments.ring_cost.timing_worker`` records,
as medians over ``REPEATS`` calls after one warm-up call: the seconds a forward step spends
computing, the seconds it then waits for the next block (0 when the transfer hid behind the
computation), and the seconds one exchange of a block takes alone (send to the next process,
receive from the previous, nothing computed). Also recorded: the bytes and FLOPs of a step, the
loopback bandwidth they imply (bytes / exchange time), the machine and its load average (the
machine is shared: another run gives other times).
"""

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from attnlib.experiments import ring_cost  # noqa: E402
from attnlib.processes import run_on_processes  # noqa: E402

RESULTS = Path(__file__).parents[1] / "attnlib" / "experiments" / "data" / "benchmarks"  # read by the chapters
N_LOCALS, WORLD_SIZE, REPEATS = [128, 256, 512, 1024, 2048], 2, 7


def one_thread_timing(rank, world_size, n_locals, repeats):
    # run_on_processes runs each process on one thread: two processes on two cores
    return ring_cost.timing_worker(rank, world_size, n_locals, repeats=repeats)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check that the script runs")
    parser.add_argument("--out", default=None, help="results file (required with --smoke)")
    args = parser.parse_args()
    if args.smoke and args.out is None:
        parser.error("--smoke needs --out: a smoke run must not overwrite the recorded results")
    out = Path(args.out) if args.out else RESULTS / "ring_cpu.json"
    n_locals, repeats = ([16, 32], 2) if args.smoke else (N_LOCALS, REPEATS)
    load_start = os.getloadavg()[0]
    per_rank = run_on_processes(one_thread_timing, WORLD_SIZE, n_locals, repeats, timeout=1800)
    rows = []
    for i, n_local in enumerate(n_locals):
        mine = [r[i] for r in per_rank]
        row = {key: mine[0][key] for key in ("n_local", "bytes_per_step", "flops_per_step")}
        for key in ("compute_s", "wait_s", "exchange_s"):
            row[key] = max(m[key] for m in mine)  # a step ends when its slowest process is done
        row["loopback_bytes_per_s"] = row["bytes_per_step"] / row["exchange_s"]
        row["flops_per_s"] = row["flops_per_step"] / row["compute_s"]
        rows.append(row)
        print(f"n_local {n_local:5d}: compute {row['compute_s'] * 1e3:8.2f} ms, wait {row['wait_s'] * 1e3:7.3f} ms, "
              f"exchange alone {row['exchange_s'] * 1e3:7.2f} ms ({row['loopback_bytes_per_s'] / 1e9:.2f} GB/s)")
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown")
    machine = {"cpu": cpu, "logical_cores": os.cpu_count(), "torch": torch.__version__,
               "load_average_at_start": load_start, "load_average_at_end": os.getloadavg()[0]}
    setup = {"world_size": WORLD_SIZE, "heads": 4, "d": 64, "dtype": "float32", "threads_per_process": 1,
             "repeats": repeats, "smoke": args.smoke}
    out.write_text(json.dumps({"machine": machine, "setup": setup, "rows": rows}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
