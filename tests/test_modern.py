"""Chapter 12's tasks, loss, training and the rotary porting fix (attnlib.experiments.modern)."""

from dataclasses import replace

import pytest
import torch
from torch.testing import assert_close

from attnlib import Config, TransformerLM, sliding_window_mask
from attnlib.experiments import modern


def test_recall_asks_every_key_once_and_the_answer_is_that_keys_value():
    n_keys, n_values, p = 16, 8, 6
    idx, targets = modern.recall_batch(64, p, n_keys, n_values, torch.Generator().manual_seed(0))
    assert idx.shape == targets.shape == (64, 1 + 2 * p)
    assert (idx[:, 0] == modern.BOS_ID).all() and (targets[:, : 1 + p] == -100).all()
    for row, answers in zip(idx.tolist(), targets.tolist(), strict=True):
        facts = {(f - 1 - n_keys) // n_values: (f - 1 - n_keys) % n_values for f in row[1 : 1 + p]}
        questions = [q - 1 for q in row[1 + p :]]
        assert len(facts) == p and sorted(questions) == sorted(facts)  # distinct keys, each asked once
        assert answers[1 + p :] == [facts[q] for q in questions]


def test_recall_rejects_more_pairs_than_keys():
    with pytest.raises(ValueError, match="n_pairs <= n_keys"):
        modern.recall_batch(2, 5, 4, 3)


def test_bigram_backcopy_copies_after_a_trigger_and_follows_the_table_otherwise():
    g = torch.Generator().manual_seed(0)
    table = modern.bigram_backcopy_table(10, 2.0, g)
    assert_close(table.sum(-1), torch.ones(10))
    assert (table[:, modern.BOS_ID] == 0).all()
    triggers = torch.tensor([1, 2])
    seqs = modern.bigram_backcopy(table, triggers, 4000, 20, g)
    assert (seqs[:, 0] == modern.BOS_ID).all() and (seqs[:, 1:] != modern.BOS_ID).all()
    prev, cur = seqs[:, 2:-1], seqs[:, 3:]  # positions t >= 3 and the token before each
    copy = torch.isin(prev, triggers)
    assert torch.equal(cur[copy], seqs[:, 1:-2][copy])  # x_t = x_{t-2} after a trigger
    drawn_from = seqs[:, 1:-1][~torch.isin(seqs[:, 1:-1], triggers)]  # bigram steps t >= 2
    drawn_to = seqs[:, 2:][~torch.isin(seqs[:, 1:-1], triggers)]
    counts = torch.zeros(10, 10).index_put_((drawn_from, drawn_to), torch.ones(len(drawn_to)), accumulate=True)
    frequent = counts.sum(-1) > 2000  # rows with enough draws to compare
    freq = counts[frequent] / counts[frequent].sum(-1, keepdim=True)
    assert (freq - table[frequent]).abs().max() < 0.05


def _model(n_kv_heads=2, pairing="half", seed=0):
    torch.manual_seed(seed)
    config = Config(vocab_size=12, context=9, d_model=16, n_heads=2, n_layers=2, n_kv_heads=n_kv_heads,
                    rotary=True, pairing=pairing)
    return TransformerLM(config).double().eval()


def test_next_token_loss_is_the_cross_entropy_of_the_questions_only_and_takes_the_mask():
    model = _model()
    idx = torch.randint(12, (3, 9))
    targets = torch.full((3, 9), -100)
    targets[:, 5:] = torch.randint(12, (3, 4))
    log_p = torch.log_softmax(model(idx), -1)  # (3, 9, 12)
    expected = -log_p[:, 5:].gather(-1, targets[:, 5:, None]).mean()
    assert_close(modern.next_token_loss(model, (idx, targets)), expected)
    mask = sliding_window_mask(9, 2, sinks=1)
    windowed = torch.log_softmax(model(idx, mask=mask), -1)[:, 5:].gather(-1, targets[:, 5:, None])
    assert_close(modern.next_token_loss(model, (idx, targets), mask), -windowed.mean())
    per_position = modern.next_token_loss(model, (idx, targets), reduction="none")
    assert per_position.shape == (3, 9) and (per_position[:, :5] == 0).all()


def test_train_decoder_is_deterministic_learns_and_leaves_the_global_generator_alone():
    config = Config(vocab_size=1 + 4 + 4 * 3, context=7, d_model=16, n_heads=2, n_layers=1, rotary=True)

    def batch(g):
        return modern.recall_batch(16, 3, 4, 3, g)

    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    (a, losses_a), (b, losses_b) = (modern.train_decoder(config, batch, steps=60, lr=1e-2, seed=s) for s in (0, 0))
    assert torch.equal(torch.random.get_rng_state(), before)  # weights were drawn inside fork_rng
    assert losses_a == losses_b and all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not a.training
    assert sum(losses_a[-10:]) / 10 < sum(losses_a[:10]) / 10


@pytest.mark.parametrize("n_kv_heads", [2, 1])
def test_interleaved_rows_port_half_pairing_weights_to_interleaved_code(n_kv_heads):
    half = _model(n_kv_heads)
    wrong = TransformerLM(replace(half.config, pairing="interleaved")).double().eval()
    wrong.load_state_dict(half.state_dict())  # every shape fits: nothing warns
    idx = torch.randint(12, (2, 9), generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(wrong(idx), half(idx), atol=1e-3)  # the porting trap
    rows = modern.interleaved_rows(half.config)
    assert sorted(rows.tolist()) == list(range(len(rows)))  # a permutation
    with torch.no_grad():
        for block in wrong.blocks:
            block.attn.qkv.weight.copy_(block.attn.qkv.weight[rows])
            block.attn.qkv.bias.copy_(block.attn.qkv.bias[rows])
    assert_close(wrong(idx), half(idx), rtol=1e-10, atol=1e-12)
