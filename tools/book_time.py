"""How long `make book` takes for both editions, against one edition alone.

    .venv/bin/python tools/book_time.py [--repeats 2]   # about 5 minutes a repeat; deletes _build

Each repeat starts from an empty _build and times, in fresh processes, one after the other:
one edition (the English book and its PDF, `make html-en pdf-en`) and both editions (what
`make book` runs after installing: `make build pdf`, which builds the two editions side by side
and prints their PDFs side by side). It prints a table of the seconds of each and their ratio,
with the machine's cores and load average (the machine may be shared), and writes them to
_build/book_time.json. The last repeat leaves the whole book built in _build.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = {  # what is timed: make targets, from an empty _build
    "one edition": ["make", "--no-print-directory", "html-en", "pdf-en"],
    "both editions": ["make", "--no-print-directory", "build", "pdf"],
}


def timed(targets: list[str]) -> float:
    shutil.rmtree(ROOT / "_build", ignore_errors=True)
    start = time.perf_counter()
    subprocess.run(targets, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    seconds = {name: [] for name in RUNS}
    for _ in range(args.repeats):
        for name, targets in RUNS.items():
            seconds[name].append(timed(targets))
    one, both = (min(seconds[name]) for name in RUNS)
    result = {"seconds": seconds, "best_one": one, "best_both": both, "ratio": both / one,
              "cpus": os.cpu_count(), "load_average": os.getloadavg(), "machine": platform.processor()}
    print(f"{'run':<14} {'best s':>7}  every repeat (s)")
    for name in RUNS:
        runs = ", ".join(f"{s:.0f}" for s in seconds[name])
        print(f"{name:<14} {min(seconds[name]):7.0f}  {runs}  (median {statistics.median(seconds[name]):.0f})")
    print(f"both / one: {both / one:.2f} on {os.cpu_count()} cores, load average "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    (ROOT / "_build" / "book_time.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
