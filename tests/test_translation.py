import datetime
import random
import zlib

import pytest
import torch

from attnlib.experiments import translation_eval as te
from attnlib.experiments import translation_model as tm
from attnlib.experiments import translation_task as tt


def test_a_date_with_its_reordering_and_alignment():
    words, target, alignment = tt.translate(2024, 3, 23, tt.FORMS.index("W , the D of M , Y"))
    assert datetime.date(2024, 3, 23).strftime("%A").lower() == "saturday"
    assert " ".join(words) == "saturday , the twenty third of march , twenty twenty four"
    assert target == "2024年3月23日星期六"
    # 20 <- "twenty" (8), 2 <- "twenty" (9), 4 <- "four" (10), 年 <- no word, 3月 <- "march" (6),
    # 2 <- "twenty" (3), 3日 <- "third" (4), 星期六 <- "saturday" (0)
    assert alignment == [8, 8, 9, 10, tt.NO_WORD, 6, 6, 3, 4, 4, 0, 0, 0]


@pytest.mark.parametrize("year, spoken", [(1905, "nineteen oh five"), (2010, "twenty ten"), (1990, "nineteen ninety"),
                                          (2099, "twenty ninety nine"), (1917, "nineteen seventeen")])
def test_years_are_spoken_as_people_say_them(year, spoken):
    words, target, _ = tt.translate(year, 1, 1, tt.FORMS.index("M Y"))
    assert " ".join(words) == "january " + spoken and target == f"{year}年1月"


def test_every_alignment_points_at_the_word_that_writes_the_character():
    # Rebuild the target from the alignment alone: each character must be among those its word can write.
    writes = {**{m: f"{i + 1}月" for i, m in enumerate(tt.MONTHS)}, "oh": "0",
              **{w: "星期" + "一二三四五六日"[i] for i, w in enumerate(tt.WEEKDAYS)}}
    rng = random.Random(5)
    for _ in range(300):
        words, target, alignment = tt.translate_dates(tt.sample(rng))
        assert len(alignment) == len(target)
        for char, j in zip(target, alignment, strict=True):
            if j == tt.NO_WORD:
                assert char == "年"
            elif words[j] in writes:
                assert char in writes[words[j]]
            elif words[j] == "and":
                assert char == "和"
            else:  # a number or ordinal word writes digits, ordinals also 日; "the", "of", "," write nothing
                ordinal = words[j] in tt.ORDINALS + ["twentieth", "thirtieth"]
                assert words[j] not in ("the", "of", ",") and (char.isdigit() or (char == "日" and ordinal))
        for date in target.split("和"):  # the year comes first in Chinese, last in English
            digits = "".join(c for c in date if c.isdigit())
            assert date.startswith(digits[:4] + "年")


def test_several_dates_keep_their_order_and_each_alignment():
    one, two = (2024, 3, 23, 4), (2010, 3, 1, 0)
    words, target, alignment = tt.translate_dates([one, two])
    w1, t1, a1 = tt.translate(*one)
    w2, t2, a2 = tt.translate(*two)
    assert words == w1 + ["and"] + w2 and target == t1 + "和" + t2
    shift = len(w1) + 1
    assert alignment == a1 + [len(w1)] + [j + shift if j != tt.NO_WORD else j for j in a2]
    with pytest.raises(ValueError, match=f"1 to {tt.MAX_DATES} dates"):
        tt.translate_dates([one] * (tt.MAX_DATES + 1))
    longest = tt.translate_dates([(2024, 12, 23, 4)] * tt.MAX_DATES)  # the longest words and characters
    assert len(longest[0]) == tt.MAX_WORDS == tt.MAX_SRC - 1 and len(longest[1]) == tt.MAX_TGT - 1


def test_buckets_cover_every_length_once():
    lengths = [n for lo, hi in tt.BUCKETS for n in range(lo, hi + 1)]
    assert lengths == list(range(3, tt.MAX_WORDS + 1))
    assert [tt.bucket_of(lo) for lo, _ in tt.BUCKETS] == list(range(len(tt.BUCKETS)))
    with pytest.raises(ValueError, match="no bucket"):
        tt.bucket_of(2)


def test_the_generator_is_deterministic_and_train_and_test_are_disjoint():
    a, b = tt.test_set(5), tt.test_set(5)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    src, tgt, align, lengths = a
    assert [tt.bucket_of(n) for n in lengths.tolist()] == [k for k in range(len(tt.BUCKETS)) for _ in range(5)]
    assert src.shape == (25, tt.MAX_SRC) and tgt.shape == (25, tt.MAX_TGT + 1) and align.shape == (25, tt.MAX_TGT)
    train_src, _ = tt.train_set(500, seed=3)
    assert torch.equal(train_src, tt.train_set(500, seed=3)[0])
    assert not {tuple(r) for r in src.tolist()} & {tuple(r) for r in train_src.tolist()}
    assert all(tt.split_of(tt.show(r, tt.SRC_VOCAB, " ").split()) == "test" for r in src)


def sentences(src: torch.Tensor) -> set[str]:
    return {tt.show(r, tt.SRC_VOCAB, " ") for r in src}


def test_the_split_is_the_crc_rule_and_covers_every_sentence_once():
    rng, seen = random.Random(11), {split: 0 for split in tt.SPLITS}
    for _ in range(2000):
        words, _, _ = tt.translate_dates(tt.sample(rng))
        remainder = zlib.crc32(" ".join(words).encode()) % 5
        split = tt.split_of(words)
        assert split == {0: "test", 1: "validation"}.get(remainder, "train")
        seen[split] += 1
    # about 1/5 test, 1/5 validation, 3/5 training: each split is really used
    assert 300 < seen["test"] < 500 and 300 < seen["validation"] < 500 and 1000 < seen["train"] < 1400


def test_train_validation_and_test_share_no_sentence():
    train, validation, test = tt.train_set(3000, seed=0)[0], tt.validation_set(30)[0], tt.test_set(30)[0]
    train_text, val_text, test_text = sentences(train), sentences(validation), sentences(test)
    assert len(val_text) == len(validation) == 150 and len(test_text) == len(test) == 150  # distinct sentences
    assert not train_text & val_text and not train_text & test_text and not val_text & test_text
    assert {tt.split_of(s.split()) for s in train_text} == {"train"}
    assert {tt.split_of(s.split()) for s in val_text} == {"validation"}
    assert {tt.split_of(s.split()) for s in test_text} == {"test"}


def test_the_validation_set_is_deterministic_and_has_every_bucket():
    a, b = tt.validation_set(4), tt.validation_set(4)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    src, tgt, align, lengths = a
    assert src.shape == (20, tt.MAX_SRC) and tgt.shape == (20, tt.MAX_TGT + 1) and align.shape == (20, tt.MAX_TGT)
    assert torch.bincount(torch.tensor([tt.bucket_of(n) for n in lengths.tolist()])).tolist() == [4] * 5
    assert not torch.equal(src, tt.validation_set(4, seed=7)[0])  # another seed, other sentences
    with pytest.raises(ValueError, match="per_bucket must be >= 1"):
        tt.validation_set(0)


def test_a_batch_comes_from_one_bucket_and_every_row_is_drawn():
    data = tt.train_set(400, seed=1)
    batch = tt.batches(data, 8)
    generator, seen = torch.Generator().manual_seed(0), set()
    for _ in range(300):
        src, tgt = batch(generator)
        lengths = ((src != 0).sum(1) - 1).tolist()
        assert len({tt.bucket_of(n) for n in lengths}) == 1 and tgt.shape == (8, tt.MAX_TGT + 1)
        seen |= {tuple(r) for r in src.tolist()}
    assert len(seen) > 0.9 * len({tuple(r) for r in data[0].tolist()})


def model(memory="attention", d_model=16, n_layers=2):
    torch.manual_seed(0)
    return tm.translator(d_model, memory, n_layers=n_layers).double()


def test_shapes_and_equal_parameter_counts():
    src, tgt, align, _ = tt.test_set(1)
    logits, weights = model().forward_with_weights(src, tgt[:, :-1])
    assert logits.shape == (5, tt.MAX_TGT, len(tt.TGT_VOCAB))
    assert [w.shape for w in weights] == [(5, 2, tt.MAX_TGT, tt.MAX_SRC)] * 2
    _, summary_weights = model("summary").forward_with_weights(src, tgt[:, :-1])
    assert summary_weights[0].shape == (5, 2, tt.MAX_TGT, 1) and (summary_weights[0] == 1).all()
    count = [sum(p.numel() for p in model(m).parameters()) for m in tm.MEMORIES]
    assert count[0] == count[1]
    assert torch.allclose(weights[0].sum(-1), torch.ones(()).double())
    assert (weights[0][src[:, None, None, :].expand_as(weights[0]) == 0] == 0).all()  # nothing on <pad>


def test_the_translator_is_built_of_the_books_block():
    from attnlib.block import Block

    m = model()
    assert all(isinstance(b, Block) for b in [*m.encoder, *m.decoder])
    assert all(b.cross is None and not b.attn.causal for b in m.encoder)
    assert all(b.cross is not None and b.attn.causal for b in m.decoder)


@pytest.mark.parametrize("causal, sees_future", [(True, False), (False, True)])
def test_the_decoder_cannot_see_future_target_tokens(causal, sees_future):
    m = model()
    for block in m.decoder:
        block.attn.causal = causal
    src, tgt, _, _ = tt.test_set(1)
    tgt_in = tgt[:, :-1]
    changed = tgt_in.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % len(tt.TGT_VOCAB)  # change every target token from position 6 on
    before, after = m(src, tgt_in), m(src, changed)
    assert torch.equal(before[:, :6], after[:, :6]) != sees_future
    assert not torch.equal(before[:, 6:], after[:, 6:])


def test_padding_does_not_change_the_translation():
    m = model()
    src, tgt, _, _ = tt.test_set(1)
    short = src[:1, : (src[0] != 0).sum()]  # the shortest sentence and its <eos>, without padding
    assert torch.allclose(m(short, tgt[:1, :-1]), m(src[:1], tgt[:1, :-1]), rtol=0, atol=1e-12)
    batch = src[:4], tgt[:4]
    full = torch.nn.functional.cross_entropy(m(*batch[:1], batch[1][:, :-1]).flatten(0, 1),
                                             batch[1][:, 1:].flatten(), ignore_index=0)
    assert torch.allclose(tm.loss(m, batch), full, rtol=0, atol=1e-12)  # the loss trims padding only


def test_removing_a_key_renormalises_the_others():
    m = model()
    src, tgt, align, _ = tt.test_set(1)
    memory, mask = m.encode(src)
    tgt_in = tgt[:, :-1]
    _, clean = m.decode(memory, mask, tgt_in)
    remove = torch.zeros(len(src), tgt_in.shape[1], src.shape[1], dtype=torch.bool)
    remove[:, 3, 1] = True  # query 3 loses source word 1
    _, cut = m.decode(memory, mask, tgt_in, remove=remove)
    w = clean[0][:, :, 3]  # (b, h, n_src): layer 1, the weights of query 3 before
    expected = w.masked_fill(torch.arange(src.shape[1]) == 1, 0) / (1 - w[..., 1:2])
    assert torch.allclose(cut[0][:, :, 3], expected, atol=1e-12)  # the first layer: the same weights, renormalised
    assert torch.equal(cut[0][:, :, :3], clean[0][:, :, :3])  # earlier queries see nothing of it


def naive_greedy(m, src, max_len):  # the obvious loop: re-run the whole model on the prefix each step
    ids = torch.full((len(src), 1), tt.TGT_ID[tt.BOS])
    for _ in range(max_len):
        ids = torch.cat([ids, m(src, ids)[:, -1].argmax(-1, keepdim=True)], 1)
    out = ids[:, 1:]
    after_eos = (out == tt.TGT_ID[tt.EOS]).long().cumsum(1) - (out == tt.TGT_ID[tt.EOS]).long() > 0
    return out.masked_fill(after_eos, tt.TGT_ID[tt.PAD])


def sequence_logp(m, src, out):  # log-probability of each decoded row, up to and with its <eos>
    tgt = torch.cat([torch.full((len(src), 1), tt.TGT_ID[tt.BOS]), out], 1)
    logp = m(src, tgt[:, :-1]).log_softmax(-1).gather(-1, tgt[:, 1:, None])[..., 0]  # (b, max_len)
    return (logp * (tgt[:, 1:] != tt.TGT_ID[tt.PAD])).sum(1)


def test_greedy_decoding_is_the_naive_loop_and_beam_search_finds_likelier_translations():
    m = model(d_model=8, n_layers=1)
    for p in m.parameters():  # a random model with peaked outputs, so greedy and beam search differ
        p.data.mul_(3)
    src = tt.test_set(2)[0]
    greedy = te.greedy_decode(m, src, tt.MAX_TGT)
    assert greedy.shape == (10, tt.MAX_TGT) and torch.equal(greedy, naive_greedy(m, src, tt.MAX_TGT))
    with torch.no_grad():
        for beam in (2, 4):
            found = te.beam_decode(m, src, tt.MAX_TGT, beam=beam)
            finished = (found == tt.TGT_ID[tt.EOS]).any(1) & (greedy == tt.TGT_ID[tt.EOS]).any(1)
            gain = sequence_logp(m, src, found) - sequence_logp(m, src, greedy)
            assert (gain[finished] > -1e-9).all() and (gain > 1e-6).any()
    with pytest.raises(ValueError, match="beam must be >= 1"):
        te.beam_decode(m, src, 5, beam=0)


def test_accuracy_on_known_answers():
    src, tgt, _, _ = tt.test_set(1)
    exact, per_char = te.accuracy(tgt[:, 1:], tgt)
    assert exact.all() and (per_char == 1).all()
    wrong = tgt[:, 1:].clone()
    wrong[:, 0] = tt.TGT_ID["9"] if wrong[0, 0] != tt.TGT_ID["9"] else tt.TGT_ID["8"]
    exact, per_char = te.accuracy(wrong, tgt)
    n = (tgt[:, 1:] != 0).sum(1)
    assert not exact[0] and per_char[0] == (n[0] - 1) / n[0]


def test_alignment_agreement_of_a_perfect_aligner_is_one():
    # A model whose cross-attention is the true alignment scores 1; chance is 1 / (words + <eos>).
    src, tgt, align, lengths = tt.test_set(2)

    class Oracle(torch.nn.Module):
        def forward_with_weights(self, src, tgt_in):
            w = torch.zeros(len(src), 1, tgt_in.shape[1], src.shape[1])
            w[:, 0, : align.shape[1]] = torch.nn.functional.one_hot(align.clamp(min=0), src.shape[1]).float()
            return None, [w]

    agreement, chance = te.alignment_agreement(Oracle(), src, tgt, align)
    assert agreement.shape == (1, 1) and agreement.item() == 1.0
    scored = align != tt.NO_WORD
    expected = sum(scored[i].sum().item() / (lengths[i].item() + 1) for i in range(len(src))) / scored.sum().item()
    assert abs(chance - expected) < 1e-12


def test_the_other_word_is_a_real_word_and_never_the_aligned_one():
    src, _, align, lengths = tt.test_set(10)
    other = te.other_word(src, align, seed=0)
    aligned = align != tt.NO_WORD
    assert torch.equal(other == tt.NO_WORD, ~aligned)
    assert (other[aligned] != align[aligned]).all()
    assert ((other >= 0) & (other < lengths[:, None]))[aligned].all()
    assert torch.equal(other, te.other_word(src, align, seed=0))


def test_removal_flips_nothing_when_the_cross_attention_is_cut_off():
    m = model()
    src, tgt, align, _ = tt.test_set(2)
    share, tested = te.removal_flips(m, src, tgt, align, align)
    clean = m(src, tgt[:, :-1]).argmax(-1)[:, : align.shape[1]]
    assert tested == int(((align != tt.NO_WORD) & (clean == tgt[:, 1 : align.shape[1] + 1])).sum())
    for block in m.decoder:  # the decoder no longer reads the source: removing a word changes nothing
        torch.nn.init.zeros_(block.cross.out.weight)
        torch.nn.init.zeros_(block.cross.out.bias)
    assert te.removal_flips(m, src, tgt, align, align)[0] == 0.0


def test_unknown_memory_is_rejected():
    with pytest.raises(ValueError, match="unknown memory 'pooled'"):
        tm.translator(8, "pooled")


def test_a_run_is_the_same_in_any_worker_and_at_any_thread_count_of_the_caller():
    from attnlib.experiments import translation_runs as tr

    runs = [tr.Run("attention", 8, 3e-3, seed, steps=4, batch=4, every=2) for seed in (0, 1)]
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        here = tr.train_runs(runs, processes=1)  # both runs in one worker, one after the other
        torch.set_num_threads(2)
        there = tr.train_runs(runs, processes=2)  # each in a worker of its own
    finally:
        torch.set_num_threads(threads)
    assert here[0]["losses"] == tr.train_run(runs[0])["losses"]  # a worker trains what train_run does
    for a, b in zip(here, there, strict=True):
        assert a["run"] == b["run"] and a["losses"] == b["losses"] and a["steps"] == [2, 4]
        assert all(torch.equal(a["state"][k], b["state"][k]) for k in a["state"])
        assert a["watch_exact"].shape == (2, len(tt.BUCKETS)) and a["watch_agreement"].shape == (2, 2, 2)
    assert here[0]["losses"] != here[1]["losses"]  # another seed, another run
    model = tr.load(here[0])
    assert all(torch.equal(p, here[0]["state"][k]) for k, p in model.state_dict().items())
