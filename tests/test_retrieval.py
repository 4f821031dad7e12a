import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.nn.utils import parameters_to_vector
from torch.testing import assert_close

from attnlib import attention, attention_entropy
from attnlib.experiments.retrieval import (
    RetrievalAttention,
    evaluate,
    initial_model,
    nudge,
    retrieval_batch,
    train_retrieval,
    twin_runs,
)


@given(
    batch=st.integers(1, 8),
    n_pairs=st.integers(1, 12),
    extra=st.integers(0, 10),
    seed=st.integers(0, 2**31 - 1),
)
def test_retrieval_batch_answer_is_the_value_of_the_matching_key(batch, n_pairs, extra, seed):
    n_symbols = n_pairs + extra
    g = torch.Generator().manual_seed(seed)
    keys, values, query, target = retrieval_batch(batch, n_pairs, n_symbols, generator=g)
    assert keys.shape == values.shape == (batch, n_pairs)
    assert query.shape == target.shape == (batch,)
    for b in range(batch):
        assert len(set(keys[b].tolist())) == n_pairs  # distinct keys: exactly one match
        match = (keys[b] == query[b]).nonzero().flatten()
        assert match.numel() == 1
        assert target[b] == values[b, match[0]]
    for t in (keys, values, query, target):
        assert t.dtype == torch.int64 and 0 <= t.min() and t.max() < n_symbols


def test_retrieval_batch_is_reproducible_with_a_generator():
    a = retrieval_batch(4, 5, 9, generator=torch.Generator().manual_seed(3))
    b = retrieval_batch(4, 5, 9, generator=torch.Generator().manual_seed(3))
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)


@pytest.mark.parametrize("batch, n_pairs, n_symbols", [(0, 2, 4), (2, 0, 4), (2, 5, 4)])
def test_retrieval_batch_rejects_bad_sizes(batch, n_pairs, n_symbols):
    with pytest.raises(ValueError, match="n_pairs"):
        retrieval_batch(batch, n_pairs, n_symbols)


@pytest.mark.parametrize("score, scale", [("dot", 1.0), ("scaled_dot", 1 / math.sqrt(8))])
def test_model_is_one_attention_head_with_the_chosen_scale(score, scale):
    model = RetrievalAttention(n_symbols=10, d_head=8, score=score).double()
    keys, values, query, _ = retrieval_batch(3, 4, 10)
    logits, weights = model(keys, values, query)
    q = model.key_embedding(query) @ model.w_q.weight.T  # (3, 8)
    k = model.key_embedding(keys) @ model.w_k.weight.T  # (3, 4, 8)
    expected_w = torch.softmax(scale * (k @ q.unsqueeze(-1)).squeeze(-1), dim=-1)  # (3, 4)
    expected_out = (expected_w.unsqueeze(-1) * model.value_embedding(values)).sum(1)  # (3, 8)
    assert_close(weights, expected_w)
    assert_close(logits, model.readout(expected_out))
    out, _ = attention(q.unsqueeze(1), k, model.value_embedding(values), score=score)
    assert_close(logits, model.readout(out.squeeze(1)))


def test_model_queries_and_keys_start_with_unit_variance_components():
    model = RetrievalAttention(n_symbols=400, d_head=64)
    with torch.no_grad():
        q = model.w_q(model.key_embedding.weight)  # (400, 64)
    assert abs(q.var().item() - 1.0) < 0.1


def test_model_rejects_unknown_score_and_bad_shapes():
    with pytest.raises(ValueError, match="score"):
        RetrievalAttention(10, 8, score="bilinear")
    model = RetrievalAttention(10, 8)
    keys, values, query, _ = retrieval_batch(3, 4, 10)
    with pytest.raises(ValueError, match="query"):
        model(keys, values, query[:2])
    with pytest.raises(ValueError, match="values"):
        model(keys, values[:, :3], query)


def test_same_seed_gives_the_same_initial_weights_whatever_the_score():
    torch.manual_seed(0)
    scaled = RetrievalAttention(12, 16, score="scaled_dot")
    torch.manual_seed(0)
    dot = RetrievalAttention(12, 16, score="dot")
    for a, b in zip(scaled.parameters(), dot.parameters(), strict=True):
        assert torch.equal(a, b)


def test_training_is_reproducible():
    kwargs = dict(d_head=16, n_symbols=12, n_pairs=4, steps=20, batch_size=32, lr=1e-2)
    model, losses = train_retrieval("dot", **kwargs)
    again, losses_again = train_retrieval("dot", **kwargs)
    assert losses == losses_again and len(losses) == 20
    for a, b in zip(model.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)


def test_the_scaled_head_learns_the_task():
    kwargs = dict(d_head=16, n_symbols=12, n_pairs=4, steps=150, batch_size=32, lr=1e-2)
    model, losses = train_retrieval("scaled_dot", **kwargs)
    assert sum(losses[-10:]) / 10 < 0.5 * math.log(12)  # well below chance level, log(n_symbols)
    keys, values, query, target = retrieval_batch(500, 4, 12, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        accuracy = (model(keys, values, query)[0].argmax(-1) == target).float().mean()
    assert accuracy > 0.9


def test_nudge_moves_every_weight_by_exactly_one_rounding_step():
    model = RetrievalAttention(n_symbols=10, d_head=8)
    before = [p.detach().clone() for p in model.parameters()]
    nudge(model)
    for old, new in zip(before, model.parameters(), strict=True):
        assert (new > old).all()
        # no float32 lies strictly between the two: the next one up from old is new
        assert torch.equal(torch.from_numpy(np.nextafter(old.numpy(), np.float32(np.inf))), new.detach())


def test_initial_model_is_the_start_of_train_retrieval_and_leaves_the_global_generator_alone():
    state = torch.random.get_rng_state()
    start = initial_model("dot", d_head=8, n_symbols=10, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    snapshots = []
    train_retrieval("dot", d_head=8, n_symbols=10, n_pairs=4, steps=2, batch_size=4, seed=3, every=1,
                    callback=lambda step, m: snapshots.append([p.detach().clone() for p in m.parameters()]))
    assert len(snapshots) == 2
    twin = initial_model("dot", d_head=8, n_symbols=10, seed=3, nudged=True)
    for a, b in zip(start.parameters(), twin.parameters(), strict=True):
        assert not torch.equal(a, b) and torch.allclose(a, b, rtol=1e-6, atol=0)


def test_nudged_twin_differs_only_in_its_initial_weights():
    # lr so small that one Adam step (about lr in size) moves no float32 weight of this size
    kwargs = dict(d_head=8, n_symbols=10, n_pairs=4, steps=1, batch_size=4, lr=1e-30, seed=5)
    model, losses = train_retrieval("scaled_dot", **kwargs)
    twin, twin_losses = train_retrieval("scaled_dot", nudged=True, **kwargs)
    expected = initial_model("scaled_dot", d_head=8, n_symbols=10, seed=5, nudged=True)
    for a, b in zip(twin.parameters(), expected.parameters(), strict=True):
        assert torch.equal(a, b)  # lr ~ 0: the weights are still the nudged start
    assert abs(losses[0] - twin_losses[0]) < 1e-5  # same batch, weights one rounding step apart


def test_unscaled_head_with_a_smaller_w_q_starts_as_the_scaled_head():
    # dot with W_q / sqrt(d) is the same function as scaled_dot from the same seed
    keys, values, query, _ = retrieval_batch(6, 5, 12, generator=torch.Generator().manual_seed(0))
    scaled = initial_model("scaled_dot", d_head=16, n_symbols=12, seed=4).double()
    control = initial_model("dot", d_head=16, n_symbols=12, seed=4, w_q_gain=16**-0.5).double()
    with torch.no_grad():
        assert_close(control(keys, values, query), scaled(keys, values, query))
        assert_close(control.w_q.weight, scaled.w_q.weight / 4, rtol=0, atol=0)
    for name, p in scaled.named_parameters():  # only W_q differs
        if name != "w_q.weight":
            assert torch.equal(p, dict(control.named_parameters())[name])


def test_w_q_gain_must_be_positive():
    with pytest.raises(ValueError, match="w_q_gain"):
        RetrievalAttention(10, 8, w_q_gain=0.0)


def test_under_adam_the_unscaled_head_is_the_scaled_head_with_a_larger_w_q_stepped_faster():
    # dot from W_q equals scaled_dot from sqrt(d) W_q with sqrt(d) times the step on W_q:
    # Adam's step does not depend on the gradient's size, only on its direction
    d = 16
    batches = [retrieval_batch(8, 4, 12, generator=torch.Generator().manual_seed(s)) for s in range(5)]
    dot = initial_model("dot", d_head=d, n_symbols=12, seed=2).double()
    scaled = initial_model("scaled_dot", d_head=d, n_symbols=12, seed=2, w_q_gain=d**0.5).double()
    lr = 1e-3
    opt_dot = torch.optim.Adam(dot.parameters(), lr=lr, eps=1e-30)
    groups = [{"params": [scaled.w_q.weight], "lr": lr * d**0.5},
              {"params": [p for n, p in scaled.named_parameters() if n != "w_q.weight"]}]
    opt_scaled = torch.optim.Adam(groups, lr=lr, eps=1e-30)
    for batch in batches:
        for model, opt in ((dot, opt_dot), (scaled, opt_scaled)):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(*batch[:3])[0], batch[3]).backward()
            opt.step()
    assert_close(scaled.w_q.weight, d**0.5 * dot.w_q.weight)
    assert_close(scaled.w_k.weight, dot.w_k.weight)


def test_twin_runs_are_the_run_and_its_nudged_twin():
    setting = dict(d_head=8, n_symbols=10, n_pairs=4, steps=6, batch_size=8, lr=1e-2)
    test = retrieval_batch(50, 4, 10, generator=torch.Generator().manual_seed(9))
    found = twin_runs("dot", seed=3, test=test, every=2, **setting)
    model, curve = train_retrieval("dot", seed=3, **setting)
    twin, twin_curve = train_retrieval("dot", seed=3, nudged=True, **setting)
    assert found["curves"] == (curve, twin_curve)
    assert found["loss"] == (evaluate(model, test)[0], evaluate(twin, test)[0])
    assert found["accuracy"] == (evaluate(model, test)[1], evaluate(twin, test)[1])
    assert found["gap"].shape == (4,)  # steps 0, 2, 4, 6
    assert 0 < found["gap"][0] < 1e-6  # one rounding step apart at the start
    end = (parameters_to_vector(model.parameters()) - parameters_to_vector(twin.parameters())).norm()
    assert found["gap"][-1].item() == pytest.approx((end / parameters_to_vector(model.parameters()).norm()).item())
    with torch.no_grad():
        _, w0 = initial_model("dot", d_head=8, n_symbols=10, seed=3)(*test[:3])
    assert found["start_entropy"] == pytest.approx(attention_entropy(w0).mean().item())


def test_evaluate_is_the_cross_entropy_and_the_accuracy():
    test = retrieval_batch(40, 4, 10, generator=torch.Generator().manual_seed(2))
    model = initial_model("scaled_dot", d_head=8, n_symbols=10, seed=1)
    loss, accuracy = evaluate(model, test)
    with torch.no_grad():
        logits, _ = model(*test[:3])
    assert loss == pytest.approx(torch.nn.functional.cross_entropy(logits, test[3]).item())
    assert accuracy == (logits.argmax(-1) == test[3]).float().mean().item()
