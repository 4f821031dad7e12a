import datetime
import zlib

import pytest
import torch

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
    generator = torch.Generator().manual_seed(5)
    for _ in range(300):
        words, target, alignment = tt.translate(*tt.sample(generator))
        assert len(alignment) == len(target)
        for char, j in zip(target, alignment, strict=True):
            if j == tt.NO_WORD:
                assert char == "年"
            elif words[j] in writes:
                assert char in writes[words[j]]
            else:  # a number or ordinal word writes digits, ordinals also 日; "the", "of", "," write nothing
                ordinal = words[j] in tt.ORDINALS + ["twentieth", "thirtieth"]
                assert words[j] not in ("the", "of", ",") and (char.isdigit() or (char == "日" and ordinal))
        digits = "".join(c for c in target if c.isdigit())
        assert target.startswith(digits[:4] + "年")  # the year comes first in Chinese, last in English


def test_the_generator_is_deterministic_and_train_and_test_are_disjoint():
    a, b = tt.test_set(5), tt.test_set(5)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    src, tgt, align, lengths = a
    assert sorted(set(lengths.tolist())) == list(range(3, 12)) and max(lengths) >= 3 * min(lengths)
    assert src.shape == (45, tt.MAX_SRC) and tgt.shape == (45, tt.MAX_TGT + 1) and align.shape == (45, tt.MAX_TGT)
    train_src, _ = tt.train_set(500, seed=3)
    assert torch.equal(train_src, tt.train_set(500, seed=3)[0])
    test_rows = {tuple(r) for r in src.tolist()}
    assert not test_rows & {tuple(r) for r in train_src.tolist()}
    assert all(tt.split_of(tt.show(r, tt.SRC_VOCAB, " ").split()) == "test" for r in src)


def sentences(src: torch.Tensor) -> set[str]:
    return {tt.show(r, tt.SRC_VOCAB, " ") for r in src}


def test_the_split_is_the_crc_rule_and_covers_every_sentence_once():
    generator, seen = torch.Generator().manual_seed(11), {split: 0 for split in tt.SPLITS}
    for _ in range(2000):
        words, _, _ = tt.translate(*tt.sample(generator))
        remainder = zlib.crc32(" ".join(words).encode()) % 5
        split = tt.split_of(words)
        assert split == {0: "test", 1: "validation"}.get(remainder, "train")
        seen[split] += 1
    # about 1/5 test, 1/5 validation, 3/5 training: each split is really used
    assert 300 < seen["test"] < 500 and 300 < seen["validation"] < 500 and 1000 < seen["train"] < 1400


def test_train_validation_and_test_share_no_sentence():
    train, validation, test = tt.train_set(3000, seed=0)[0], tt.validation_set(30)[0], tt.test_set(30)[0]
    train_text, val_text, test_text = sentences(train), sentences(validation), sentences(test)
    assert len(val_text) == len(validation) == 270 and len(test_text) == len(test) == 270  # distinct sentences
    assert not train_text & val_text and not train_text & test_text and not val_text & test_text
    assert {tt.split_of(s.split()) for s in train_text} == {"train"}
    assert {tt.split_of(s.split()) for s in val_text} == {"validation"}
    assert {tt.split_of(s.split()) for s in test_text} == {"test"}


def test_the_validation_set_is_deterministic_and_has_every_length():
    a, b = tt.validation_set(4), tt.validation_set(4)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    src, tgt, align, lengths = a
    assert src.shape == (36, tt.MAX_SRC) and tgt.shape == (36, tt.MAX_TGT + 1) and align.shape == (36, tt.MAX_TGT)
    assert torch.bincount(lengths).tolist()[3:] == [4] * 9
    assert not torch.equal(src, tt.validation_set(4, seed=7)[0])  # another seed, other sentences
    with pytest.raises(ValueError, match="per_length must be >= 1"):
        tt.validation_set(0)


def model(memory="attention"):
    torch.manual_seed(0)
    return tm.Translator(len(tt.SRC_VOCAB), len(tt.TGT_VOCAB), 16, d_model=16, n_heads=2, memory=memory).double()


def test_shapes_and_equal_parameter_counts():
    src, tgt, align, _ = tt.test_set(1)
    logits, weights = model().forward_with_weights(src, tgt[:, :-1])
    assert logits.shape == (9, tt.MAX_TGT, len(tt.TGT_VOCAB))
    assert [w.shape for w in weights] == [(9, 2, tt.MAX_TGT, tt.MAX_SRC)] * 2
    _, summary_weights = model("summary").forward_with_weights(src, tgt[:, :-1])
    assert summary_weights[0].shape == (9, 2, tt.MAX_TGT, 1) and (summary_weights[0] == 1).all()
    count = [sum(p.numel() for p in model(m).parameters()) for m in tm.MEMORIES]
    assert count[0] == count[1]
    assert torch.allclose(weights[0].sum(-1), torch.ones(()).double())
    assert (weights[0][src[:, None, None, :].expand_as(weights[0]) == 0] == 0).all()  # nothing on <pad>


@pytest.mark.parametrize("causal, sees_future", [(True, False), (False, True)])
def test_the_decoder_cannot_see_future_target_tokens(causal, sees_future):
    m = model()
    for block in m.decoder:
        block.causal = causal
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
    short = src[:1, : (src[0] != 0).sum()]  # the 3-word sentence and its <eos>, without padding
    assert torch.allclose(m(short, tgt[:1, :-1]), m(src[:1], tgt[:1, :-1]), rtol=0, atol=1e-12)


def test_greedy_decoding_and_accuracy_on_a_known_answer():
    src, tgt, _, _ = tt.test_set(1)
    exact, per_char = tm.accuracy(tgt[:, 1:].masked_fill(tgt[:, 1:] == 0, 0), tgt)
    assert exact.all() and (per_char == 1).all()
    wrong = tgt[:, 1:].clone()
    wrong[:, 0] = tt.TGT_ID["9"] if wrong[0, 0] != tt.TGT_ID["9"] else tt.TGT_ID["8"]
    exact, per_char = tm.accuracy(wrong, tgt)
    n = (tgt[:, 1:] != 0).sum(1)
    assert not exact[0] and per_char[0] == (n[0] - 1) / n[0]
    decoded = tm.greedy_decode(model(), src, tt.MAX_TGT)
    assert decoded.shape == (9, tt.MAX_TGT)
    first_eos = (decoded == tt.TGT_ID[tt.EOS]).int().argmax(1)
    for row, e in zip(decoded, first_eos, strict=True):  # after the first <eos>, only padding
        if (row == tt.TGT_ID[tt.EOS]).any():
            assert (row[e + 1 :] == 0).all()


def test_alignment_agreement_of_a_perfect_aligner_is_one():
    # A model whose cross-attention is the true alignment scores 1; chance is 1 / (words + <eos>).
    src, tgt, align, lengths = tt.test_set(2)

    class Oracle(torch.nn.Module):
        def forward_with_weights(self, src, tgt_in):
            w = torch.zeros(len(src), 1, tgt_in.shape[1], src.shape[1])
            w[:, 0, : align.shape[1]] = torch.nn.functional.one_hot(align.clamp(min=0), src.shape[1]).float()
            return None, [w]

    agreement, chance = tm.alignment_agreement(Oracle(), src, tgt, align)
    assert agreement.shape == (1, 1) and agreement.item() == 1.0
    scored = align != tt.NO_WORD
    expected = sum(scored[i].sum().item() / (lengths[i].item() + 1) for i in range(len(src))) / scored.sum().item()
    assert abs(chance - expected) < 1e-12


def test_unknown_memory_is_rejected():
    with pytest.raises(ValueError, match="unknown memory 'pooled'"):
        tm.Translator(10, 10, 8, memory="pooled")
