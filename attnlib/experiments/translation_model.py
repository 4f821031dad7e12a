"""Chapter 11's models: an encoder-decoder Transformer, and the same model reading only one summary vector.

Encoder: self-attention over the source with its padding mask. Decoder: causal self-attention over the
target so far, then cross-attention to the encoder's output (``memory="attention"``) or to a single
vector, the encoder's output at the source's <eos> (``memory="summary"``, a fixed-size summary as in the
encoder-decoder without attention of Bahdanau et al. 2015). Both have exactly the same parameters.
Decoding, scores and the tests of alignment are in :mod:`.translation_eval`.
"""

import torch
from torch import nn
from torch.nn import functional as F

from ..block import Block, Config
from ..checks import check_choice
from ..positions import sinusoidal_positions
from .translation_task import MAX_TGT, PAD, SRC_ID, SRC_VOCAB, TGT_ID, TGT_VOCAB

MEMORIES = ("attention", "summary")


class Translator(nn.Module):
    """src (batch, n_src) word ids, tgt_in (batch, n_tgt) character ids starting with <bos>
    -> logits (batch, n_tgt, config.vocab_size); ``logits[:, t]`` scores target character t + 1.

    ``config`` (:class:`attnlib.block.Config`) gives the sizes; its ``vocab_size`` is the target's, the
    source has ``src_vocab_size`` words. The encoder is ``config.n_layers`` blocks that see the whole source
    (``Block(config, causal=False)``), the decoder as many blocks with causal self-attention and
    cross-attention (``Block(config, cross=True)``): the book's one Transformer block.
    """

    def __init__(self, config: Config, src_vocab_size: int, memory: str = "attention"):
        super().__init__()
        check_choice("memory", memory, MEMORIES)
        self.config, self.memory, self.mask_padding = config, memory, True  # an exercise unmasks the padding
        d = config.d_model
        self.src_tok, self.tgt_tok = nn.Embedding(src_vocab_size, d), nn.Embedding(config.vocab_size, d)
        self.register_buffer("pos", sinusoidal_positions(config.context, d), persistent=False)  # (context, d)
        self.encoder = nn.ModuleList(Block(config, causal=False) for _ in range(config.n_layers))
        self.decoder = nn.ModuleList(Block(config, cross=True) for _ in range(config.n_layers))
        self.ln_enc, self.ln_dec = nn.LayerNorm(d), nn.LayerNorm(d)
        self.head = nn.Linear(d, config.vocab_size)

    def _check(self, name: str, t: torch.Tensor) -> None:
        if t.dim() != 2 or t.dtype != torch.long or t.shape[1] > len(self.pos):
            raise ValueError(f"{name} must be int64 ids (batch, n <= {len(self.pos)}), got {t.dtype} {tuple(t.shape)}")

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """-> memory (batch, n_mem, d_model) and its mask (batch, 1, 1, n_mem) or None."""
        self._check("src", src)
        real = src != SRC_ID[PAD]  # (batch, n_src)
        mask = real[:, None, None, :] if self.mask_padding else None  # (batch, 1, 1, n_src)
        x = self.src_tok(src) + self.pos[: src.shape[1]]  # (batch, n_src, d_model)
        for block in self.encoder:
            x = block(x, mask=mask).x  # (batch, n_src, d_model)
        x = self.ln_enc(x)  # (batch, n_src, d_model)
        if self.memory == "summary":  # one vector: the encoder's output at <eos>, the last real position
            last = real.sum(1) - 1  # (batch,)
            return x[torch.arange(len(x)), last][:, None], None  # (batch, 1, d_model)
        return x, mask

    def decode(self, memory: torch.Tensor, memory_mask: torch.Tensor | None, tgt_in: torch.Tensor,
               remove: torch.Tensor | None = None):
        """Logits (batch, n_tgt, vocab) and each decoder layer's cross-attention weights (batch, n_heads,
        n_tgt, n_mem). ``remove`` (batch, n_tgt, n_mem), optional: True = this query may not attend to this
        key, in every layer and head; the softmax renormalises over the keys that are left."""
        self._check("tgt_in", tgt_in)
        if remove is not None:
            keep = ~remove[:, None]  # (batch, 1, n_tgt, n_mem)
            memory_mask = keep if memory_mask is None else memory_mask & keep
        x = self.tgt_tok(tgt_in) + self.pos[: tgt_in.shape[1]]  # (batch, n_tgt, d_model)
        weights = []
        for block in self.decoder:
            x, _, w = block(x, memory=memory, memory_mask=memory_mask)  # (b, n_tgt, d_model), (b, h, n_tgt, n_mem)
            weights.append(w)
        return self.head(self.ln_dec(x)), weights  # (batch, n_tgt, vocab)

    def forward_with_weights(self, src: torch.Tensor, tgt_in: torch.Tensor):
        """Logits (batch, n_tgt, vocab) and each decoder layer's cross-attention weights
        (batch, n_heads, n_tgt, n_mem)."""
        return self.decode(*self.encode(src), tgt_in)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        return self.forward_with_weights(src, tgt_in)[0]


def translator(d_model: int = 32, memory: str = "attention", *, n_heads: int = 2, n_layers: int = 2,
               d_ff: int | None = None) -> Translator:
    """The chapter's translator for this task, sized by ``d_model`` (``d_ff`` = 2 d_model unless given);
    the context holds the longest target with <bos>."""
    config = Config(vocab_size=len(TGT_VOCAB), context=MAX_TGT + 1, d_model=d_model, n_heads=n_heads,
                    n_layers=n_layers, d_ff=2 * d_model if d_ff is None else d_ff)
    return Translator(config, len(SRC_VOCAB), memory=memory)


def loss(model: Translator, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Teacher forcing: read <bos> y_1 .. y_{n-1}, predict y_1 .. y_n <eos>; cross-entropy over real characters."""
    src, tgt = batch  # (batch, n_src), (batch, n_tgt + 1)
    n = int((tgt != TGT_ID[PAD]).sum(1).max())  # the batch's longest target with <bos> and <eos>
    src = src[:, : int((src != SRC_ID[PAD]).sum(1).max())]  # drop columns that are padding in every row
    logits = model(src, tgt[:, : n - 1])  # (batch, n - 1, vocab)
    return F.cross_entropy(logits.flatten(0, 1), tgt[:, 1:n].flatten(), ignore_index=TGT_ID[PAD])
