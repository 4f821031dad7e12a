"""Time and peak memory of attnlib.attention, attnlib.chunked_attention and torch's fused attention.

Run by hand, not in CI (it takes a few minutes and needs about 4 GiB of free memory):

    .venv/bin/python benchmarks/attention.py            # 2 threads, writes benchmarks/results/attention_cpu.json
    .venv/bin/python benchmarks/attention.py --threads 1 --out benchmarks/results/attention_cpu_1thread.json

Setup: batch 1, 4 heads of 64 dimensions, float32, CPU, no mask, n = 512 ... 8192.

Time: the median of several calls. The three implementations are called in turn within every
repetition (round robin), so that load from other processes on a shared machine hits all three alike.
GFLOP/s counts 4·n²·d floating-point operations per head (two n×n×d matrix products, a multiply and
an add each), whatever the implementation really does. The ceiling is the GFLOP/s of the best of
30 plain 1024×1024 float32 matrix products (2·1024³ operations) on the same threads, measured in
the same run. Also recorded: the median time of one in-place multiply of 2^18 floats, a small
operation whose cost is mostly the fixed cost of starting and finishing an operation on the threads.

Peak extra memory: each (implementation, n) runs in a fresh subprocess. The subprocess creates the
inputs, calls the implementation once at a tiny n (so libraries and thread pools are loaded), resets
the kernel's resident-set high-water mark (``echo 5 > /proc/self/clear_refs``), reads the resident
set size (RSS), calls the implementation once, and reports the high-water mark (VmHWM) minus that RSS.
This is memory the operating system really handed out (output included, inputs excluded), including
scratch buffers inside torch's fused kernel, which no Python-side count can see. Linux only.
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
import torch.nn.functional as F

import attnlib

SIZES = (512, 1024, 2048, 4096, 8192)
HEADS, D = 4, 64
IMPLS = {
    "torch sdpa": lambda q, k, v: F.scaled_dot_product_attention(q, k, v),
    "attnlib.attention": lambda q, k, v: attnlib.attention(q, k, v)[0],
    "attnlib.chunked_attention": lambda q, k, v: attnlib.chunked_attention(q, k, v),
}
REFERENCE = "torch sdpa"


def inputs(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return tuple(torch.randn(1, HEADS, n, D, generator=g) for _ in range(3))  # (1, heads, n, d) each


def repeats(n: int) -> int:
    return 9 if n <= 1024 else 5 if n <= 4096 else 3


def median_times(n: int) -> dict[str, float]:
    """Median seconds per call of every implementation, called round robin."""
    q, k, v = inputs(n)
    times = {name: [] for name in IMPLS}
    for _ in range(repeats(n)):
        for name, fn in IMPLS.items():
            start = time.perf_counter()
            fn(q, k, v)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def elementwise_op_us(numel: int = 2**18, reps: int = 200) -> float:
    """Median microseconds of one in-place multiply of ``numel`` floats: the fixed cost of one operation."""
    x = torch.ones(numel)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        x.mul_(1.0)
        times.append(time.perf_counter() - start)
    return 1e6 * statistics.median(times)


def matmul_gflops(size: int = 1024, reps: int = 30) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm-up
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * size**3 / min(times) / 1e9  # the best run: a ceiling, not a typical value


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_extra_bytes_here(name: str, n: int) -> int:
    """In this process: resident-set high-water mark during one call, minus the RSS before it."""
    fn = IMPLS[name]
    fn(*inputs(64))  # load code paths and thread pools before measuring
    q, k, v = inputs(n)
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _status_kib("VmRSS")
    out = fn(q, k, v)
    peak = _status_kib("VmHWM")
    del out
    return (peak - before) * 1024


def peak_extra_bytes(name: str, n: int, threads: int) -> int:
    """Run :func:`peak_extra_bytes_here` in a fresh Python process."""
    cmd = [sys.executable, __file__, "--threads", str(threads), "--memory-of", name, str(n)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return int(result.stdout.strip().splitlines()[-1])


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine(threads: int) -> dict:
    return {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "threads_used": threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg()[0],
    }


def rows(times: dict, memory: dict, ceiling: float) -> list[dict]:
    out = []
    for n in SIZES:
        flops = 4 * n * n * D * HEADS
        for name in IMPLS:
            t, mem = times[n][name], memory[n][name]
            out.append({
                "n": n, "impl": name, "median_s": t, "time_vs_torch": t / times[n][REFERENCE],
                "gflops": flops / t / 1e9, "pct_of_matmul": 100 * flops / t / 1e9 / ceiling,
                "peak_extra_mib": mem / 2**20, "memory_vs_torch": mem / memory[n][REFERENCE],
            })
    return out


def table(rows: list[dict]) -> str:
    head = (f"{'n':>5}  {'implementation':<26} {'median ms':>10} {'x torch':>8} {'GFLOP/s':>8} "
            f"{'% matmul':>9} {'peak MiB':>9} {'x torch':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['n']:>5}  {r['impl']:<26} {1e3 * r['median_s']:>10.1f} {r['time_vs_torch']:>8.2f} "
            f"{r['gflops']:>8.1f} {r['pct_of_matmul']:>8.0f}% {r['peak_extra_mib']:>9.1f} {r['memory_vs_torch']:>8.1f}"
        )
    return "\n".join(lines)


def targets(rows: list[dict]) -> dict:
    by = {(r["n"], r["impl"]): r for r in rows}
    time_ratio = by[4096, "attnlib.chunked_attention"]["time_vs_torch"]
    chunked, full = by[8192, "attnlib.chunked_attention"], by[8192, "attnlib.attention"]
    mem_ratio = chunked["peak_extra_mib"] / full["peak_extra_mib"]
    return {
        "chunked_time_vs_torch_at_4096": time_ratio, "time_target_1.5x_met": time_ratio <= 1.5,
        "chunked_memory_vs_attention_at_8192": mem_ratio, "memory_target_1/8_met": mem_ratio <= 1 / 8,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "attention_cpu.json"))
    parser.add_argument("--memory-of", nargs=2, metavar=("IMPL", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_of:
        print(peak_extra_bytes_here(args.memory_of[0], int(args.memory_of[1])))
        return
    info = machine(args.threads)
    for fn in IMPLS.values():
        fn(*inputs(256))  # warm-up
    ceiling = matmul_gflops()
    times, memory = {}, {}
    for n in SIZES:
        times[n] = median_times(n)
        memory[n] = {name: peak_extra_bytes(name, n, args.threads) for name in IMPLS}
        print(f"n={n} done", file=sys.stderr)
    info["matmul_ceiling_gflops"] = ceiling
    info["elementwise_op_us"] = elementwise_op_us()
    info["load_average_at_end"] = os.getloadavg()[0]
    result = rows(times, memory, ceiling)
    text = table(result)
    print(json.dumps(info, indent=1))
    print(text)
    summary = targets(result)
    print(json.dumps(summary, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    setup = {"batch": 1, "heads": HEADS, "d": D, "dtype": "float32", "device": "cpu", "mask": None}
    payload = {"machine": info, "setup": setup, "rows": result, "table": text, "targets": summary}
    Path(args.out).write_text(json.dumps(payload, indent=1) + "\n")


if __name__ == "__main__":
    main()
