"""Ch 8's measuring tools: bytes of memory held, bytes read and written, bytes kept for backward.

All three count tensors, not the operating system's pages, so their counts are the same on every
run and every machine (for the same torch version). ``PeakMemory`` and ``IOCounter`` watch every
PyTorch operation run inside a ``with`` block through a dispatch mode (a private torch module,
used here and nowhere in the chapters); ``saved_for_backward`` uses autograd's public hooks.
What none of them sees is scratch memory that a fused C++ kernel allocates internally.
"""

import weakref
from collections import defaultdict
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

_NO_DATA = {"empty", "new_empty", "empty_like", "empty_strided", "detach", "alias", "lift_fresh", "_unsafe_view"}
_WRITE_ONLY = {"zero_", "fill_", "new_zeros", "new_ones", "new_full", "zeros_like", "ones_like", "full_like"}


def _tensors(tree) -> list[torch.Tensor]:
    return [t for t in tree_leaves(tree) if isinstance(t, torch.Tensor)]


def _bytes(t: torch.Tensor) -> int:
    """Bytes of one tensor's elements (a broadcast view counts its storage at most once)."""
    return min(t.numel() * t.element_size(), t.untyped_storage().nbytes())


class PeakMemory(TorchDispatchMode):
    """Peak bytes of tensors created by operations inside ``with PeakMemory() as c:``.

    When an operation returns a tensor with new storage its bytes are added to ``now``;
    when the storage is freed they are subtracted. ``peak`` is the largest ``now``
    (tensors that existed before the block, such as the inputs, are not counted).
    ``calls`` counts operations and ``ops`` holds their names.
    """

    def __init__(self):
        super().__init__()
        self.live, self.now, self.peak, self.calls, self.ops = {}, 0, 0, 0, set()

    def _free(self, key) -> None:
        self.now -= self.live.pop(key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.calls += 1
        self.ops.add(str(func))
        inputs = {t.untyped_storage().data_ptr() for t in _tensors((args, kwargs))}
        for t in _tensors(out):
            storage = t.untyped_storage()
            key = storage.data_ptr()
            if key in inputs or key in self.live or storage.nbytes() == 0:
                continue  # a view, an in-place result, or seen already
            self.live[key] = storage.nbytes()
            self.now += storage.nbytes()
            self.peak = max(self.peak, self.now)
            weakref.finalize(storage, self._free, key)  # subtract it when freed
        return out


class IOCounter(TorchDispatchMode):
    """Bytes read and written by the operations run inside ``with IOCounter(cache_bytes) as io:``.

    The model: every operation reads each tensor argument once (except an ``out=`` argument, and
    the target of a fill such as ``zero_``) and writes each tensor it returns once; views
    (transpose, slice, reshape without copy) and allocations move nothing. A tensor whose storage
    is larger than ``cache_bytes`` lives in main memory; smaller ones are assumed to stay in cache.
    ``read``/``written``: all bytes; ``main_read``/``main_written``: bytes of tensors in main memory
    (with ``cache_bytes=0``, all of them). ``by_op[name] = [calls, bytes read, bytes written]``.
    """

    def __init__(self, cache_bytes: int = 0):
        super().__init__()
        self.cache_bytes = cache_bytes
        self.read = self.written = self.main_read = self.main_written = 0
        self.by_op = defaultdict(lambda: [0, 0, 0])

    def _in_main(self, t: torch.Tensor) -> bool:
        return t.untyped_storage().nbytes() > self.cache_bytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = func.__name__.split(".")[0]
        if func.is_view or name in _NO_DATA:
            return out
        ins = [] if name in _WRITE_ONLY else _tensors((args, {k: a for k, a in kwargs.items() if k != "out"}))
        outs = _tensors(out)
        read, written = sum(map(_bytes, ins)), sum(map(_bytes, outs))
        self.read += read
        self.written += written
        self.main_read += sum(_bytes(t) for t in ins if self._in_main(t))
        self.main_written += sum(_bytes(t) for t in outs if self._in_main(t))
        record = self.by_op[name]
        record[0], record[1], record[2] = record[0] + 1, record[1] + read, record[2] + written
        return out


def peak_bytes(fn, *args, **kwargs) -> int:
    """Peak extra bytes of ``fn(*args, **kwargs)``, output included, inputs not."""
    with PeakMemory() as counter:
        out = fn(*args, **kwargs)
        del out
    return counter.peak


def peak_bytes_with_backward(fn, *inputs: torch.Tensor) -> int:
    """Peak extra bytes of ``fn(*inputs)`` and its backward pass (gradients of ``out.sum()``).

    The inputs are detached copies that require grad; everything autograd keeps between the
    forward and the backward pass is counted, and so are the gradients.
    """
    inputs = [t.detach().clone().requires_grad_(True) for t in inputs]
    with PeakMemory() as counter:
        out = fn(*inputs)
        grads = torch.autograd.grad(out.sum(), inputs)
        del out, grads
    return counter.peak


def saved_for_backward(fn, *inputs: torch.Tensor) -> tuple[int, list[tuple[int, ...]]]:
    """Bytes (distinct storages) and shapes of the tensors autograd keeps for ``fn``'s backward.

    Uses ``torch.autograd.graph.saved_tensors_hooks``; the inputs are detached copies that require
    grad, and they are counted too if autograd keeps them.
    """
    storages, shapes = _saved(fn, inputs)
    return sum(nbytes for _, nbytes in storages.values()), shapes


def saved_storages(fn, *inputs: torch.Tensor) -> list[tuple[tuple[int, ...], int]]:
    """What autograd keeps for ``fn``'s backward, one entry per distinct storage.

    -> ``[(shape of the first tensor saved on that storage, bytes of the storage), ...]``:
    two saved views of one matrix are one matrix here (``saved_for_backward`` lists both).
    """
    return list(_saved(fn, inputs)[0].values())


def _saved(fn, inputs):
    inputs = [t.detach().clone().requires_grad_(True) for t in inputs]
    storages, shapes = {}, []

    def pack(t):
        storage = t.untyped_storage()
        storages.setdefault(storage.data_ptr(), (tuple(t.shape), storage.nbytes()))
        shapes.append(tuple(t.shape))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(*inputs)
    del out
    return storages, shapes


def cache_sizes(cpu: str = "/sys/devices/system/cpu/cpu0/cache") -> dict[str, int]:
    """This machine's data and unified cache sizes in bytes by level, ``{"L1": ..., "L2": ...}``.

    Read as Linux reports them for CPU 0 (the folder ``cpu``); empty where the folder is missing
    (another operating system).
    """
    sizes = {}
    for index in sorted(Path(cpu).glob("index*")):
        try:
            kind = (index / "type").read_text().strip()
            size, level = (index / "size").read_text().strip(), (index / "level").read_text().strip()
        except OSError:
            continue
        if kind in ("Data", "Unified") and size:  # e.g. "2048K"
            factor = {"K": 2**10, "M": 2**20, "G": 2**30}.get(size[-1], 1)
            sizes[f"L{level}"] = int(size.rstrip("KMG")) * factor
    return sizes
