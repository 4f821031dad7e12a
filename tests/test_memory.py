import pytest
import torch
import torch.nn.functional as F

from attnlib import attention, chunked_attention
from attnlib.experiments.memory import (
    IOCounter,
    PeakMemory,
    peak_bytes,
    peak_bytes_with_backward,
    saved_for_backward,
    saved_storages,
)

F32 = 4  # bytes per float32


def test_peak_memory_adds_new_storage_and_subtracts_freed_storage():
    with PeakMemory() as counter:
        a = torch.ones(256)
        b = torch.ones(512)
        del a  # freed: its bytes leave the running total
        c = torch.ones(128)
    assert counter.peak == (256 + 512) * F32
    assert counter.now == (512 + 128) * F32
    assert counter.calls == 3 and counter.ops == {"aten.ones.default"}
    del b, c


def test_peak_memory_ignores_views_in_place_results_and_the_inputs():
    x = torch.ones(100, 10)
    with PeakMemory() as counter:
        y = x.t()  # a view: no new storage
        x.mul_(2.0)  # in place: no new storage
        z = y.sum(0)  # (100,): new
    assert counter.peak == 100 * F32
    del z


@pytest.mark.parametrize("n", [16, 64])
def test_peak_of_attention_is_three_score_matrices_plus_small_terms(n):
    # scores, exponentials and weights: 3 n^2 floats; the rest is O(n d) or O(n).
    q = torch.randn(1, n, 8)
    peak = peak_bytes(lambda q: attention(q, q, q)[0], q)
    assert 3 * n * n * F32 <= peak <= 3 * n * n * F32 + 8 * n * 8 * F32


def test_peak_with_backward_counts_gradients_and_saved_tensors():
    x = torch.randn(1000)
    # exp saves its output (1000 floats); the gradient of sum(exp(x)) is exp(x): 1000 more.
    peak = peak_bytes_with_backward(torch.exp, x)
    assert 2000 * F32 <= peak <= 3000 * F32 + 64


def test_io_counter_elementwise_and_matmul_against_formulas():
    x, y = torch.randn(1000), torch.randn(1000)
    a, b = torch.randn(30, 40), torch.randn(40, 50)
    with IOCounter() as io:
        torch.add(x, y)
        a @ b
    assert io.read == (2000 + 30 * 40 + 40 * 50) * F32
    assert io.written == (1000 + 30 * 50) * F32
    assert io.by_op["add"] == [1, 2000 * F32, 1000 * F32]


def test_io_counter_views_move_nothing_and_out_is_not_read():
    x = torch.randn(64, 64)
    out = torch.empty(64, 64)
    with IOCounter() as io:
        x.t()
        x.view(-1)
        x[3:5]
        torch.mul(x, 2.0, out=out)
    assert io.read == 64 * 64 * F32 and io.written == 64 * 64 * F32


def test_io_counter_splits_main_memory_from_cache_by_storage_size():
    big, small = torch.randn(1024), torch.randn(16)
    with IOCounter(cache_bytes=1024) as io:  # 1 KiB of cache: `big` (4 KiB) lives in main memory
        big[:16] + small  # reads a 64-byte slice of `big`: main memory, counted by the slice's bytes
    assert io.read == 32 * F32 and io.main_read == 16 * F32
    assert io.written == 16 * F32 and io.main_written == 0


def test_io_of_standard_attention_grows_as_n_squared_and_chunked_reads_kv_per_query_block():
    d, n, block = 8, 64, 16
    q, k, v = (torch.randn(1, n, d) for _ in range(3))
    with IOCounter() as full:
        attention(q, k, v)
    # at least: write the scores, read them for the softmax, write the weights, read them for AV
    assert full.read + full.written >= 4 * n * n * F32
    with IOCounter(cache_bytes=n * d * F32 - 1) as tiled:  # only the (n, d) tensors are in main memory
        chunked_attention(q, k, v, block_size=block)
    blocks = n // block
    # each query block reads every key and value (and the ones column) once: blocks * n * (2d + 1)
    assert tiled.main_read >= blocks * n * 2 * d * F32


def test_io_of_torchs_fused_kernel_is_its_inputs_and_outputs():
    q = torch.randn(1, 2, 32, 8)
    with IOCounter() as io:
        F.scaled_dot_product_attention(q, q, q)
    assert io.read == 3 * q.numel() * F32  # internal traffic of one fused operation is not visible


def test_saved_for_backward_of_attention_holds_score_sized_matrices_and_chunked_none():
    n, d = 32, 4
    q = torch.randn(2, n, d)
    saved, shapes = saved_for_backward(lambda q, k, v: attention(q, k, v)[0], q, q, q)
    assert (2, n, n) in shapes and saved >= 2 * 2 * n * n * F32
    saved, shapes = saved_for_backward(chunked_attention, q, q, q)
    assert all(s[-1] != n or s[-2] != n for s in shapes)
    assert saved == (4 * 2 * n * d + 2 * 2 * n) * F32  # q, k, v, output, and m and l per row


def test_saved_storages_count_a_matrix_saved_twice_once():
    q = torch.randn(8, 4, requires_grad=True)

    def twice(x):
        y = x.exp()  # exp saves its output y
        return y * y.t().t()  # mul saves both operands: views of y's storage

    storages = saved_storages(twice, q)
    saved, shapes = saved_for_backward(twice, q)
    assert shapes.count((8, 4)) == 3 and storages == [((8, 4), 8 * 4 * F32)]
    assert saved == 8 * 4 * F32
