import json
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F
from torch.testing import assert_close

from attnlib import Block, Config, TransformerLM, count_parameters
from attnlib.experiments.book_text import (
    CharTokenizer,
    book_documents,
    book_text,
    find_book_root,
    get_batch,
    interleaved_split,
    page_spans,
)
from attnlib.experiments.language_modelling import (
    LSTMLM,
    choose_learning_rate,
    evaluate_loss,
    lm_loss,
    train_lm,
)

# ---------------------------------------------------------------- corpus from a fake book


def _notebook(cells):
    return json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


@pytest.fixture
def fake_book(tmp_path):
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nparts:\n  - caption: Part\n    chapters:\n"
        "      - file: chapters/01_a\n      - file: chapters/02_not_written_yet\n"
        "  - caption: Reference\n    chapters:\n      - file: glossary.md\n"
    )
    (tmp_path / "intro.md").write_text("# Intro page\n")
    (tmp_path / "glossary.md").write_text("Glossary words.\n")
    (tmp_path / "chapters").mkdir()
    (tmp_path / "chapters" / "01_a.ipynb").write_text(_notebook([
        {"cell_type": "markdown", "metadata": {}, "source": ["# Chapter A\n", "First cell."]},
        {"cell_type": "code", "metadata": {}, "source": "print('code is not prose')", "outputs": [],
         "execution_count": None},
        {"cell_type": "markdown", "metadata": {}, "source": "Second cell."},
    ]))
    (tmp_path / "chapters" / "03_extra.ipynb").write_text(_notebook([
        {"cell_type": "markdown", "metadata": {}, "source": "Not in the toc yet."},
    ]))
    return tmp_path


def test_book_documents_reads_markdown_cells_and_pages_in_toc_order(fake_book):
    docs = book_documents(fake_book)
    assert list(docs) == ["intro", "chapters/01_a", "glossary", "chapters/03_extra"]
    assert docs["chapters/01_a"] == "# Chapter A\nFirst cell.\n\nSecond cell."
    assert docs["intro"] == "# Intro page\n"
    assert docs["chapters/03_extra"] == "Not in the toc yet."
    assert "code is not prose" not in book_text(fake_book)
    assert book_text(fake_book) == "\n\n".join(docs.values())


def test_find_book_root_walks_upwards(fake_book):
    assert find_book_root(fake_book / "chapters") == fake_book.resolve()
    assert find_book_root(fake_book) == fake_book.resolve()


def test_find_book_root_without_toc_raises(tmp_path):
    with pytest.raises(ValueError, match="_toc.yml"):
        find_book_root(tmp_path)


def test_book_documents_without_toc_raises(tmp_path):
    with pytest.raises(ValueError, match="_toc.yml"):
        book_documents(tmp_path)


# ---------------------------------------------------------------- tokenizer, split, batches


@given(st.text(min_size=1, max_size=200))
def test_tokenizer_round_trips(text):
    tok = CharTokenizer(text)
    ids = tok.encode(text)
    assert ids.dtype == torch.long and ids.shape == (len(text),)
    assert tok.decode(ids) == text
    assert tok.vocab_size == len(set(text))
    assert tok.decode(torch.arange(tok.vocab_size)) == "".join(sorted(set(text)))


def test_tokenizer_rejects_unknown_characters():
    with pytest.raises(ValueError, match="not in the vocabulary"):
        CharTokenizer("abc").encode("abd")


def test_tokenizer_rejects_ids_out_of_range():
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        CharTokenizer("abc").decode(torch.tensor([0, 3]))


def test_tokenizer_rejects_empty_text():
    with pytest.raises(ValueError, match="empty"):
        CharTokenizer("")


def test_batches_are_windows_shifted_by_one_and_stay_in_their_split():
    ids = torch.arange(1000)
    train = ids[:900]  # the rest would be held out
    x, y = get_batch(train, 16, 32, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (16, 32)
    assert torch.equal(x - x[:, :1], torch.arange(32).expand(16, 32))  # contiguous windows
    assert torch.equal(y, x + 1)  # targets: the next token
    assert y.max() < len(train)  # no batch of training data reaches the validation text


def test_batches_depend_only_on_the_generator():
    ids = torch.arange(500)
    a = get_batch(ids, 8, 10, torch.Generator().manual_seed(3))
    b = get_batch(ids, 8, 10, torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_batch_rejects_too_short_sequence():
    with pytest.raises(ValueError, match="context 10"):
        get_batch(torch.arange(10), 4, 10, torch.Generator())


# ---------------------------------------------------------------- the models


def _small_model(dtype=torch.float64):
    return TransformerLM(Config(vocab_size=11, context=16, d_model=16, n_heads=4, n_layers=2)).to(dtype)


@pytest.mark.parametrize("t", [0, 5, 14])
def test_causal_mask_keeps_position_t_from_seeing_the_future(t):
    model = _small_model()
    x = torch.randint(11, (3, 16))
    changed = x.clone()
    changed[:, t + 1 :] = (x[:, t + 1 :] + 1) % 11  # every token after t is different
    logits, new_logits = model(x), model(changed)
    assert_close(new_logits[:, : t + 1], logits[:, : t + 1], rtol=0, atol=0)  # positions <= t: unchanged
    assert not torch.allclose(new_logits[:, t + 1], logits[:, t + 1])  # position t+1 sees its new token


def test_a_block_without_the_causal_mask_lets_the_past_see_the_future():
    """The test above must be able to fail: an encoder's block (causal=False) reads later positions."""
    config = Config(vocab_size=11, context=16, d_model=16, n_heads=4, n_layers=1)
    torch.manual_seed(0)
    causal, encoder = Block(config).double(), Block(config, causal=False).double()
    encoder.load_state_dict(causal.state_dict())  # the same weights
    x = torch.randn(2, 16, 16, dtype=torch.float64)
    changed = x.clone()
    changed[:, 10] = torch.randn(2, 16, dtype=torch.float64)  # (a shift alone LayerNorm would remove)
    assert_close(causal(changed).x[:, :10], causal(x).x[:, :10], rtol=0, atol=0)
    assert not torch.allclose(encoder(changed).x[:, 3], encoder(x).x[:, 3])


def test_transformer_shapes_and_causal_weights():
    model = _small_model()
    logits, weights = model.forward_with_weights(torch.randint(11, (2, 9)))
    assert logits.shape == (2, 9, 11)
    assert len(weights) == 2 and all(w.shape == (2, 4, 9, 9) for w in weights)
    for w in weights:
        assert (w.triu(diagonal=1) == 0).all()
        assert_close(w.sum(-1), torch.ones(2, 4, 9, dtype=w.dtype))


def test_transformer_rejects_sequences_longer_than_its_context():
    with pytest.raises(ValueError, match="context=16"):
        _small_model()(torch.zeros(1, 17, dtype=torch.long))


def test_transformer_rejects_float_input():
    with pytest.raises(ValueError, match="int64 token ids"):
        _small_model()(torch.zeros(1, 4))


def test_lstm_is_causal_too():
    model = LSTMLM(11, context=16, d_model=8).double()
    x = torch.randint(11, (2, 12))
    changed = x.clone()
    changed[:, 7:] = (x[:, 7:] + 1) % 11
    assert_close(model(changed)[:, :7], model(x)[:, :7], rtol=0, atol=0)


def test_lstm_rejects_float_input():
    with pytest.raises(ValueError, match="int64 token ids"):
        LSTMLM(11, 16, 8)(torch.zeros(1, 4))


@pytest.mark.parametrize("d_model,n_layers,vocab", [(64, 2, 90), (32, 1, 140), (48, 3, 60)])
def test_matching_lstm_has_the_same_parameter_count_within_10_percent(d_model, n_layers, vocab):
    target = count_parameters(TransformerLM(Config(vocab, 64, d_model=d_model, n_heads=4, n_layers=n_layers)))
    lstm = LSTMLM.matching(target, vocab, 64)
    assert abs(count_parameters(lstm) - target) <= 0.1 * target
    # and no other width is closer
    for d in (lstm.lstm.hidden_size - 1, lstm.lstm.hidden_size + 1):
        assert abs(count_parameters(LSTMLM(vocab, 64, d)) - target) >= abs(count_parameters(lstm) - target)


def test_count_parameters_matches_the_formula_of_a_linear_layer():
    assert count_parameters(nn.Linear(7, 5)) == 7 * 5 + 5


# ---------------------------------------------------------------- loss and training


def test_lm_loss_is_the_mean_negative_log_likelihood():
    model = _small_model()
    x, y = torch.randint(11, (3, 8)), torch.randint(11, (3, 8))
    log_p = torch.log_softmax(model(x), -1)  # (3, 8, 11)
    expected = -log_p.gather(-1, y[..., None]).mean()
    assert_close(lm_loss(model, x, y), expected)


def test_evaluate_loss_averages_over_non_overlapping_windows():
    model = _small_model()
    ids = torch.randint(11, (70,))
    x = ids[:64].view(4, 16)
    y = ids[1:65].view(4, 16)
    expected = F.cross_entropy(model(x).flatten(0, 1), y.flatten()).item()
    assert math.isclose(evaluate_loss(model, ids, 16, batch_size=3), expected, rel_tol=1e-12)


def test_evaluate_loss_can_leave_out_some_targets():
    model = _small_model()
    ids = torch.randint(11, (70,))
    x, y = ids[:64].view(4, 16), ids[1:65].view(4, 16)
    losses = F.cross_entropy(model(x).flatten(0, 1), y.flatten(), reduction="none")
    keep = (y.flatten() != 3) & (y.flatten() != 7)
    expected = losses[keep].mean().item()
    got = evaluate_loss(model, ids, 16, batch_size=3, skip_targets=torch.tensor([3, 7]))
    assert math.isclose(got, expected, rel_tol=1e-12)
    with pytest.raises(ValueError, match="nothing left"):
        evaluate_loss(model, ids, 16, skip_targets=torch.arange(11))


def test_training_is_deterministic_and_learns_a_repeating_text():
    ids = CharTokenizer("abcd").encode("abcdabcadbca" * 40)
    train, val = ids[: len(ids) * 9 // 10], ids[len(ids) * 9 // 10 :]
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = TransformerLM(Config(4, 16, d_model=16, n_heads=2, n_layers=1))
        runs.append(train_lm(model, train, val, steps=60, batch_size=8, context=16, lr=1e-2, eval_every=20, seed=1))
    assert runs[0] == runs[1]
    assert runs[0]["step"] == [20, 40, 60]
    assert runs[0]["val"][-1] < 0.5 * math.log(4)  # well below guessing uniformly


def test_train_rejects_steps_not_a_multiple_of_eval_every():
    with pytest.raises(ValueError, match="multiple of eval_every"):
        train_lm(_small_model(), torch.arange(50) % 11, torch.arange(50) % 11, steps=10, batch_size=2, context=4,
                 lr=1e-3, eval_every=3, seed=0)


# ---------------------------------------------------------------- page spans and the interleaved split


def test_page_spans_locate_every_page_in_book_text(fake_book):
    docs = book_documents(fake_book)
    text = book_text(fake_book)
    spans = page_spans(docs)
    assert list(spans) == list(docs)
    for name, (start, end) in spans.items():
        assert text[start:end] == docs[name]
    assert list(spans.values())[-1][1] == len(text)


@given(st.integers(1, 400), st.integers(1, 40), st.integers(3, 12))
def test_interleaved_split_partitions_positions_by_block(n, block_size, every):
    ids = torch.arange(n)  # every position carries its own index
    turn = ids // block_size % every  # each position's block, counted within its turn
    try:
        train, val, test = interleaved_split(ids, block_size, every)
    except ValueError:
        assert not (turn == every - 1).any()  # only refused when there is no test block
        return
    parts = [train.tolist(), val.tolist(), test.tolist()]
    assert all(len(part) > 0 for part in parts)
    for i in range(3):
        for j in range(i + 1, 3):
            assert set(parts[i]).isdisjoint(parts[j])
    assert sorted(parts[0] + parts[1] + parts[2]) == ids.tolist()  # together: every position once
    for part in (train, val, test):
        assert torch.equal(part, part.sort().values)  # order kept
    assert ((val // block_size) % every == every // 2 - 1).all()  # validation: one block of each turn
    assert ((test // block_size) % every == every - 1).all()  # test: the last block of each turn
    assert ((train // block_size) % every != every // 2 - 1).all()
    assert ((train // block_size) % every != every - 1).all()


def test_interleaved_split_is_deterministic_and_keeps_the_tokens():
    ids = torch.randint(50, (5_000,), generator=torch.Generator().manual_seed(0))
    first, second = interleaved_split(ids, 64), interleaved_split(ids.clone(), 64)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    position = torch.arange(len(ids))
    for part, where in zip(first, interleaved_split(position, 64), strict=True):
        assert torch.equal(part, ids[where])  # each part holds the tokens of its positions


def test_interleaved_split_samples_the_whole_sequence():
    train, val, test = interleaved_split(torch.arange(10_000), block_size=100, every=10)
    assert len(train) == 8000 and len(val) == 1000 and len(test) == 1000
    for held_out in (val, test):
        assert held_out.min() < 1000 and held_out.max() >= 9000  # from the start to the end
    assert val.min() == 400 and test.min() == 900  # the fifth and the tenth block of each ten


def test_interleaved_split_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"shape \(n,\)"):
        interleaved_split(torch.zeros(4, 5, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="every >= 3"):
        interleaved_split(torch.arange(100), 10, every=2)
    with pytest.raises(ValueError, match="block_size must be >= 1"):
        interleaved_split(torch.arange(100), 0)
    with pytest.raises(ValueError, match="no complete set"):
        interleaved_split(torch.arange(90), 10, every=10)  # nine blocks: no test block yet


# ---------------------------------------------------------------- test losses and choosing a learning rate


def test_training_records_the_test_loss_only_when_asked_and_it_does_not_change_training():
    ids = CharTokenizer("abcd").encode("abcdabcadbca" * 40)
    train, val, test = interleaved_split(ids, 16, every=4)
    runs = {}
    for with_test in (False, True):
        torch.manual_seed(0)
        model = TransformerLM(Config(4, 8, d_model=8, n_heads=2, n_layers=1))
        runs[with_test] = train_lm(model, train, val, steps=20, batch_size=4, context=8, lr=1e-2, eval_every=10,
                                   seed=1, test_ids=test if with_test else None)
        if with_test:
            assert runs[with_test]["test"][-1] == evaluate_loss(model, test, 8)  # the trained model, on test
    assert "test" not in runs[False] and len(runs[True]["test"]) == 2
    assert {k: runs[True][k] for k in runs[False]} == runs[False]  # the same run either way


def test_choose_learning_rate_takes_the_lowest_mean_validation_loss():
    assert choose_learning_rate({1e-3: [2.0, 2.2, 2.4], 3e-3: [2.1, 2.1, 2.1], 1e-2: [1.0, 3.0, 3.0]}) == 3e-3
    assert choose_learning_rate({0.1: [5.0], 0.01: [4.0]}) == 0.01


def test_choose_learning_rate_rejects_a_single_rate_or_uneven_seeds():
    with pytest.raises(ValueError, match="at least two"):
        choose_learning_rate({1e-3: [2.0, 2.1]})
    with pytest.raises(ValueError, match="same, non-zero number of seeds"):
        choose_learning_rate({1e-3: [2.0, 2.1], 3e-3: [2.0]})
    with pytest.raises(ValueError, match="same, non-zero number of seeds"):
        choose_learning_rate({1e-3: [], 3e-3: []})
