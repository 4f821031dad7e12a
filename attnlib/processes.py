"""Processes that form a ``torch.distributed`` group: run a function on N of them, and their ring.

``run_on_processes(fn, world_size, *args)`` starts ``world_size`` new Python processes, joins them
into one process group with the ``gloo`` backend over the loopback interface (127.0.0.1, a free
port), calls ``fn(rank, world_size, *args)`` in each, and
returns the list of the results, ``results[r]`` from process r. It is how the ring-attention
chapter and its tests run a ring of processes on one CPU.

The processes are not copies of the caller: they come from multiprocessing's fork server, a fresh
process that imported torch and attnlib once and forks a child for every process (``spawn``, a fresh
interpreter for each, where there is no fork server). So ``fn`` must be importable by them: a
function of a module (``attnlib.experiments.ring_cost``, a test file), not one defined in a
notebook. Arguments and results travel pickled.
If any process raises, the others are stopped and the error is raised again here, with its type,
its message and a note naming the process and holding its traceback. Each process runs PyTorch
on one thread (:func:`one_thread`), so a ring of P processes asks for P cores whatever the
caller's thread count; ``fn`` may ask for more threads itself.

:class:`Ring` is the group seen from one process as a ring: send to the next rank, receive from the
previous one (what :func:`attnlib.ring_attention` does at every step).
"""

import datetime
import os
import pickle
import queue
import socket
import sys
import time
import traceback

import torch

__all__ = ["Ring", "run_on_processes"]


class Ring:
    """The ring of a process group: this process's rank, its neighbours, and one exchange step."""

    def __init__(self, group=None):
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError("ring_attention needs an initialised process group: call torch.distributed."
                               "init_process_group(...) in every process first (or run it with "
                               "attnlib.run_on_processes)")
        self.dist, self.group = dist, group
        self.rank, self.size = dist.get_rank(group), dist.get_world_size(group)

    def shift(self, tensor: torch.Tensor, tag: int = 0):
        """Start sending ``tensor`` to the next process and receiving the previous one's; ``wait`` ends it."""
        received = torch.empty_like(tensor)
        works = [self.dist.isend(tensor, group=self.group, group_dst=(self.rank + 1) % self.size, tag=tag),
                 self.dist.irecv(received, group=self.group, group_src=(self.rank - 1) % self.size, tag=tag)]
        return received, works, tensor.numel() * tensor.element_size()

    @staticmethod
    def wait(pending) -> torch.Tensor:
        received, works, _ = pending
        for work in works:
            work.wait()
        return received


def free_port() -> int:
    """A TCP port on 127.0.0.1 that no one listens on right now (the system picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loopback_interface() -> str | None:
    """The name of the loopback network interface ('lo' on Linux, 'lo0' on macOS), if there is one."""
    names = [name for _, name in socket.if_nameindex()] if hasattr(socket, "if_nameindex") else []
    return next((name for name in ("lo", "lo0") if name in names), None)


def _child(rank, world_size, port, payload, results, timeout_s):
    """One process of the group: join it, run the function, report ``(rank, status, result or error)``."""
    import torch.distributed as dist

    status = "join"  # a failure to join the group is retried on another port; any other is the caller's
    interface = loopback_interface()
    if interface and "GLOO_SOCKET_IFNAME" not in os.environ:
        os.environ["GLOO_SOCKET_IFNAME"] = interface  # loopback only: no traffic leaves the machine
    try:
        fn, args = pickle.loads(payload)
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size,
                                timeout=datetime.timedelta(seconds=timeout_s))
        status = "error"
        one_thread()
        try:
            value = fn(rank, world_size, *args)
        finally:
            dist.destroy_process_group()
        results.put((rank, "ok", pickle.dumps(value)))
    except BaseException as error:  # noqa: B036 - every failure must reach the parent, which re-raises it
        text = traceback.format_exc()
        try:
            report = pickle.dumps(error)
            pickle.loads(report)  # an exception that cannot be rebuilt travels as text only
        except Exception:
            report = None
        results.put((rank, status, (report, f"{type(error).__name__}: {error}", text)))


class _JoinFailed(Exception):
    """The processes could not form their group (a port taken meanwhile, a connection refused)."""


def _raise(rank, world_size, report):
    pickled, summary, text = report
    error = pickle.loads(pickled) if pickled is not None else RuntimeError(summary)
    error.add_note(f"raised in process {rank} of {world_size} (run_on_processes); its traceback:\n{text}")
    raise error


def _check_importable(fn) -> None:
    main = sys.modules.get("__main__")
    if getattr(fn, "__module__", None) == "__main__" and not getattr(main, "__file__", None):
        raise ValueError(
            f"{getattr(fn, '__name__', fn)!r} is defined in this notebook or interactive session; a new "
            "process cannot import it. Put it in a module (a .py file) and import it from there."
        )


def one_thread() -> None:
    """Run this worker process's PyTorch on one thread (PyTorch's DataLoader workers do the same).

    Two workers of two threads each on two cores would keep descheduling a thread that the other
    OpenMP threads of its process wait for, and run several times slower. With one thread a
    worker's result also stops depending on the machine's thread count: the last bits of a
    training run do (tests/test_translation.py).
    """
    torch.set_num_threads(1)


def new_processes():
    """The multiprocessing context that starts the processes: the fork server, preloaded with attnlib."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # torch imported once, by the server, with what torch imports on first use of shape checks and dispatch modes
    context.set_forkserver_preload(["attnlib.processes", "torch.fx.experimental.symbolic_shapes", "torch._dynamo"])
    return context


def run_on_processes(fn, world_size: int, *args, timeout: float = 120.0, attempts: int = 3) -> list:
    """``[fn(0, world_size, *args), ..., fn(world_size - 1, world_size, *args)]``, each in its own process.

    The processes form the default ``torch.distributed`` group (``gloo``, loopback) while ``fn``
    runs, so ``fn`` may call collectives or ``attnlib.ring_attention``. timeout: seconds for the
    whole run (and for any one collective); a group that fails to form is formed again on another
    port, up to ``attempts`` times. Raises the first failing process's error (its type and message;
    a note names the process and holds its traceback).
    """
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be an int >= 1, got {world_size!r}")
    _check_importable(fn)
    payload, context = pickle.dumps((fn, args)), new_processes()
    for attempt in range(attempts):
        results, port = context.Queue(), free_port()
        procs = [context.Process(target=_child, args=(r, world_size, port, payload, results, timeout), daemon=True)
                 for r in range(world_size)]
        for p in procs:
            p.start()
        try:
            return _gather(procs, results, world_size, timeout)
        except _JoinFailed as failed:
            if attempt == attempts - 1:
                raise RuntimeError(f"{world_size} processes could not form a group in {attempts} attempts: "
                                   f"{failed}") from None
        finally:
            for p in procs:
                p.join(timeout=1)
                if p.is_alive():
                    p.terminate()
                    p.join(timeout=5)


def _gather(procs, results, world_size, timeout):
    done, deadline = {}, time.monotonic() + timeout
    while len(done) < world_size:
        try:
            rank, status, value = results.get(timeout=0.1)
        except queue.Empty:
            silent = [r for r, p in enumerate(procs) if r not in done and not p.is_alive() and p.exitcode != 0]
            if silent and results.empty():
                time.sleep(0.5)  # a report may still be on its way
                if results.empty():
                    raise RuntimeError(f"process {silent[0]} of {world_size} died (exit code "
                                       f"{procs[silent[0]].exitcode}) without reporting") from None
            if time.monotonic() > deadline:
                missing = sorted(set(range(world_size)) - set(done))
                raise TimeoutError(f"processes {missing} of {world_size} did not finish within {timeout} s") from None
            continue
        if status == "join":
            raise _JoinFailed(value[1])
        if status == "error":
            _raise(rank, world_size, value)
        done[rank] = pickle.loads(value)
    return [done[r] for r in range(world_size)]
