"""Chapter 12's experiments: the two synthetic tasks its decoders learn (key-value recall and the
bigram-backcopy language), their loss, a freshly trained decoder, and the rotary porting fix.

The decoder is the book's one decoder, :class:`attnlib.TransformerLM`, with chapter 12's settings:
``Config(..., rotary=True, n_kv_heads=...)``. Token 0 is a start token in front of every
sequence, ``BOS_ID``, as Llama's tokenizer puts ``<s>``.
"""

import torch
from torch import nn

from ..block import Config
from ..decoder import TransformerLM
from ..training import train

BOS_ID = 0  # the id of the start token (beginning of sequence)


def recall_batch(batch_size: int, n_pairs: int, n_keys: int, n_values: int,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Key-value recall: ``BOS f1 ... fp q1 ... qp``, BOS the start token. Each fact f is one token standing for a pair
    (key, value); each question q is a key token; the answer is that key's value.

    Token ids: ``BOS_ID`` = 0, 1..n_keys = questions, then one id per (key, value) fact
    (``1 + n_keys + key * n_values + value``); answers are value ids 0..n_values-1 (read by the
    model's output layer). Keys are distinct within a row; the questions ask every key once, shuffled.
    -> idx (batch, 1 + 2 n_pairs), targets (batch, 1 + 2 n_pairs), int64, -100 = not a question.
    """
    if not 1 <= n_pairs <= n_keys:
        raise ValueError(f"need 1 <= n_pairs <= n_keys, got n_pairs={n_pairs}, n_keys={n_keys}")
    keys = torch.rand(batch_size, n_keys, generator=generator).argsort(-1)[:, :n_pairs]  # (b, p) distinct
    values = torch.randint(n_values, (batch_size, n_pairs), generator=generator)  # (b, p)
    order = torch.rand(batch_size, n_pairs, generator=generator).argsort(-1)  # (b, p): order of the questions
    facts = 1 + n_keys + keys * n_values + values  # (b, p)
    questions = 1 + keys.gather(1, order)  # (b, p)
    idx = torch.cat([torch.full((batch_size, 1), BOS_ID), facts, questions], 1)  # (b, 1 + 2p)
    targets = torch.full_like(idx, -100)
    targets[:, 1 + n_pairs :] = values.gather(1, order)  # (b, p): the answers
    return idx, targets


def bigram_backcopy_table(vocab_size: int, sharpness: float, generator: torch.Generator) -> torch.Tensor:
    """The bigram half of the bigram-backcopy language: P(x_{t+1} | x_t), (V, V), V = vocab_size.

    Each row is ``softmax(sharpness * z)``, z ~ N(0, 1), over the tokens 1..V-1 (larger = more
    predictable); the start token (``BOS_ID`` = 0) is never emitted.
    """
    z = torch.randn(vocab_size, vocab_size - 1, generator=generator)  # (V, V-1)
    probs = torch.softmax(sharpness * z, dim=-1)  # (V, V-1)
    return torch.cat([torch.zeros(vocab_size, 1), probs], -1)  # (V, V): P(BOS) = 0


def bigram_backcopy(table: torch.Tensor, triggers: torch.Tensor, count: int, n: int,
                    generator: torch.Generator) -> torch.Tensor:
    """``count`` sequences ``BOS x1 ... x_{n-1}`` of the bigram-backcopy language (Guo et al. 2024):
    after a trigger token the next token copies the token before the trigger; otherwise it follows
    the bigram ``table``. -> (count, n) int64.
    """
    idx = torch.full((count, n), BOS_ID)
    for t in range(1, n):
        drawn = torch.multinomial(table[idx[:, t - 1]], 1, generator=generator).squeeze(1)  # (count,)
        copy = torch.isin(idx[:, t - 1], triggers) & (t >= 3)  # (count,): x_{t-1} is a trigger
        idx[:, t] = torch.where(copy, idx[:, t - 2], drawn)
    return idx


def next_token_loss(model: nn.Module, batch: tuple, mask: torch.Tensor | None = None,
                    reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of ``targets`` (-100 = ignored); batch = (idx, targets), both (batch, n).

    ``mask``: (n, n) boolean, ``True`` = may attend, passed to the model on top of its causal mask.
    """
    idx, targets = batch
    logits = model(idx, mask=mask)  # (batch, n, vocab_size)
    return nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction=reduction)


def train_decoder(config: Config, batch, *, steps: int, lr: float, seed: int) -> tuple[TransformerLM, list[float]]:
    """A fresh ``TransformerLM(config)`` (initial weights from ``seed``, inside ``fork_rng``) trained by
    :func:`attnlib.train` on ``batch(generator)`` -> (idx, targets); returns the model (in eval mode)
    and the loss of every step."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = TransformerLM(config)
    losses = train(model, batch, next_token_loss, steps=steps, lr=lr, seed=seed)
    return model.eval(), losses


def interleaved_rows(config: Config) -> torch.Tensor:
    """The row order of ``qkv`` that lets interleaved-pairing code compute what half-pairing
    weights computed: ``qkv.weight[rows]``, ``qkv.bias[rows]`` (Hugging Face's Llama conversion
    script does this to W_q and W_k, its ``permute``). -> ((n_heads + 2 n_kv_heads) d_head,) int64.

    Within each query and key head, the features (0, d/2, 1, d/2 + 1, ...) of a head of width d
    are taken in that order, so pair (j, j + d/2) lands on (2j, 2j + 1); the value rows stay.
    """
    d = config.d_head
    within = torch.arange(d).view(2, d // 2).T.flatten()  # (d,): 0, d/2, 1, d/2 + 1, ...
    turned = torch.cat([h * d + within for h in range(config.n_heads + config.n_kv_heads)])  # queries, keys
    values = torch.arange(len(turned), len(turned) + config.n_kv_heads * d)  # unchanged
    return torch.cat([turned, values])
