import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.testing import assert_close

from attnlib import count_parameters, sinusoidal_positions
from attnlib.experiments.long_range import (
    AttentionClassifier,
    Grid,
    RecurrentClassifier,
    accuracy,
    label_of,
    remember_first_token,
    steps_to,
    train_classifier,
    train_grid,
)

V, C = 16, 8


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("distance, length", [(0, None), (5, None), (5, 12), (30, 31)])
def test_shapes_and_token_ranges(distance, length):
    tokens, labels = remember_first_token(64, distance, length=length, generator=gen(0))
    n = distance + 1 if length is None else length
    assert tokens.shape == (64, n) and labels.shape == (64,)
    assert tokens.dtype == labels.dtype == torch.int64
    where = n - 1 - distance
    assert torch.equal(tokens[:, where], labels)
    assert ((labels >= 0) & (labels < 8)).all()
    others = torch.cat([tokens[:, :where], tokens[:, where + 1 :]], dim=1)
    assert ((others >= 8) & (others < 16)).all()  # every other position is a distractor


def test_same_seed_same_batch_other_seed_other_batch():
    a = remember_first_token(32, 10, generator=gen(3))
    b = remember_first_token(32, 10, generator=gen(3))
    c = remember_first_token(32, 10, generator=gen(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_labels_and_distractors_cover_their_vocabularies():
    tokens, labels = remember_first_token(4000, 3, n_classes=5, n_distractors=3, generator=gen(0))
    assert torch.equal(labels.unique(), torch.arange(5))
    assert torch.equal(tokens[:, 1:].unique(), torch.arange(5, 8))
    # uniform labels: every class within 20% of its expected count 800
    assert (labels.bincount().float() - 800).abs().max() < 160


@given(st.integers(0, 40), st.integers(0, 10), st.integers(0, 2**31 - 1))
def test_label_depends_only_on_the_token_d_back(distance, extra, seed):
    tokens, labels = remember_first_token(8, distance, length=distance + 1 + extra, generator=gen(seed))
    assert torch.equal(label_of(tokens, distance), labels)
    where = tokens.shape[1] - 1 - distance
    changed = tokens.clone()
    others = torch.ones(tokens.shape[1], dtype=torch.bool)
    others[where] = False
    changed[:, others] = torch.randint(16, (8, int(others.sum())), generator=gen(seed + 1))  # every other token
    assert torch.equal(label_of(changed, distance), labels)
    changed[:, where] = (tokens[:, where] + 1) % 8  # that token
    assert not (label_of(changed, distance) == labels).any()


@pytest.mark.parametrize(
    "kwargs",
    [dict(batch_size=0, distance=3), dict(batch_size=4, distance=-1), dict(batch_size=4, distance=3, n_classes=1),
     dict(batch_size=4, distance=3, n_distractors=0), dict(batch_size=4, distance=3, length=3)],
)
def test_bad_arguments_raise(kwargs):
    expected = "length must be at least distance" if "length" in kwargs else "need batch_size >= 1, distance >= 0"
    with pytest.raises(ValueError, match=expected):
        remember_first_token(**kwargs)


def test_label_of_bad_input_raises():
    with pytest.raises(ValueError, match="length > distance"):
        label_of(torch.zeros(2, 4, dtype=torch.int64), 4)
    with pytest.raises(ValueError, match=r"\(batch_size, length\)"):
        label_of(torch.zeros(4, dtype=torch.int64), 1)


# --- classifiers ---------------------------------------------------------------------------------


def test_attention_classifier_reads_the_last_row_of_the_full_layer():
    model = AttentionClassifier(V, C, d_model=8).double()
    x = torch.randn(3, 11, 8, dtype=torch.float64)
    full, _ = model.attn(x)  # (3, 11, 8): every row
    assert_close(model.encode(x), full[:, -1, :])


def test_attention_classifier_last_row_returns_the_last_row_of_the_weights():
    model = AttentionClassifier(V, C, d_model=8).double()
    x = torch.randn(3, 11, 8, dtype=torch.float64)
    full_out, full_w = model.attn(x)  # (3, 11, 8), (3, 11, 11)
    out, w = model.last_row(x)  # (3, 8), (3, 11)
    assert_close(out, full_out[:, -1, :])
    assert_close(w, full_w[:, -1, :])
    assert_close(w.sum(-1), torch.ones(3, dtype=torch.float64))


def test_attention_classifier_adds_sinusoidal_positions():
    model = AttentionClassifier(V, C, d_model=8)
    tokens = torch.randint(V, (2, 9))
    assert_close(model.inputs(tokens) - model.embed(tokens), sinusoidal_positions(9, 8).expand(2, 9, 8))
    assert model(tokens).shape == (2, C)


def test_without_positions_the_attention_model_sees_a_bag_of_tokens():
    model = AttentionClassifier(V, C, d_model=8, positions=False)
    tokens = torch.randint(V, (4, 10))
    shuffled = torch.cat([tokens[:, :-1][:, torch.randperm(9)], tokens[:, -1:]], dim=1)  # last token stays
    assert_close(model(shuffled), model(tokens))
    with_positions = AttentionClassifier(V, C, d_model=8)
    assert not torch.allclose(with_positions(shuffled), with_positions(tokens))


@pytest.mark.parametrize("cell, rnn_type", [("lstm", nn.LSTM), ("rnn", nn.RNN)])
def test_recurrent_classifier_reads_the_last_hidden_state(cell, rnn_type):
    model = RecurrentClassifier(V, C, d_hidden=6, cell=cell)
    assert isinstance(model.rnn, rnn_type)
    tokens = torch.randint(V, (3, 7))
    out, _ = model.rnn(model.embed(tokens))  # (3, 7, 6)
    assert_close(model(tokens), model.readout(out[:, -1]))


def test_parameter_counts_match_the_formulas_and_each_other():
    d, h = 32, 20
    att, lstm = AttentionClassifier(V, C, d_model=d), RecurrentClassifier(V, C, d_hidden=h)
    assert count_parameters(att) == V * d + 3 * d * d + d * C + C
    assert count_parameters(lstm) == V * h + 4 * h * (h + h) + 8 * h + h * C + C
    assert abs(count_parameters(lstm) / count_parameters(att) - 1) <= 0.10


def test_classifiers_reject_bad_input():
    with pytest.raises(ValueError, match="unknown cell 'gru'"):
        RecurrentClassifier(V, C, cell="gru")
    with pytest.raises(ValueError, match=r"\(batch, n\)"):
        RecurrentClassifier(V, C)(torch.zeros(5, dtype=torch.int64))
    with pytest.raises(ValueError, match="n <= 16"):
        AttentionClassifier(V, C, d_model=8, context=16)(torch.zeros(2, 17, dtype=torch.int64))


# --- training ------------------------------------------------------------------------------------


def test_training_is_deterministic_under_a_seed():
    held_out = remember_first_token(64, 5, generator=torch.Generator().manual_seed(9))
    runs = []
    for _ in range(2):
        torch.manual_seed(1)
        model = RecurrentClassifier(V, C, d_hidden=8)
        record = train_classifier(model, 5, steps=4, batch_size=8, lr=1e-2, seed=2, validation=held_out, every=2)
        runs.append((record, [p.detach().clone() for p in model.parameters()]))
    assert runs[0][0] == runs[1][0] and len(runs[0][0]) == 2
    for a, b in zip(runs[0][1], runs[1][1], strict=True):
        assert torch.equal(a, b)


def test_attention_model_learns_the_task():
    torch.manual_seed(0)
    model = AttentionClassifier(V, C, d_model=16)
    train_classifier(model, 20, steps=150, batch_size=32, lr=3e-3, seed=0)
    tokens, labels = remember_first_token(500, 20, generator=torch.Generator().manual_seed(99))
    assert accuracy(model, tokens, labels) > 0.9


def test_accuracy_counts_argmax_hits():
    class Fixed(nn.Module):
        def forward(self, tokens):
            return nn.functional.one_hot(tokens[:, 0], C).float()  # predicts the first token

    tokens = torch.tensor([[1, 9], [2, 9], [3, 9], [4, 9]])
    assert accuracy(Fixed(), tokens, torch.tensor([1, 2, 0, 0])) == 0.5


# --- the open forget gate, early stopping, the grid of rates -------------------------------------


def test_forget_bias_sets_the_gate_that_keeps_the_cell_state():
    # torch's documented LSTM: c_1 = f * c_0 + i * g with f = sigmoid(W_if x + b_if + W_hf h_0 + b_hf).
    # With every weight and every other bias at zero, c_1 = sigmoid(forget_bias) * c_0 + 0.5 * tanh(0).
    model = RecurrentClassifier(V, C, d_hidden=4, forget_bias=3.0)
    h = model.rnn.hidden_size
    assert_close(model.rnn.bias_ih_l0[h : 2 * h] + model.rnn.bias_hh_l0[h : 2 * h], torch.full((h,), 3.0))
    with torch.no_grad():
        for name in ["weight_ih_l0", "weight_hh_l0"]:
            getattr(model.rnn, name).zero_()
        for name in ["bias_ih_l0", "bias_hh_l0"]:
            bias = getattr(model.rnn, name)
            keep = bias[h : 2 * h].clone()
            bias.zero_()
            bias[h : 2 * h] = keep
        c0 = torch.ones(1, 1, h)
        _, (_, c1) = model.rnn(torch.randn(1, 1, h), (torch.zeros(1, 1, h), c0))
    assert_close(c1, torch.sigmoid(torch.tensor(3.0)).expand(1, 1, h))


def test_forget_bias_needs_an_lstm():
    with pytest.raises(ValueError, match="forget_bias needs cell='lstm'"):
        RecurrentClassifier(V, C, cell="rnn", forget_bias=3.0)


def test_training_stops_once_the_validation_target_is_met():
    torch.manual_seed(0)
    model = AttentionClassifier(V, C, d_model=16)
    held_out = remember_first_token(200, 3, generator=torch.Generator().manual_seed(5))
    record = train_classifier(model, 3, steps=300, batch_size=32, lr=1e-2, seed=0, validation=held_out, every=5,
                              target=0.9)
    steps, accs = zip(*record, strict=True)
    assert list(steps) == list(range(5, 5 * len(record) + 1, 5))  # checked every 5 steps
    assert accs[-1] >= 0.9 and all(a < 0.9 for a in accs[:-1]) and steps[-1] < 300  # stopped at the first hit
    assert accs[-1] == accuracy(model, *held_out)  # the model is left where training stopped


def test_without_a_target_training_runs_the_whole_budget():
    torch.manual_seed(0)
    model = RecurrentClassifier(V, C, d_hidden=4)
    held_out = remember_first_token(20, 3, generator=torch.Generator().manual_seed(5))
    record = train_classifier(model, 3, steps=12, batch_size=4, lr=1e-3, seed=0, validation=held_out, every=4)
    assert [s for s, _ in record] == [4, 8, 12]
    assert train_classifier(model, 3, steps=2, batch_size=4, lr=1e-3, seed=0) == []


def test_steps_to_is_the_first_step_at_the_threshold():
    record = [(20, 0.5), (40, 0.96), (60, 0.94), (80, 1.0)]
    assert steps_to(record, 0.95) == 40.0
    assert steps_to(record, 1.0) == 80.0
    assert steps_to(record, 1.01) == float("inf")


def test_grid_best_takes_the_highest_mean_validation_accuracy_then_fewer_steps():
    inf = float("inf")

    def grid(val, steps):
        val, steps = torch.tensor(val), torch.tensor(steps, dtype=torch.float64)
        return Grid([1e-3, 3e-3, 1e-2], val, val, steps, [[None]] * 3)

    assert grid([[0.5, 0.7], [0.9, 0.8], [1.0, 0.6]], [[inf, inf]] * 3).best() == 1  # means 0.6, 0.85, 0.8
    assert grid([[1.0, 1.0]] * 3, [[60.0, 80.0], [40.0, 60.0], [40.0, 80.0]]).best() == 1  # ties: fewer steps
    assert grid([[0.2, 0.2]] * 3, [[inf, inf]] * 3).best() == 0  # full tie: the first rate


def test_train_grid_starts_every_rate_from_the_seeds_weights():
    # at a rate of 1e-30 AdamW's steps vanish in float32 rounding: the weights stay where the seed put
    # them, so each test accuracy at that rate is the untrained model's
    def make_model(seed):
        torch.manual_seed(seed)
        return RecurrentClassifier(V, C, d_hidden=4)

    held_out = remember_first_token(100, 4, generator=torch.Generator().manual_seed(3))
    grid = train_grid(make_model, 4, lrs=[1e-30, 1e-2], seeds=[0, 1, 2], validation=held_out, test=held_out,
                      steps=6, batch_size=8, every=3)
    assert grid.test.shape == grid.val.shape == grid.steps.shape == (2, 3)
    for j, seed in enumerate([0, 1, 2]):
        assert grid.test[0, j].item() == accuracy(make_model(seed), *held_out)
        for i in range(2):
            assert grid.test[i, j].item() == accuracy(grid.models[i][j], *held_out)
