"""Time and memory of attnlib.attention, attnlib.chunked_attention and torch's fused attention.

Run by hand, not in CI (it takes several minutes and needs about 2 GiB of free memory):

    .venv/bin/python benchmarks/attention.py     # writes attnlib/experiments/data/benchmarks/attention_cpu.json
    .venv/bin/python benchmarks/attention.py --smoke --out /tmp/a.json   # seconds: tiny sizes, one process

``--smoke`` runs the same code on tiny sizes, every measurement in this one process, so that the test
suite (``tests/test_benchmarks.py``) catches a signature change in seconds; it needs ``--out``, so it
never overwrites the recorded results, and its numbers mean nothing.

Setup: batch 1, 4 heads of 64 dimensions, float32, CPU, no mask, n = 1024, 2048, 4096. Four
settings: the forward pass, and forward+backward (the gradients of q, k and v for an all-ones
output gradient), each on 1 thread and on 2 threads. The results file is rewritten after every
(setting, n), so that an interrupted run keeps what it measured.

Fresh processes: every measurement of one (implementation, n, setting) runs in a new Python
process, so that no implementation inherits another's allocator state (glibc serves large
buffers from fresh, page-faulting memory until a large free raises its thresholds: running one
implementation first can flatter the next). The process loads its code with one call at n = 256,
then times ``REPS`` calls at n; the first call at n is included, since a program pays it too.
The processes alternate between implementations, ``ROUNDS`` rounds per (n, setting), so that load
from other jobs on a shared machine hits all three alike; the result is the median of all calls.

Peak extra memory, two ways, both for forward+backward: counted (``attnlib.experiments.memory``:
the bytes of tensors alive at once, deterministic, blind to scratch memory inside a fused kernel)
and as the operating system sees it (in the fresh process, the resident-set high-water mark
during the first call at n minus the resident set before it; Linux only).

Block sizes: at n = 4096, forward on one thread, ``chunked_attention`` is also timed at every block
size of ``BLOCKS`` against torch's kernel, alternating in fresh processes as above, so that the
default block size is a measured choice; the tile of scores of the four heads is recorded beside
each time, to compare with the caches.

GFLOP/s counts 4·n²·d floating-point operations per head for the forward pass, whatever the
implementation really does. The ceiling is the best of 30 plain 1024×1024 float32 matrix
products on 2 threads. Also recorded: the load average (``os.getloadavg``) at the start and
after every (setting, n), and the CPU's cache sizes.
"""

import argparse
import inspect
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import attnlib
from attnlib.experiments.memory import peak_bytes_with_backward

RESULTS = Path(__file__).parents[1] / "attnlib" / "experiments" / "data" / "benchmarks"  # read by the chapters

SIZES = (1024, 2048, 4096)
HEADS, D = 4, 64
ROUNDS, REPS = 3, 3
BLOCKS = (128, 256, 512, 1024)
SWEEP_N = 4096  # the block sizes are timed at this n
IN_PROCESS = False  # --smoke: measure in this process instead of a fresh one
IMPLS = {
    "torch sdpa": F.scaled_dot_product_attention,
    "attnlib.attention": lambda q, k, v: attnlib.attention(q, k, v)[0],
    "attnlib.chunked_attention": attnlib.chunked_attention,
}
SETTINGS = {  # in the order they run: the one-thread settings suffer least from a busy machine
    "forward, 1 thread": (1, False),
    "forward+backward, 1 thread": (1, True),
    "forward, 2 threads": (2, False),
    "forward+backward, 2 threads": (2, True),
}
REFERENCE = "torch sdpa"


def inputs(n: int, grad: bool) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(1, HEADS, n, D, generator=g).requires_grad_(grad) for _ in range(3)]  # (1, heads, n, d)


def implementation(name: str):
    """An entry of IMPLS, or "attnlib.chunked_attention block=B" for chunked attention with block size B."""
    if name.startswith("attnlib.chunked_attention block="):
        block_size = int(name.rsplit("=", 1)[1])
        return lambda q, k, v: attnlib.chunked_attention(q, k, v, block_size=block_size)
    return IMPLS[name]


def call(name: str, q, k, v, backward: bool) -> None:
    out = implementation(name)(q, k, v)  # (1, heads, n, d)
    if backward:
        out.backward(torch.ones_like(out))
        for t in (q, k, v):
            t.grad = None


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure_here(name: str, n: int, backward: bool) -> dict:
    """In this (fresh) process: times of REPS calls at n, and the OS-seen peak of the first one."""
    call(name, *inputs(256, backward), backward)  # load code paths and thread pools
    q, k, v = inputs(n, backward)
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark VmHWM to the current RSS
    before, times = _status_kib("VmRSS"), []
    for i in range(REPS):
        start = time.perf_counter()
        call(name, q, k, v, backward)
        times.append(time.perf_counter() - start)
        if i == 0:
            peak_rss = (_status_kib("VmHWM") - before) * 1024
    return {"times": times, "peak_rss_bytes": peak_rss}


def use_smoke_settings() -> None:
    """--smoke: tiny sizes, one round of one call, two block sizes, every measurement in this process."""
    global SIZES, ROUNDS, REPS, BLOCKS, SWEEP_N, IN_PROCESS
    SIZES, ROUNDS, REPS, BLOCKS, SWEEP_N, IN_PROCESS = (64,), 1, 1, (16, 32), 64, True


def measure(name: str, n: int, threads: int, backward: bool) -> dict:
    if IN_PROCESS:
        torch.set_num_threads(threads)
        return measure_here(name, n, backward)
    cmd = [sys.executable, __file__, "--measure", name, str(n), str(threads), str(int(backward))]
    result = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def matmul_gflops(size: int = 1024, reps: int = 30) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm-up
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * size**3 / min(times) / 1e9  # the best run: a ceiling, not a typical value


def cache_sizes() -> dict:
    """Data and unified cache sizes in bytes by level, as Linux reports them for CPU 0."""
    sizes = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        if (index / "type").read_text().strip() in ("Data", "Unified"):
            size = (index / "size").read_text().strip()  # e.g. "2048K"
            factor = {"K": 2**10, "M": 2**20}.get(size[-1], 1)
            sizes[f"L{(index / 'level').read_text().strip()}"] = int(size.rstrip("KM")) * factor
    return sizes


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown")
    return {"cpu": cpu, "logical_cores": os.cpu_count(), "caches_bytes": cache_sizes(), "torch": torch.__version__,
            "python": platform.python_version(), "load_average_at_start": os.getloadavg()[0]}


def counted_peaks() -> dict:
    """Counted peak extra bytes of forward+backward, per implementation and n (deterministic)."""
    return {name: {n: peak_bytes_with_backward(IMPLS[name], *inputs(n, False)) for n in SIZES} for name in IMPLS}


def table(rows: list[dict]) -> str:
    head = (f"{'setting':<28} {'n':>5}  {'implementation':<26} {'median ms':>10} {'x torch':>8} "
            f"{'peak MiB (OS)':>14} {'peak MiB (counted)':>19}")
    lines = [head, "-" * len(head)]
    for r in rows:
        counted = f"{r['peak_counted_mib']:>19.1f}" if "peak_counted_mib" in r else ""
        lines.append(f"{r['setting']:<28} {r['n']:>5}  {r['impl']:<26} {1e3 * r['median_s']:>10.1f} "
                     f"{r['time_vs_torch']:>8.2f} {r['peak_rss_mib']:>14.1f} {counted}")
    return "\n".join(lines)


def targets(rows: list[dict]) -> dict:
    """The issue's targets at n = 4096, for the settings measured so far."""
    by = {(r["setting"], r["n"], r["impl"]): r for r in rows}
    out = {}
    for s in SETTINGS:
        if (s, 4096, REFERENCE) not in by:
            continue
        chunked, full = by[s, 4096, "attnlib.chunked_attention"], by[s, 4096, "attnlib.attention"]
        out[f"chunked/torch time, {s}, n=4096"] = chunked["time_vs_torch"]
        if "peak_counted_mib" in chunked:
            out[f"chunked/attention peak memory (counted), {s}, n=4096"] = (
                chunked["peak_counted_mib"] / full["peak_counted_mib"])
            out[f"chunked/attention peak memory (OS), {s}, n=4096"] = chunked["peak_rss_mib"] / full["peak_rss_mib"]
    return out


def block_sweep() -> list[dict]:
    """Forward time on one thread of chunked_attention at each block size of BLOCKS, against torch's, at SWEEP_N."""
    n = SWEEP_N
    names = [REFERENCE] + [f"attnlib.chunked_attention block={b}" for b in BLOCKS]
    runs = {name: [] for name in names}
    for _ in range(ROUNDS):
        for name in names:
            runs[name] += measure(name, n, 1, False)["times"]
    torch_s = statistics.median(runs[REFERENCE])
    return [{"block_size": b, "n": n, "median_s": statistics.median(runs[name]),
             "time_vs_torch": statistics.median(runs[name]) / torch_s,
             "tile_mib": HEADS * b * b * 4 / 2**20}  # the float32 scores of one tile, all heads
            for b, name in zip(BLOCKS, names[1:], strict=True)]


def save(path: str, info: dict, rows: list[dict], sweep: list[dict] | None = None) -> str:
    """Write everything measured so far; return the table."""
    text = table(rows)
    block_size = inspect.signature(attnlib.chunked_attention).parameters["block_size"].default
    setup = {"batch": 1, "heads": HEADS, "d": D, "dtype": "float32", "device": "cpu", "mask": None,
             "block_size": block_size, "rounds": ROUNDS, "reps_per_process": REPS}
    payload = {"machine": info, "setup": setup, "rows": rows, "table": text, "targets": targets(rows),
               "block_sweep": sweep or []}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(payload, indent=1) + "\n")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(RESULTS / "attention_cpu.json"))
    parser.add_argument("--measure", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes in one process, for the tests (needs --out)")
    args = parser.parse_args()
    if args.smoke:
        if args.out == parser.get_default("out"):
            parser.error("--smoke needs --out: it must not overwrite the recorded results")
        use_smoke_settings()
    if args.measure:
        name, n, threads, backward = args.measure
        torch.set_num_threads(int(threads))
        print(json.dumps(measure_here(name, int(n), backward == "1")))
        return
    info = machine()
    torch.set_num_threads(2)
    info["matmul_ceiling_gflops_2_threads"] = matmul_gflops(*((64, 2) if args.smoke else ()))
    torch.set_num_threads(1)  # the counts do not depend on threads; one thread is quickest on a busy machine
    counted = counted_peaks()
    info["load_average"] = {}
    rows = []
    for setting, (threads, backward) in SETTINGS.items():
        for n in SIZES:
            runs = {name: [] for name in IMPLS}
            for _ in range(ROUNDS):
                for name in IMPLS:  # alternate: load on the machine hits all three alike
                    runs[name].append(measure(name, n, threads, backward))
            medians = {name: statistics.median(t for r in runs[name] for t in r["times"]) for name in IMPLS}
            for name in IMPLS:
                row = {"setting": setting, "threads": threads, "backward": backward, "n": n, "impl": name,
                       "median_s": medians[name], "time_vs_torch": medians[name] / medians[REFERENCE],
                       "peak_rss_mib": statistics.median(r["peak_rss_bytes"] for r in runs[name]) / 2**20}
                if backward:
                    row["peak_counted_mib"] = counted[name][n] / 2**20
                rows.append(row)
            info["load_average"][f"{setting}, n={n}"] = os.getloadavg()[0]
            text = save(args.out, info, rows)
            print(f"{setting}, n={n} done", file=sys.stderr)
    sweep = block_sweep()
    info["load_average"][f"block sizes, forward, 1 thread, n={SWEEP_N}"] = os.getloadavg()[0]
    text = save(args.out, info, rows, sweep)
    print(json.dumps(info, indent=1))
    print(text)
    print(json.dumps(targets(rows), indent=1))
    print(f"block size  tile MiB  x torch (forward, 1 thread, n={SWEEP_N})")
    for r in sweep:
        print(f"{r['block_size']:>10d} {r['tile_mib']:>9.2f} {r['time_vs_torch']:>8.2f}")


if __name__ == "__main__":
    main()
