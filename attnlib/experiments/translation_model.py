"""Chapter 11's models: an encoder-decoder Transformer, and the same model reading only one summary vector.

Encoder: self-attention over the source with its padding mask. Decoder: causal self-attention over the
target so far, then cross-attention to the encoder's output (``memory="attention"``) or to a single
vector, the encoder's output at the source's <eos> (``memory="summary"``, a fixed-size summary as in the
encoder-decoder without attention of Bahdanau et al. 2015). Both have exactly the same parameters.
"""

import torch
from torch import nn
from torch.nn import functional as F

from ..checks import check_choice
from ..layers import MultiHeadCrossAttention, MultiHeadSelfAttention
from ..positions import sinusoidal_positions
from .translation_task import BOS, EOS, NO_WORD, PAD, SRC_ID, TGT_ID

MEMORIES = ("attention", "summary")


class EncoderBlock(nn.Module):
    """Pre-norm block: ``x + SelfAttn(LN(x), mask)``, then ``x + FF(LN(x))``. x: (batch, n_src, d_model)."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = MultiHeadSelfAttention(d_model, n_heads)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), mask=mask)[0]  # (batch, n_src, d_model)
        return x + self.ff(self.ln2(x))  # (batch, n_src, d_model)


class DecoderBlock(nn.Module):
    """``x + CausalSelfAttn(LN(x))``, ``x + CrossAttn(LN(x), memory)``, ``x + FF(LN(x))``.

    x: (batch, n_tgt, d_model), memory: (batch, n_mem, d_model) -> x, cross-attention weights
    (batch, n_heads, n_tgt, n_mem). ``memory_mask`` (batch, 1, 1, n_mem): True = may attend.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int):
        super().__init__()
        self.ln1, self.ln2, self.ln3 = (nn.LayerNorm(d_model) for _ in range(3))
        self.attn = MultiHeadSelfAttention(d_model, n_heads)
        self.cross = MultiHeadCrossAttention(d_model, n_heads)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))
        self.causal = True  # the decoder must not read target tokens it has not produced (a test switches it off)

    def forward(self, x, memory, memory_mask):
        x = x + self.attn(self.ln1(x), causal=self.causal)[0]  # (batch, n_tgt, d_model)
        mixed, weights = self.cross(self.ln2(x), memory, mask=memory_mask)  # (b, n_tgt, d_model), (b, h, n_tgt, n_mem)
        x = x + mixed
        return x + self.ff(self.ln3(x)), weights  # (batch, n_tgt, d_model)


class Translator(nn.Module):
    """src (batch, n_src) word ids, tgt_in (batch, n_tgt) character ids starting with <bos>
    -> logits (batch, n_tgt, vocab_size of the target); ``logits[:, t]`` scores target character t + 1."""

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, context: int, d_model: int = 32,
                 n_heads: int = 2, n_layers: int = 2, d_ff: int = 64, memory: str = "attention"):
        super().__init__()
        check_choice("memory", memory, MEMORIES)
        self.memory, self.mask_padding = memory, True  # an exercise switches the padding mask off
        self.src_tok = nn.Embedding(src_vocab_size, d_model)
        self.tgt_tok = nn.Embedding(tgt_vocab_size, d_model)
        self.register_buffer("pos", sinusoidal_positions(context, d_model), persistent=False)  # (context, d_model)
        self.encoder = nn.ModuleList(EncoderBlock(d_model, n_heads, d_ff) for _ in range(n_layers))
        self.decoder = nn.ModuleList(DecoderBlock(d_model, n_heads, d_ff) for _ in range(n_layers))
        self.ln_enc, self.ln_dec = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, tgt_vocab_size)

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """-> memory (batch, n_mem, d_model) and its mask (batch, 1, 1, n_mem) or None."""
        real = src != SRC_ID[PAD]  # (batch, n_src)
        mask = real[:, None, None, :] if self.mask_padding else None  # (batch, 1, 1, n_src)
        x = self.src_tok(src) + self.pos[: src.shape[1]]  # (batch, n_src, d_model)
        for block in self.encoder:
            x = block(x, mask)
        x = self.ln_enc(x)  # (batch, n_src, d_model)
        if self.memory == "summary":  # one vector: the encoder's output at <eos>, the last real position
            last = real.sum(1) - 1  # (batch,)
            return x[torch.arange(len(x)), last][:, None], None  # (batch, 1, d_model)
        return x, mask

    def forward_with_weights(self, src: torch.Tensor, tgt_in: torch.Tensor):
        """Logits (batch, n_tgt, vocab) and each decoder layer's cross-attention weights
        (batch, n_heads, n_tgt, n_mem)."""
        for name, t in (("src", src), ("tgt_in", tgt_in)):
            if t.dim() != 2 or t.dtype != torch.long or t.shape[1] > len(self.pos):
                raise ValueError(f"{name} must be int64 ids (batch, n <= {len(self.pos)}), "
                                 f"got {t.dtype} {tuple(t.shape)}")
        memory, memory_mask = self.encode(src)
        x = self.tgt_tok(tgt_in) + self.pos[: tgt_in.shape[1]]  # (batch, n_tgt, d_model)
        weights = []
        for block in self.decoder:
            x, w = block(x, memory, memory_mask)  # (batch, n_tgt, d_model), (batch, n_heads, n_tgt, n_mem)
            weights.append(w)
        return self.head(self.ln_dec(x)), weights  # (batch, n_tgt, vocab)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        return self.forward_with_weights(src, tgt_in)[0]


def loss(model: Translator, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Teacher forcing: read <bos> y_1 .. y_{n-1}, predict y_1 .. y_n <eos>; cross-entropy over real characters."""
    src, tgt = batch  # (batch, n_src), (batch, n_tgt + 1)
    logits = model(src, tgt[:, :-1])  # (batch, n_tgt, vocab)
    return F.cross_entropy(logits.flatten(0, 1), tgt[:, 1:].flatten(), ignore_index=TGT_ID[PAD])


@torch.no_grad()
def greedy_decode(model: Translator, src: torch.Tensor, max_len: int) -> torch.Tensor:
    """Greedy decoding: start from <bos>, append the most likely character, stop after <eos> or max_len.
    src (batch, n_src) -> (batch, max_len) character ids, <pad> after each <eos>."""
    was_training = model.training
    model.eval()
    ids = torch.full((len(src), 1), TGT_ID[BOS])  # (batch, 1)
    done = torch.zeros(len(src), dtype=torch.bool)
    for _ in range(max_len):
        next_id = model(src, ids)[:, -1].argmax(-1)  # (batch, t, vocab) -> (batch,)
        next_id = next_id.masked_fill(done, TGT_ID[PAD])
        done |= next_id == TGT_ID[EOS]
        ids = torch.cat([ids, next_id[:, None]], dim=1)  # (batch, t + 1)
        if done.all():
            break
    model.train(was_training)
    out = torch.full((len(src), max_len), TGT_ID[PAD])
    out[:, : ids.shape[1] - 1] = ids[:, 1:]
    return out


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
    model.eval()
    _, weights = model.forward_with_weights(src, tgt[:, :-1])
    n = align.shape[1]
    scored = align != NO_WORD  # (batch, n)
    hits = torch.stack([(w[:, :, :n].argmax(-1) == align[:, None]) & scored[:, None] for w in weights])  # (L, b, h, n)
    agreement = hits.sum((1, 3)) / scored.sum()  # (n_layers, n_heads)
    n_real = (src != SRC_ID[PAD]).sum(1, keepdim=True)  # (batch, 1)
    chance = (scored / n_real.double()).sum() / scored.sum()
    return agreement, chance.item()
