"""ring_attention against torch's SDPA on rings of 1 to 4 local processes, its counts, and its errors.

One run of processes per world size computes every setting (the runs are module-scoped fixtures);
the tests then read what each process returned.
"""

import pytest
import torch
import torch.nn.functional as F

import attnlib
from attnlib.processes import run_on_processes
from attnlib.ring import RingStats, positions, shard, unshard

D, D_V, HEADS = 8, 5, 2
SETTINGS = [(n_local, causal, layout) for n_local in (2, 6) for causal in (False, True)
            for layout in ("contiguous", "zigzag")]


def full_sequence(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(2, HEADS, n, D, generator=g, dtype=torch.float64) for _ in range(2))
    v, d_out = (torch.randn(2, HEADS, n, D_V, generator=g, dtype=torch.float64) for _ in range(2))
    return q, k, v, d_out


def compare(rank, world_size, n_local, causal, layout, group=None):
    """This process's largest differences from SDPA (output, gradients) and its per-step records."""
    q, k, v, d_out = full_sequence(world_size * n_local)
    full = [t.clone().requires_grad_() for t in (q, k, v)]
    expected = F.scaled_dot_product_attention(*full, is_causal=causal)
    expected_grads = torch.autograd.grad(expected, full, d_out)
    mine = [shard(t, rank, world_size, layout).requires_grad_() for t in (q, k, v)]
    stats = RingStats()
    out = attnlib.ring_attention(*mine, causal=causal, layout=layout, group=group, stats=stats)
    grads = torch.autograd.grad(out, mine, shard(d_out, rank, world_size, layout))
    errors = [(out - shard(expected, rank, world_size, layout)).abs().max().item()]
    pairs = zip(grads, expected_grads, strict=True)
    errors += [(a - shard(b, rank, world_size, layout)).abs().max().item() for a, b in pairs]
    return {"errors": errors, "forward": stats.forward, "backward": stats.backward, "rank": stats.rank}


def every_setting(rank, world_size):
    results = {setting: compare(rank, world_size, *setting) for setting in SETTINGS}
    if world_size == 4:  # a ring over a subgroup: processes 1 and 3 form a ring of two
        import torch.distributed as dist

        group = dist.new_group([1, 3])
        if rank in (1, 3):
            results["subgroup"] = compare([1, 3].index(rank), 2, 4, True, "zigzag", group=group)
    return results


@pytest.fixture(scope="module", params=[1, 2, 3, 4], ids=lambda p: f"P={p}")
def ring_run(request):
    return request.param, run_on_processes(every_setting, request.param)


def test_equal_to_sdpa_with_gradients(ring_run):
    world_size, results = ring_run
    for rank, per_setting in enumerate(results):
        for setting, result in per_setting.items():
            assert max(result["errors"]) < 1e-10, (world_size, rank, setting, result["errors"])


def test_each_step_holds_the_previous_process_block(ring_run):
    world_size, results = ring_run
    for rank, per_setting in enumerate(results):
        for setting in SETTINGS:
            for direction in ("forward", "backward"):
                steps = per_setting[setting][direction]
                assert [s["source"] for s in steps] == [(rank - t) % world_size for t in range(world_size)]


def test_bytes_sent_per_step_equal_the_formula(ring_run):
    # forward: the key/value block, 2 * 2 heads * n_local * (d + d_v) float64s, at every step but the last;
    # backward: the block and its gradient at every step but the last, the gradient alone at the last
    world_size, results = ring_run
    for per_setting in results:
        for n_local, causal, layout in SETTINGS:
            block = 2 * HEADS * n_local * (D + D_V) * 8
            record = per_setting[(n_local, causal, layout)]
            forward = [block if t < world_size - 1 else 0 for t in range(world_size)]
            backward = [0] if world_size == 1 else [2 * block] * (world_size - 1) + [block]
            assert [s["bytes_sent"] for s in record["forward"]] == forward
            assert [s["bytes_sent"] for s in record["backward"]] == backward


def expected_work(rank, world_size, n_local, causal, layout):
    """Score entries per step, counted from the positions: a tile (query chunk x key chunk) is computed
    unless causal forbids all of it; a process's block holds 1 (contiguous) or 2 (zig-zag) chunks."""
    chunks = 1 if layout == "contiguous" else 2
    c = n_local // chunks
    mine = positions(rank, world_size, n_local, layout).view(chunks, c)
    work = []
    for t in range(world_size):
        theirs = positions((rank - t) % world_size, world_size, n_local, layout).view(chunks, c)
        tiles = sum(bool((kc[None, :] <= qc[:, None]).any()) or not causal for qc in mine for kc in theirs)
        work.append(2 * HEADS * tiles * c * c)
    return work


def test_work_per_step_skips_what_causal_forbids(ring_run):
    world_size, results = ring_run
    for rank, per_setting in enumerate(results):
        for setting in SETTINGS:
            work = expected_work(rank, world_size, *setting)
            assert [s["score_entries"] for s in per_setting[setting]["forward"]] == work
            assert [s["score_entries"] for s in per_setting[setting]["backward"]] == work


def test_zigzag_balances_causal_work():
    # at every step, every process computes the same number of scores; contiguous: process r idles after step r
    for world_size in (2, 3, 4, 8):
        zigzag = [expected_work(r, world_size, 4, True, "zigzag") for r in range(world_size)]
        assert all(row == zigzag[0] for row in zigzag)
        contiguous = [expected_work(r, world_size, 4, True, "contiguous") for r in range(world_size)]
        assert [sum(w > 0 for w in row) for row in contiguous] == list(range(1, world_size + 1))


def test_subgroup_ring(ring_run):
    world_size, results = ring_run
    if world_size != 4:
        pytest.skip("the subgroup runs in the ring of four")
    assert "subgroup" not in results[0] and "subgroup" not in results[2]
    for rank in (1, 3):
        assert max(results[rank]["subgroup"]["errors"]) < 1e-10
        assert results[rank]["subgroup"]["rank"] == [1, 3].index(rank)


def mismatched(rank, world_size, what):
    n_local = 4 + 2 * rank if what == "lengths" else 4
    dtype = torch.float32 if what == "dtype" and rank == 1 else torch.float64
    q = torch.randn(1, n_local, D, dtype=dtype)
    return attnlib.ring_attention(q, q, q)


def test_blocks_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match=r"different lengths.*process 0: 4, process 1: 6") as caught:
        run_on_processes(mismatched, 2, "lengths")
    assert "raised in process" in "".join(caught.value.__notes__)


def test_processes_that_disagree_on_dtype_are_refused():
    with pytest.raises(ValueError, match=r"called ring_attention differently.*dtype"):
        run_on_processes(mismatched, 2, "dtype")


def test_without_a_process_group():
    q = torch.randn(1, 4, D)
    with pytest.raises(RuntimeError, match="initialised process group"):
        attnlib.ring_attention(q, q, q)


def test_local_input_errors():
    q = torch.randn(1, 4, D)
    with pytest.raises(ValueError, match="same n_local"):
        attnlib.ring_attention(q, torch.randn(1, 6, D), torch.randn(1, 6, D))
    with pytest.raises(ValueError, match="zig-zag"):
        attnlib.ring_attention(torch.randn(1, 3, D), torch.randn(1, 3, D), torch.randn(1, 3, D), layout="zigzag")
    with pytest.raises(ValueError, match="layout"):
        attnlib.ring_attention(q, q, q, layout="striped")
    with pytest.raises(TypeError, match="dtype"):
        attnlib.ring_attention(q, q.double(), q)
    with pytest.raises(TypeError, match="causal"):
        attnlib.ring_attention(q, q, q, causal="yes")


@pytest.mark.parametrize("layout", ["contiguous", "zigzag"])
@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_shard_and_unshard(layout, world_size):
    x = torch.randn(2, 3, 8 * world_size, 5)
    blocks = [shard(x, r, world_size, layout) for r in range(world_size)]
    assert all(b.shape == (2, 3, 8, 5) for b in blocks)
    assert torch.equal(unshard(blocks, layout), x)
    every = torch.cat([positions(r, world_size, 8, layout) for r in range(world_size)])
    assert sorted(every.tolist()) == list(range(8 * world_size))


def test_what_each_process_holds():
    assert [positions(r, 2, 4).tolist() for r in range(2)] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert [positions(r, 2, 4, "zigzag").tolist() for r in range(2)] == [[0, 1, 6, 7], [2, 3, 4, 5]]
    with pytest.raises(ValueError, match="equal chunks"):
        shard(torch.randn(1, 6, 2), 0, 2, "zigzag")


def failing(rank, world_size):
    if rank == 1:
        raise KeyError("only process 1 fails")
    return rank


def test_run_on_processes_raises_the_worker_error():
    with pytest.raises(KeyError, match="only process 1") as caught:
        run_on_processes(failing, 2)
    assert "process 1 of 2" in "".join(caught.value.__notes__)
    assert run_on_processes(failing, 1) == [0]
    with pytest.raises(ValueError, match="world_size"):
        run_on_processes(failing, 0)


def threads(rank, world_size):
    return torch.get_num_threads()


def test_each_process_runs_on_one_thread(monkeypatch):
    # a ring of P processes asks for P cores, whatever the thread count it was started from
    # (OMP_NUM_THREADS=2 in the second nbval pass would otherwise put 2 P threads on 2 cores)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert run_on_processes(threads, 2) == [1, 1]
