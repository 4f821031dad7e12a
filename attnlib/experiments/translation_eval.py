"""Chapter 11's measurements of a trained translator: decoding (greedy and beam search), exact match and
per-character accuracy, alignment agreement, and alignment tested by cause (remove the decoder's attention
to one source word and see whether the character changes)."""

import torch

from .translation_model import Translator
from .translation_task import BOS, EOS, NO_WORD, PAD, SRC_ID, TGT_ID


@torch.no_grad()
def beam_decode(model: Translator, src: torch.Tensor, max_len: int, beam: int = 1) -> torch.Tensor:
    """Beam search: keep the ``beam`` most likely prefixes (sum of log-probabilities), extend each by every
    character, keep the best ``beam`` again; a prefix that wrote <eos> is finished and keeps its score.
    ``beam=1`` is greedy decoding. src (batch, n_src) -> (batch, max_len) ids of the most likely finished
    translation (or the best prefix after ``max_len`` steps), <pad> after its <eos>."""
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    was_training = model.training
    model.eval()
    b, vocab = len(src), model.head.out_features
    memory, mask = model.encode(src)  # (b, n_mem, d_model), (b, 1, 1, n_mem) or None
    memory = memory.repeat_interleave(beam, 0)  # (b * beam, n_mem, d_model)
    mask = None if mask is None else mask.repeat_interleave(beam, 0)
    ids = torch.full((b * beam, 1), TGT_ID[BOS])  # (b * beam, 1)
    score = torch.full((b, beam), float("-inf"), dtype=memory.dtype)
    score[:, 0] = 0.0  # one live prefix to start with: <bos>
    done = torch.zeros(b * beam, dtype=torch.bool)
    for _ in range(max_len):
        logits, _ = model.decode(memory, mask, ids)  # (b * beam, t, vocab)
        logp = logits[:, -1].log_softmax(-1)  # (b * beam, vocab)
        ended = torch.full_like(logp, float("-inf"))
        ended[:, TGT_ID[PAD]] = 0.0  # a finished prefix only continues with <pad>, at no cost
        logp = torch.where(done[:, None], ended, logp)
        total = (score.reshape(-1, 1) + logp).reshape(b, beam * vocab)  # (b, beam * vocab)
        score, best = total.topk(beam, dim=1)  # (b, beam): the best extensions, best first
        parent = (best // vocab + torch.arange(b)[:, None] * beam).flatten()  # (b * beam,) rows of ids
        next_id = (best % vocab).flatten()  # (b * beam,)
        ids = torch.cat([ids[parent], next_id[:, None]], dim=1)  # (b * beam, t + 1)
        done = done[parent] | (next_id == TGT_ID[EOS])
        if done.all():
            break
    model.train(was_training)
    top = ids.reshape(b, beam, -1)[:, 0, 1:]  # (b, t): the best beam, without <bos>
    out = torch.full((b, max_len), TGT_ID[PAD])
    out[:, : top.shape[1]] = top
    return out


def greedy_decode(model: Translator, src: torch.Tensor, max_len: int) -> torch.Tensor:
    """Greedy decoding: start from <bos>, append the most likely character, stop after <eos> or max_len.
    src (batch, n_src) -> (batch, max_len) character ids, <pad> after each <eos>. ``beam_decode`` with 1."""
    return beam_decode(model, src, max_len, beam=1)


def accuracy(predicted: torch.Tensor, tgt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """predicted (batch, max_len), tgt (batch, n + 1) with <bos> -> (exact match (batch,), share of the target's
    characters, <eos> included, predicted right at their position (batch,))."""
    want = tgt[:, 1:]  # (batch, n)
    n = min(want.shape[1], predicted.shape[1])
    real = want != TGT_ID[PAD]  # (batch, n)
    same = (predicted[:, :n] == want[:, :n]) & real[:, :n]  # (batch, n)
    exact = (same.sum(1) == real.sum(1)) & (predicted[:, n:] == TGT_ID[PAD]).all(1)  # nothing extra after <eos>
    return exact, same.sum(1) / real.sum(1)


@torch.no_grad()
def alignment_agreement(model: Translator, src, tgt, align) -> tuple[torch.Tensor, float]:
    """Share of aligned target characters whose strongest cross-attention (teacher forcing) lands on the
    source word that truly writes them, per decoder layer and head: (n_layers, n_heads); and chance, the
    expected share if each character picked one of its sentence's real source positions (<eos> too) at random.
    Target character t is predicted at decoder position t (which reads character t - 1)."""
    was_training = model.training
    model.eval()
    _, weights = model.forward_with_weights(src, tgt[:, :-1])
    model.train(was_training)
    n = align.shape[1]
    scored = align != NO_WORD  # (batch, n)
    hits = torch.stack([(w[:, :, :n].argmax(-1) == align[:, None]) & scored[:, None] for w in weights])  # (L,b,h,n)
    agreement = hits.sum((1, 3)) / scored.sum()  # (n_layers, n_heads)
    n_real = (src != SRC_ID[PAD]).sum(1, keepdim=True)  # (batch, 1)
    chance = (scored / n_real.double()).sum() / scored.sum()
    return agreement, chance.item()


def other_word(src: torch.Tensor, align: torch.Tensor, seed: int) -> torch.Tensor:
    """For every aligned character, a source word drawn at random among the sentence's other words (not the
    aligned one, not <eos>, not padding); ``NO_WORD`` where ``align`` is. (batch, n) like ``align``."""
    n_words = (src != SRC_ID[PAD]).sum(1, keepdim=True) - 1  # (batch, 1): words, without <eos>
    draw = torch.rand(align.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    pick = (draw * (n_words - 1)).long()  # (batch, n): 0 .. words - 2
    pick = pick + (pick >= align).long()  # skip the aligned word
    return torch.where(align == NO_WORD, align, pick)


@torch.no_grad()
def removal_flips(model: Translator, src, tgt, align, remove_word) -> tuple[float, int]:
    """Alignment tested by cause. For each target character t that the model writes right under teacher
    forcing and whose ``align`` is a word, remove the decoder's cross-attention from position t to source word
    ``remove_word[:, t]`` (every layer and head; the other weights are renormalised), and see whether the
    most likely character at t changes. Each character is its own intervention (only query t loses the word).
    -> (share of those characters that change, how many characters were tested)."""
    model.eval()
    memory, mask = model.encode(src)  # (b, n_src, d_model), (b, 1, 1, n_src)
    tgt_in, want = tgt[:, :-1], tgt[:, 1:]  # (b, n_tgt), (b, n_tgt)
    clean = model.decode(memory, mask, tgt_in)[0].argmax(-1)  # (b, n_tgt)
    tested = (align != NO_WORD) & (clean[:, : align.shape[1]] == want[:, : align.shape[1]])  # (b, n)
    changed = torch.zeros_like(tested)
    for t in range(align.shape[1]):
        rows = tested[:, t].nonzero()[:, 0]  # the sentences with a tested character at t
        if len(rows) == 0:
            continue
        remove = torch.zeros(len(rows), t + 1, src.shape[1], dtype=torch.bool)  # (rows, t + 1, n_src)
        remove[torch.arange(len(rows)), t, remove_word[rows, t]] = True  # only query t loses one word
        logits = model.decode(memory[rows], mask[rows], tgt_in[rows, : t + 1], remove=remove)[0]
        changed[rows, t] = logits[:, t].argmax(-1) != clean[rows, t]
    return changed[tested].double().mean().item(), int(tested.sum())


