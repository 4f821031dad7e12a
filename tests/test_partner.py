import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.nn import functional as F
from torch.testing import assert_close

from attnlib import bilinear_scores, dot_scores, softmax, train
from attnlib.experiments import partner as partner_module
from attnlib.experiments.partner import PartnerAttention, PartnerTask


@pytest.mark.parametrize("vocab_size, cycle_length", [(24, 3), (12, 2), (20, 5)])
def test_permutation_is_made_of_cycles_without_fixed_points(vocab_size, cycle_length):
    task = PartnerTask(vocab_size, cycle_length, n_cycles=1, seed=3)
    assert sorted(task.perm.tolist()) == list(range(vocab_size))  # a permutation
    assert (task.perm != torch.arange(vocab_size)).all()  # nobody is its own partner
    t = torch.arange(vocab_size)
    for _ in range(cycle_length):
        t = task.perm[t]
    assert torch.equal(t, torch.arange(vocab_size))  # perm^cycle_length = identity
    for cycle in task.cycles.tolist():
        assert [task.perm[a].item() for a in cycle] == cycle[1:] + cycle[:1]


def test_seed_fixes_the_permutation():
    assert torch.equal(PartnerTask(seed=5).perm, PartnerTask(seed=5).perm)
    assert not torch.equal(PartnerTask(seed=5).perm, PartnerTask(seed=6).perm)


@given(seed=st.integers(0, 10_000), n_cycles=st.integers(1, 4))
def test_batch_partners_and_targets(seed, n_cycles):
    task = PartnerTask(vocab_size=12, cycle_length=3, n_cycles=n_cycles, n_labels=5)
    b = task.batch(7, torch.Generator().manual_seed(seed))
    n = 3 * n_cycles
    assert b.tokens.shape == b.labels.shape == b.partner.shape == b.targets.shape == (7, n)
    for row in b.tokens.tolist():
        assert len(set(row)) == n  # distinct tokens
    assert torch.equal(b.tokens.gather(1, b.partner), task.perm[b.tokens])  # the partner sits there
    assert torch.equal(b.targets, b.labels.gather(1, b.partner))
    assert b.labels.min() >= 0 and b.labels.max() < 5


def test_batch_is_reproducible_with_a_generator():
    task = PartnerTask()
    a = task.batch(4, torch.Generator().manual_seed(1))
    b = task.batch(4, torch.Generator().manual_seed(1))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_dot_model_weights_are_softmax_of_raw_dot_products():
    task = PartnerTask()
    model = PartnerAttention(task.vocab_size, task.n_labels, d_model=8, score="dot").double()
    b = task.batch(3, torch.Generator().manual_seed(0))
    logits, weights = model(b.tokens, b.labels)
    e = model.embed(b.tokens)  # q = k = e
    assert_close(weights, softmax(dot_scores(e, e)))
    assert_close(logits, weights @ model.values(b.labels))


def test_bilinear_model_uses_its_weight_and_starts_as_the_dot_model():
    task = PartnerTask()
    torch.manual_seed(0)
    dot = PartnerAttention(task.vocab_size, task.n_labels, d_model=8, score="dot").double()
    torch.manual_seed(0)
    bil = PartnerAttention(task.vocab_size, task.n_labels, d_model=8, score="bilinear").double()
    b = task.batch(3, torch.Generator().manual_seed(0))
    assert_close(bil(b.tokens, b.labels), dot(b.tokens, b.labels))  # W = I at the start
    with torch.no_grad():
        bil.weight.copy_(torch.randn(8, 8, dtype=torch.float64))
    e = bil.embed(b.tokens)
    assert_close(bil(b.tokens, b.labels)[1], softmax(bilinear_scores(e, e, bil.weight)))


def test_a_bilinear_weight_can_express_the_permutation():
    # One-hot embeddings and W[t, perm(t)] = 1: each token scores exactly its partner highly.
    task = PartnerTask()
    v = task.vocab_size
    model = PartnerAttention(v, task.n_labels, d_model=v, score="bilinear").double()
    with torch.no_grad():
        model.embed.weight.copy_(torch.eye(v, dtype=torch.float64))
        model.weight.zero_()
        model.weight[torch.arange(v), task.perm] = 50.0
        model.values.weight.copy_(10.0 * torch.eye(task.n_labels, dtype=torch.float64))
    assert task.evaluate(model, batch_size=200) == (1.0, 1.0)


def fit_attention_to_partners(model, task, steps=200):
    """Train the scores alone, directly for attention on the partner: the best case for each score."""

    def loss(m, b):
        _, weights = m(b.tokens, b.labels)  # (32, n, n)
        return -weights.gather(-1, b.partner[..., None]).clamp_min(1e-12).log().mean()

    train(model, lambda gen: task.batch(32, gen), loss, steps=steps, lr=0.05, seed=0)
    return task.evaluate(model, batch_size=100)[1]


@pytest.mark.parametrize("cycle_length", [2, 3])
def test_dot_scores_cannot_find_every_partner_but_bilinear_can(cycle_length):
    # Tied dot scores: s(t, t) = |e_t|^2 >= e_t · e_perm(t) for at least one token of every cycle
    # (Cauchy-Schwarz around the cycle), so at most (L - 1) / L of the positions attend most to
    # their partner, however the embedding is trained. A bilinear W has no such ceiling.
    task = PartnerTask(vocab_size=12, cycle_length=cycle_length, n_cycles=2)
    ceiling = (cycle_length - 1) / cycle_length
    torch.manual_seed(0)
    dot = PartnerAttention(task.vocab_size, task.n_labels, d_model=8, score="dot").double()
    torch.manual_seed(0)
    bilinear = PartnerAttention(task.vocab_size, task.n_labels, d_model=8, score="bilinear").double()
    assert fit_attention_to_partners(dot, task) <= ceiling
    assert fit_attention_to_partners(bilinear, task) > ceiling


def test_training_is_reproducible_and_bilinear_learns():
    task = PartnerTask()
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = PartnerAttention(task.vocab_size, task.n_labels, d_model=16, score="bilinear")
        runs.append((task.train(model, steps=150), task.evaluate(model, batch_size=500)))
    assert runs[0] == runs[1]
    losses, (accuracy, partner_hit) = runs[0]
    assert losses[-1] < losses[0] / 4
    assert accuracy > 0.9 and partner_hit > 0.9


def test_bad_task_arguments():
    with pytest.raises(ValueError, match="cycle_length=5, vocab_size=24"):
        PartnerTask(vocab_size=24, cycle_length=5)
    with pytest.raises(ValueError, match="cycle_length=1"):
        PartnerTask(vocab_size=24, cycle_length=1)
    with pytest.raises(ValueError, match="n_cycles <= vocab_size / cycle_length = 8.*n_cycles=9"):
        PartnerTask(vocab_size=24, cycle_length=3, n_cycles=9)
    with pytest.raises(ValueError, match="n_labels=1"):
        PartnerTask(n_labels=1)


def test_task_rejects_a_model_of_another_size():
    task = PartnerTask(vocab_size=24, n_labels=8)
    with pytest.raises(ValueError, match=r"\(vocab_size, n_labels\) = \(12, 8\), the task \(24, 8\)"):
        task.evaluate(PartnerAttention(12, 8))
    with pytest.raises(TypeError, match="PartnerAttention, got Linear"):
        task.train(torch.nn.Linear(2, 2))


def test_bad_model_arguments():
    with pytest.raises(ValueError, match="unknown score 'additive'; allowed: 'dot', 'bilinear', 'projected'"):
        PartnerAttention(24, 8, score="additive")
    with pytest.raises(ValueError, match="d_head must be >= 1, got 0"):
        PartnerAttention(24, 8, score="projected", d_head=0)
    model = PartnerAttention(24, 8)
    with pytest.raises(ValueError, match=r"same shape.*\(2, 9\) and \(2, 8\)"):
        model(torch.zeros(2, 9, dtype=torch.long), torch.zeros(2, 8, dtype=torch.long))


def test_projected_head_is_torch_scaled_dot_product_attention_of_its_projections():
    # Reference: torch's scaled_dot_product_attention on W_q e and W_k e, with the label values.
    task = PartnerTask()
    torch.manual_seed(0)
    model = PartnerAttention(task.vocab_size, task.n_labels, d_model=16, score="projected", d_head=4).double()
    b = task.batch(5, torch.Generator().manual_seed(0))
    logits, weights = model(b.tokens, b.labels)
    e = model.embed(b.tokens)  # (5, n, 16)
    q, k, v = e @ model.w_q.weight.T, e @ model.w_k.weight.T, model.values(b.labels)  # (5, n, 4), (5, n, 4), (5, n, 8)
    assert model.w_q.weight.shape == model.w_k.weight.shape == (4, 16)
    assert_close(logits, F.scaled_dot_product_attention(q, k, v))
    eye = torch.eye(b.tokens.shape[1], dtype=torch.float64).expand(5, -1, -1)  # values = I: output = weights
    assert_close(weights, F.scaled_dot_product_attention(q, k, eye))


def test_projected_head_is_a_low_rank_bilinear_score():
    task = PartnerTask()
    torch.manual_seed(1)
    model = PartnerAttention(task.vocab_size, task.n_labels, d_model=16, score="projected", d_head=4).double()
    b = task.batch(3, torch.Generator().manual_seed(0))
    e = model.embed(b.tokens)
    W = model.w_q.weight.T @ model.w_k.weight / 2.0  # W_q^T W_k / sqrt(d_head): (16, 16)
    assert torch.linalg.matrix_rank(W).item() == 4
    assert not torch.allclose(W, W.T)  # not symmetric: the direction obstacle does not apply
    assert_close(model(b.tokens, b.labels)[1], torch.softmax(e @ W @ e.transpose(-2, -1), dim=-1))


def test_projected_head_learns_the_partner_task_as_bilinear_does():
    task = PartnerTask()
    torch.manual_seed(0)
    model = PartnerAttention(task.vocab_size, task.n_labels, d_model=16, score="projected", d_head=8)
    bilinear = PartnerAttention(task.vocab_size, task.n_labels, d_model=16, score="bilinear")
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in bilinear.parameters())
    losses = task.train(model, steps=150, seed=0)
    accuracy, partner_hit = task.evaluate(model, batch_size=500)
    assert losses[-1] < losses[0] / 4
    assert accuracy > 0.9 and partner_hit > 0.9


def test_tied_dot_head_cannot_rank_partner_above_predecessor_around_a_cycle():
    # A symmetric score: in every 3-cycle some token scores its predecessor at least as high as its partner.
    task = PartnerTask()
    torch.manual_seed(0)
    model = PartnerAttention(task.vocab_size, task.n_labels, d_model=16, score="dot").double()
    fit_attention_to_partners(model, task, steps=100)
    tokens = torch.arange(task.vocab_size)[None]
    _, w = model(tokens, torch.zeros_like(tokens))  # (1, 24, 24): row t is token t
    on_partner = w[0].gather(1, task.perm[:, None])[:, 0]
    on_predecessor = w[0].gather(1, task.perm.argsort()[:, None])[:, 0]
    for cycle in task.cycles:
        assert not (on_partner[cycle] > on_predecessor[cycle]).all()


def test_attention_parts_split_each_row_of_weights():
    task = PartnerTask()
    torch.manual_seed(0)
    model = PartnerAttention(task.vocab_size, task.n_labels, d_model=8, score="dot").double()
    b = task.batch(4, torch.Generator().manual_seed(0))
    parts = partner_module.attention_parts(model, b)
    _, w = model(b.tokens, b.labels)  # (4, 9, 9)
    i = torch.arange(9)
    for row in range(4):
        pred = [int((b.partner[row] == j).nonzero()) for j in range(9)]  # the position whose partner j is
        assert torch.equal(b.partner[row][pred], i)
    # by a loop, for one reference: mean weight on the partner
    on_partner = torch.stack([w[r, j, b.partner[r, j]] for r in range(4) for j in range(9)]).mean()
    assert abs(parts["partner"] - on_partner.item()) < 1e-12
    assert abs(parts["self"] - w.diagonal(dim1=-2, dim2=-1).mean().item()) < 1e-12
    assert abs(sum(parts[k] for k in ("self", "partner", "predecessor", "the rest")) - 1.0) < 1e-12
    assert abs(parts["row maximum"] - w.max(-1).values.mean().item()) < 1e-12


def test_obstacle_tests_pass_for_the_permutation_and_respect_the_bound_for_tied_dot():
    task = PartnerTask()
    v = task.vocab_size
    exact = PartnerAttention(v, task.n_labels, d_model=v, score="bilinear").double()
    with torch.no_grad():
        exact.embed.weight.copy_(torch.eye(v, dtype=torch.float64))
        exact.weight.zero_()
        exact.weight[torch.arange(v), task.perm] = 5.0
    above_self, above_pred = partner_module.obstacle_tests(exact, task)
    assert above_self.all() and above_pred.all()
    torch.manual_seed(0)
    tied = PartnerAttention(v, task.n_labels, d_model=16, score="dot").double()
    fit_attention_to_partners(tied, task, steps=100)
    above_self, above_pred = partner_module.obstacle_tests(tied, task)
    for cycle in task.cycles:  # each obstacle: some token of every cycle fails
        assert not above_self[cycle].all() and not above_pred[cycle].all()
