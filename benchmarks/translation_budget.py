"""Chapter 11's one-vector translator trained for ten times the chapter's budget: is it bottlenecked
or only under-trained?

Not a timing: an experiment too long for the chapter's time budget, run by hand and recorded, as
the benchmarks are. Run it on a quiet machine (about 8 minutes on 2 cores):

    .venv/bin/python benchmarks/translation_budget.py     # writes translation_budget.json
    .venv/bin/python benchmarks/translation_budget.py --smoke --out /tmp/t.json   # seconds, for the tests

``--smoke`` (the test suite's check that the script still runs) needs ``--out``; its numbers mean
nothing.

Setup: the chapter's summary model ("summary": the decoder reads one vector) at widths 32 and 64,
seed 0, at the learning rate the chapter chose for it on validation (the chapter checks that it is
the same rate), trained with ``translation_runs.train_run`` for ``BUDGET_TIMES`` times the
chapter's steps, the chapter's batch size; every ``steps / 10`` steps the run records its exact
match per length bucket on the chapter's fixed validation sample. The two runs train at the same
time, each in a worker process of one thread (``translation_runs.train_runs``).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

from attnlib.experiments import translation_runs as tr
from attnlib.experiments import translation_task as tt

RESULTS = Path(__file__).parents[1] / "attnlib" / "experiments" / "data" / "benchmarks"

CHAPTER = {"steps": 1000, "batch": 64, "lr": 3e-3}  # chapter 11's budget and the summary model's chosen rate
BUDGET_TIMES = 10
WIDTHS = (32, 64)


def runs(smoke: bool) -> list[tr.Run]:
    steps = 20 if smoke else BUDGET_TIMES * CHAPTER["steps"]
    return [tr.Run("summary", d, CHAPTER["lr"], 0, steps, 8 if smoke else CHAPTER["batch"], steps // 10)
            for d in WIDTHS]


def table(results: list[dict]) -> str:
    lines = [f"{'width':>5s} {'step':>6s}  validation exact match by source length "
             + " ".join(f"{lo}-{hi}" for lo, hi in tt.BUCKETS)]
    for r in results:
        for step, exact in zip(r["steps"], r["watch_exact"], strict=True):
            lines.append(f"{r['run']['d_model']:5d} {step:6d}  " + " ".join(f"{x:5.2f}" for x in exact))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(RESULTS / "translation_budget.json"))
    parser.add_argument("--smoke", action="store_true", help="20 steps, for the tests (needs --out)")
    args = parser.parse_args()
    if args.smoke and args.out == parser.get_default("out"):
        parser.error("--smoke needs --out: it must not overwrite the recorded results")
    load_start, start = os.getloadavg()[0], time.perf_counter()
    results = tr.train_runs(runs(args.smoke))
    rows = [{"run": r["run"], "steps": r["steps"], "watch_exact": r["watch_exact"].tolist()} for r in results]
    print(table(rows))
    out = {"chapter": CHAPTER, "budget_times": BUDGET_TIMES, "buckets": [list(b) for b in tt.BUCKETS],
           "n_watch_per_bucket": tr.N_WATCH, "runs": rows, "smoke": args.smoke,
           "wall_s": round(time.perf_counter() - start, 1),
           "load_average": [round(load_start, 2), round(os.getloadavg()[0], 2)], "python": sys.version.split()[0]}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
