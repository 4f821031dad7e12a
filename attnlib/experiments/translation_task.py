"""Chapter 11's task: English dates, in words, to Chinese, with the true word alignment known by construction.

"wednesday , the twenty third of march , twenty twenty four" -> "2024年3月23日星期三". The year moves from
the end to the front, day and month swap, the weekday moves from the front to the back; one English word
gives several characters ("march" -> "3月") and some give none ("the", "of", ","). A sentence holds one to
``MAX_DATES`` dates joined by "and" (和), 3 to 23 words. Each character is written by a rule reading one
source word, its true alignment. A sentence's split is decided by its CRC-32 (:func:`split_of`)."""

import calendar
import datetime
import random
import zlib

import torch

MONTHS = "january february march april may june july august september october november december".split()
WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
UNITS = "one two three four five six seven eight nine".split()
TEENS = "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
ORDINALS = ("first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth "
            "fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth").split()
FORMS = ("M Y", "M D , Y", "the D of M , Y", "W , M D , Y", "W , the D of M , Y")  # one date: 3 to 11 words
MAX_DATES = 2  # dates per sentence, joined by "and"
PAD, EOS, BOS = "<pad>", "<eos>", "<bos>"
SRC_VOCAB = [PAD, EOS, "the", "of", ",", "oh", "and", *MONTHS, *WEEKDAYS, *UNITS, *TEENS, *TENS, *ORDINALS,
             "twentieth", "thirtieth"]
TGT_VOCAB = [PAD, BOS, EOS, *"0123456789年月日星期一二三四五六和"]
SRC_ID = {w: i for i, w in enumerate(SRC_VOCAB)}
TGT_ID = {c: i for i, c in enumerate(TGT_VOCAB)}
MAX_WORDS = MAX_DATES * 11 + MAX_DATES - 1  # 23
MAX_SRC, MAX_TGT = MAX_WORDS + 1, MAX_DATES * 14 + MAX_DATES - 1 + 1  # + <eos>: 24 words, 30 characters
BUCKETS = ((3, 6), (7, 10), (11, 14), (15, 18), (19, 23))  # source lengths in words, each bucket inclusive
NO_WORD = -1  # the alignment of a character that no source word produces (年)


def number_words(n: int) -> list[tuple[str, str]]:
    """1..99 as (word, the digits it writes): 23 -> [("twenty", "2"), ("three", "3")], 20 -> [("twenty", "20")]."""
    if n < 10:
        return [(UNITS[n - 1], str(n))]
    if n < 20:
        return [(TEENS[n - 10], str(n))]
    tens, unit = divmod(n, 10)
    if unit == 0:
        return [(TENS[tens - 2], str(n))]
    return [(TENS[tens - 2], str(tens)), (UNITS[unit - 1], str(unit))]


def ordinal_words(day: int) -> list[tuple[str, str]]:
    """1..31 as ordinal words: 23 -> [("twenty", "2"), ("third", "3日")]; the ordinal writes 日."""
    if day < 20:
        return [(ORDINALS[day - 1], f"{day}日")]
    tens, unit = divmod(day, 10)
    if unit == 0:
        return [(["twentieth", "thirtieth"][tens - 2], f"{day}日")]
    return [(TENS[tens - 2], str(tens)), (ORDINALS[unit - 1], f"{unit}日")]


def year_words(year: int) -> list[tuple[str, str]]:
    """1901..2099 (not 2000) as spoken: 2024 -> twenty | twenty four, 1905 -> nineteen | oh five."""
    century, rest = divmod(year, 100)
    if rest == 0:
        raise ValueError(f"years ending in 00 are not in the task, got {year}")
    head = [("nineteen" if century == 19 else "twenty", str(century))]
    return head + ([("oh", "0")] if rest < 10 else []) + number_words(rest)


def translate(year: int, month: int, day: int, form: int) -> tuple[list[str], str, list[int]]:
    """One date: (source words, target characters, alignment), alignment[i] = index of the source word
    that writes target character i, or ``NO_WORD``. ``form`` indexes ``FORMS``."""
    weekday = datetime.date(year, month, day).weekday()
    parts = {"Y": year_words(year), "M": [(MONTHS[month - 1], f"{month}月")], "D": ordinal_words(day),
             "W": [(WEEKDAYS[weekday], "星期" + "一二三四五六日"[weekday])]}
    words, writes = [], {}  # writes: slot -> [(source index, characters)]
    for slot in FORMS[form].split():
        for word, chars in parts.get(slot, [(slot, "")]):
            writes.setdefault(slot, []).append((len(words), chars))
            words.append(word)
    target, alignment = "", []
    for slot in ("Y", "年", "M", "D", "W"):  # Chinese order: year, 年, month, day, weekday
        for index, chars in writes.get(slot, [(NO_WORD, "年")] if slot == "年" else []):
            target += chars
            alignment += [index] * len(chars)
    return words, target, alignment


def translate_dates(dates: list[tuple[int, int, int, int]]) -> tuple[list[str], str, list[int]]:
    """Several dates (year, month, day, form) joined by "and" -> 和, in the same order in both languages:
    (source words, target characters, alignment) as :func:`translate` gives them for one date."""
    if not 1 <= len(dates) <= MAX_DATES:
        raise ValueError(f"a sentence holds 1 to {MAX_DATES} dates, got {len(dates)}")
    words, target, alignment = [], "", []
    for k, date in enumerate(dates):
        if k:  # "and" writes 和
            words, target, alignment = words + ["and"], target + "和", alignment + [len(words)]
        w, t, a = translate(*date)
        alignment += [j + len(words) if j != NO_WORD else NO_WORD for j in a]
        words, target = words + w, target + t
    return words, target, alignment


SPLITS = ("train", "validation", "test")


def split_of(words: list[str]) -> str:
    """The split a sentence belongs to, by construction, from the CRC-32 of its text: "test" iff it is
    0 mod 5, "validation" iff it is 1 mod 5, "train" otherwise. Each sentence is in exactly one split."""
    remainder = zlib.crc32(" ".join(words).encode()) % 5
    return "test" if remainder == 0 else "validation" if remainder == 1 else "train"


def sample_date(rng: random.Random) -> tuple[int, int, int, int]:
    """One random (year, month, day, form); every draw comes from ``rng``."""
    year, month, form = rng.randrange(1901, 2100), rng.randrange(1, 13), rng.randrange(len(FORMS))
    year = year if year % 100 else year + 1
    return year, month, rng.randrange(1, calendar.monthrange(year, month)[1] + 1), form


def sample(rng: random.Random) -> list[tuple[int, int, int, int]]:
    """One random sentence: 1 to ``MAX_DATES`` dates (as many of each), each from :func:`sample_date`."""
    return [sample_date(rng) for _ in range(rng.randrange(1, MAX_DATES + 1))]


def bucket_of(n_words: int) -> int:
    """The index in ``BUCKETS`` of a source length in words."""
    for b, (lo, hi) in enumerate(BUCKETS):
        if lo <= n_words <= hi:
            return b
    raise ValueError(f"no bucket holds {n_words} words: {BUCKETS}")


def encode(sentences: list[tuple[list[str], str, list[int]]]) -> tuple[torch.Tensor, ...]:
    """-> src (batch, MAX_SRC) word ids ending in <eos>; tgt (batch, MAX_TGT + 1): <bos>, characters, <eos>;
    align (batch, MAX_TGT): source index of each target character (``NO_WORD`` for 年, <eos> and padding).
    Padding is ``<pad>`` (id 0) in both."""
    src, tgt, align = [], [], []
    for words, target, alignment in sentences:
        src.append([SRC_ID[w] for w in words] + [SRC_ID[EOS]] + [SRC_ID[PAD]] * (MAX_SRC - len(words) - 1))
        tgt.append([TGT_ID[BOS]] + [TGT_ID[c] for c in target] + [TGT_ID[EOS]]
                   + [TGT_ID[PAD]] * (MAX_TGT - len(target) - 1))
        align.append(alignment + [NO_WORD] * (MAX_TGT - len(alignment)))
    return tuple(torch.tensor(x, dtype=torch.long).reshape(len(sentences), -1) for x in (src, tgt, align))


def train_set(size: int, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``size`` random training sentences (repeats allowed), (src, tgt) as :func:`encode` makes them.
    Test and validation sentences are drawn and thrown away, so none is ever in it."""
    rng, sentences = random.Random(seed), []
    while len(sentences) < size:
        sentence = translate_dates(sample(rng))
        if split_of(sentence[0]) == "train":
            sentences.append(sentence)
    return encode(sentences)[:2]


def batches(data: tuple[torch.Tensor, torch.Tensor], batch_size: int):
    """A ``batch(generator)`` for ``attnlib.train``: ``batch_size`` random rows of ``data`` (src, tgt), all
    from one length bucket (the bucket drawn in proportion to its share of ``data``), so that little of a
    batch is padding. Over many batches every row is equally likely, as without buckets."""
    lengths = (data[0] != SRC_ID[PAD]).sum(1) - 1  # (n,): words, without <eos>
    rows_of = [torch.tensor([i for i, n in enumerate(lengths.tolist()) if lo <= n <= hi]) for lo, hi in BUCKETS]
    share = torch.tensor([len(r) for r in rows_of], dtype=torch.float64)  # (n_buckets,)

    def batch(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        rows = rows_of[int(torch.multinomial(share, 1, generator=generator))]  # one bucket's rows
        rows = rows[torch.randint(len(rows), (batch_size,), generator=generator)]  # (batch_size,)
        return data[0][rows], data[1][rows]
    return batch


def _held_out(part: str, per_bucket: int, *, seed: int) -> tuple[torch.Tensor, ...]:
    """``per_bucket`` distinct sentences of split ``part`` ("validation" or "test") in each of ``BUCKETS``:
    (src, tgt, align, lengths), as :func:`encode` makes them, lengths (n,) in words, bucket by bucket."""
    if part not in ("validation", "test"):
        raise ValueError(f"part must be 'validation' or 'test', got {part!r}")
    if per_bucket < 1:
        raise ValueError(f"per_bucket must be >= 1, got {per_bucket}")
    rng = random.Random(seed)
    by_bucket: list[dict[str, tuple]] = [{} for _ in BUCKETS]
    while any(len(s) < per_bucket for s in by_bucket):
        # The longest bucket is rare at random (long dates only), so a third of the draws are two dates.
        dates = [sample_date(rng) for _ in range(MAX_DATES)] if rng.random() < 1 / 3 else sample(rng)
        words, target, alignment = translate_dates(dates)
        chosen = by_bucket[bucket_of(len(words))]
        if split_of(words) == part and len(chosen) < per_bucket:
            chosen[" ".join(words)] = (words, target, alignment)
    sentences = [s for chosen in by_bucket for s in chosen.values()]
    return *encode(sentences), torch.tensor([len(w) for w, _, _ in sentences])


def test_set(per_bucket: int, *, seed: int = 1234) -> tuple[torch.Tensor, ...]:
    """``per_bucket`` distinct test sentences in each length bucket: (src, tgt, align, lengths)."""
    return _held_out("test", per_bucket, seed=seed)


def validation_set(per_bucket: int, *, seed: int = 4321) -> tuple[torch.Tensor, ...]:
    """``per_bucket`` distinct validation sentences in each length bucket: (src, tgt, align, lengths).
    For every choice the chapter makes; disjoint from the training and the test sentences by construction."""
    return _held_out("validation", per_bucket, seed=seed)


def show(ids: torch.Tensor, vocab: list[str], sep: str = "") -> str:
    """Token ids -> text, stopping at <eos> and skipping <bos> and <pad>."""
    out = []
    for i in ids.tolist():
        if vocab[i] == EOS:
            break
        if vocab[i] not in (PAD, BOS):
            out.append(vocab[i])
    return sep.join(out)
