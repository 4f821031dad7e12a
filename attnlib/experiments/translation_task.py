"""Chapter 11's task: English dates, in words, to Chinese, with the true word alignment known by construction.

"wednesday , the twenty third of march , twenty twenty four" -> "2024年3月23日星期三". The year moves from
the end to the front, day and month swap, the weekday moves from the front to the back; one English word
gives several characters ("march" -> "3月") and some give none ("the", "of", ","). Every character
is produced by a rule that reads one source word, so that word is its true alignment. Every sentence is
in exactly one split, training, validation or test, decided by the CRC-32 of its text (:func:`split_of`).
"""

import calendar
import datetime
import zlib

import torch

MONTHS = "january february march april may june july august september october november december".split()
WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
UNITS = "one two three four five six seven eight nine".split()
TEENS = "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
ORDINALS = ("first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth "
            "fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth").split()
FORMS = ("M Y", "M D , Y", "the D of M , Y", "W , M D , Y", "W , the D of M , Y")  # shortest 3, longest 11 words
PAD, EOS, BOS = "<pad>", "<eos>", "<bos>"
SRC_VOCAB = [PAD, EOS, "the", "of", ",", "oh", *MONTHS, *WEEKDAYS, *UNITS, *TEENS, *TENS, *ORDINALS,
             "twentieth", "thirtieth"]
TGT_VOCAB = [PAD, BOS, EOS, *"0123456789年月日星期一二三四五六"]
SRC_ID = {w: i for i, w in enumerate(SRC_VOCAB)}
TGT_ID = {c: i for i, c in enumerate(TGT_VOCAB)}
MAX_SRC, MAX_TGT = 12, 15  # 11 words + <eos>; 14 characters + <eos>
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
    """One sentence: (source words, target characters, alignment), alignment[i] = index of the source word
    that writes target character i, or ``NO_WORD``. ``form`` indexes ``FORMS``."""
    parts = {"Y": year_words(year), "M": [(MONTHS[month - 1], f"{month}月")], "D": ordinal_words(day),
             "W": [(WEEKDAYS[datetime.date(year, month, day).weekday()],
                    "星期" + "一二三四五六日"[datetime.date(year, month, day).weekday()])]}
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


SPLITS = ("train", "validation", "test")


def split_of(words: list[str]) -> str:
    """The split a sentence belongs to, by construction, from the CRC-32 of its text: "test" iff it is
    0 mod 5, "validation" iff it is 1 mod 5, "train" otherwise. Each sentence is in exactly one split."""
    remainder = zlib.crc32(" ".join(words).encode()) % 5
    return "test" if remainder == 0 else "validation" if remainder == 1 else "train"


def sample(generator: torch.Generator) -> tuple[int, int, int, int]:
    """One random (year, month, day, form); every draw comes from ``generator``."""
    year, month, form = (int(torch.randint(lo, hi, (), generator=generator)) for lo, hi in
                         ((1901, 2100), (1, 13), (0, len(FORMS))))
    year = year if year % 100 else year + 1
    day = int(torch.randint(1, calendar.monthrange(year, month)[1] + 1, (), generator=generator))
    return year, month, day, form


def encode(sentences: list[tuple[list[str], str, list[int]]]) -> tuple[torch.Tensor, ...]:
    """-> src (batch, MAX_SRC) word ids ending in <eos>; tgt (batch, MAX_TGT + 1): <bos>, characters, <eos>;
    align (batch, MAX_TGT): source index of each target character (``NO_WORD`` for 年, <eos> and padding).
    Padding is ``<pad>`` (id 0) in both."""
    src = torch.zeros(len(sentences), MAX_SRC, dtype=torch.long)
    tgt = torch.zeros(len(sentences), MAX_TGT + 1, dtype=torch.long)
    align = torch.full((len(sentences), MAX_TGT), NO_WORD)
    for b, (words, target, alignment) in enumerate(sentences):
        src[b, : len(words) + 1] = torch.tensor([SRC_ID[w] for w in words] + [SRC_ID[EOS]])
        tgt[b, : len(target) + 2] = torch.tensor([TGT_ID[BOS]] + [TGT_ID[c] for c in target] + [TGT_ID[EOS]])
        align[b, : len(target)] = torch.tensor(alignment)
    return src, tgt, align


def train_set(size: int, *, seed: int = 0, reverse: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``size`` random training sentences (repeats allowed), (src, tgt) as :func:`encode` makes them.
    Test and validation sentences are drawn and thrown away, so none is ever in it. ``reverse`` reverses
    each source sentence (an exercise)."""
    generator, sentences = torch.Generator().manual_seed(seed), []
    while len(sentences) < size:
        words, target, alignment = translate(*sample(generator))
        if split_of(words) == "train":
            sentences.append((words[::-1] if reverse else words, target, alignment))
    return encode(sentences)[:2]


def batches(data: tuple[torch.Tensor, torch.Tensor], batch_size: int):
    """A ``batch(generator)`` for ``attnlib.train``: ``batch_size`` random rows of ``data`` (src, tgt)."""
    def batch(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.randint(len(data[0]), (batch_size,), generator=generator)  # (batch_size,)
        return data[0][rows], data[1][rows]
    return batch


def _held_out(part: str, per_length: int, *, seed: int) -> tuple[torch.Tensor, ...]:
    """``per_length`` distinct sentences of split ``part`` ("validation" or "test") for each source length
    3..11: (src, tgt, align, lengths), as :func:`encode` makes them, lengths (n,) in words."""
    if part not in ("validation", "test"):
        raise ValueError(f"part must be 'validation' or 'test', got {part!r}")
    if per_length < 1:
        raise ValueError(f"per_length must be >= 1, got {per_length}")
    generator = torch.Generator().manual_seed(seed)
    by_length: dict[int, dict[str, tuple]] = {n: {} for n in range(3, 12)}
    while any(len(s) < per_length for s in by_length.values()):
        words, target, alignment = translate(*sample(generator))
        if split_of(words) == part and len(by_length[len(words)]) < per_length:
            by_length[len(words)][" ".join(words)] = (words, target, alignment)
    sentences = [s for n in by_length for s in by_length[n].values()]
    return *encode(sentences), torch.tensor([len(w) for w, _, _ in sentences])


def test_set(per_length: int, *, seed: int = 1234) -> tuple[torch.Tensor, ...]:
    """``per_length`` distinct test sentences of each source length 3..11: (src, tgt, align, lengths)."""
    return _held_out("test", per_length, seed=seed)


def validation_set(per_length: int, *, seed: int = 4321) -> tuple[torch.Tensor, ...]:
    """``per_length`` distinct validation sentences of each source length 3..11: (src, tgt, align, lengths).
    For choosing a learning rate; disjoint from the training and the test sentences by construction."""
    return _held_out("validation", per_length, seed=seed)


def show(ids: torch.Tensor, vocab: list[str], sep: str = "") -> str:
    """Token ids -> text, stopping at <eos> and skipping <bos> and <pad>."""
    out = []
    for i in ids.tolist():
        if vocab[i] == EOS:
            break
        if vocab[i] not in (PAD, BOS):
            out.append(vocab[i])
    return sep.join(out)
