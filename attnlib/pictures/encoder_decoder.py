"""The encoder-decoder with cross-attention (chapter 11), drawn from one real forward pass of a translator.

:func:`draw_encoder_decoder` runs the model once on one sentence with forward hooks on its modules and
draws what they saw: the source words going into the encoder, the target characters written so far going
into the decoder, the queries of the first decoder layer's cross-attention projected from the decoder's
stream, its keys and values projected from the encoder's output, and the weights, each labelled with the
shape it had. Below, the weights of one query (the character being written) over the source words, as
lines as strong as the weights. ``drawn`` holds every shape and the weights drawn.
"""

import torch

from .base import COLORS, Picture, arrow, box, canvas, shape_text


def _record(model, src: torch.Tensor, tgt_in: torch.Tensor) -> dict:
    """One forward pass with hooks: the shapes each module of the first cross-attention saw, its weights."""
    cross, seen = model.decoder[0].cross, {}

    def keep(name, which):
        def hook(module, inputs, output):
            seen[name] = (inputs if which == "in" else output)
        return hook

    handles = [cross.register_forward_hook(keep("cross_in", "in")),
               cross.q.register_forward_hook(keep("q", "out")),
               cross.kv.register_forward_hook(keep("kv", "out")),
               model.head.register_forward_hook(keep("logits", "out"))]
    try:
        with torch.no_grad():
            _, weights = model.forward_with_weights(src, tgt_in)
    finally:
        for h in handles:
            h.remove()
    decoder_stream, memory = seen["cross_in"][:2]  # (1, n_tgt, d_model), (1, n_mem, d_model)
    k, v = seen["kv"].chunk(2, dim=-1)  # each (1, n_mem, d_model)
    return {"source": tuple(src.shape), "target": tuple(tgt_in.shape), "decoder_stream": tuple(decoder_stream.shape),
            "memory": tuple(memory.shape), "queries": tuple(seen["q"].shape), "keys": tuple(k.shape),
            "values": tuple(v.shape), "weights": tuple(weights[0].shape), "logits": tuple(seen["logits"].shape),
            "n_layers": len(model.decoder), "n_heads": cross.n_heads, "all_weights": weights[0][0]}


def draw_encoder_decoder(model, src: torch.Tensor, tgt_in: torch.Tensor, words: list[str], chars: list[str],
                         *, query: int, head: int = 0) -> Picture:
    """The encoder-decoder of ``model`` (a ``Translator``) on one sentence: src (1, n_src) word ids without
    padding, tgt_in (1, n_tgt) character ids starting with <bos>; ``words`` labels the source positions (the
    words and <eos>), ``chars`` the character each decoder position writes (the target and <eos>).
    ``query``: the decoder position whose cross-attention weights (first layer, head ``head``) are drawn as
    a fan of lines over the source words."""
    if src.dim() != 2 or len(src) != 1 or len(words) != src.shape[1] or len(chars) != tgt_in.shape[1]:
        raise ValueError(f"one sentence: src (1, n_src) and tgt_in (1, n_tgt) with a label for every position, "
                         f"got {tuple(src.shape)}, {tuple(tgt_in.shape)}, {len(words)} words, {len(chars)} chars")
    rec = _record(model, src, tgt_in)
    row = rec.pop("all_weights")[head, query]  # (n_src,): the drawn query's weights over the source words
    n_l, n_h = rec["n_layers"], rec["n_heads"]
    fig, ax = canvas(16, 14.6)
    text = {"ha": "center", "va": "center", "fontsize": 11, "color": COLORS["ink"]}
    # The encoder (left): source words in, one layer drawn, memory out.
    ax.text(3.4, 6.0, f"source words {shape_text(rec['source'])}", **text)
    box(ax, 0.4, 7.0, 6.0, 3.6, "", color=COLORS["key"], alpha=0.12)
    ax.text(3.4, 10.2, f"encoder layer × {n_l}", **text)
    box(ax, 0.9, 7.4, 5.0, 1.0, "self-attention", color=COLORS["key"])
    box(ax, 0.9, 8.8, 5.0, 0.9, "feed-forward", color=COLORS["other"])
    arrow(ax, (3.4, 6.3), (3.4, 7.4))
    arrow(ax, (3.4, 10.6), (3.4, 11.7))
    ax.text(3.4, 12.0, f"memory {shape_text(rec['memory'])}", **text)
    # The decoder (right): characters so far in, one layer of three parts drawn, scores out.
    ax.text(12.6, 6.0, f"target so far {shape_text(rec['target'])}", **text)
    box(ax, 9.6, 7.0, 6.0, 6.0, "", color=COLORS["query"], alpha=0.12)
    ax.text(12.6, 12.6, f"decoder layer × {n_l}", **text)
    box(ax, 10.1, 7.4, 5.0, 1.0, "causal self-attention", color=COLORS["query"])
    box(ax, 10.1, 9.2, 5.0, 1.6, f"cross-attention, {n_h} heads\nweights {shape_text(rec['weights'])}",
        color=COLORS["weights"])
    box(ax, 10.1, 11.4, 5.0, 0.9, "feed-forward", color=COLORS["other"])
    arrow(ax, (12.6, 6.3), (12.6, 7.4))
    arrow(ax, (12.6, 8.4), (12.6, 9.2))
    ax.text(12.8, 8.85, f"Q {shape_text(rec['queries'])}", ha="left", va="center", fontsize=11,
            color=COLORS["query"])
    arrow(ax, (12.6, 10.8), (12.6, 11.4))
    arrow(ax, (12.6, 13.0), (12.6, 13.7))
    ax.text(12.6, 14.1, f"next-character scores {shape_text(rec['logits'])}", **text)
    # Keys and values: from the memory into every decoder layer's cross-attention.
    ax.annotate("", xy=(10.1, 10.0), xytext=(5.2, 12.0), arrowprops={"arrowstyle": "-|>", "lw": 1.6,
                "color": COLORS["key"], "connectionstyle": "arc3,rad=-0.2", "shrinkA": 4, "shrinkB": 2})
    ax.text(7.9, 10.3, f"K, V\n{shape_text(rec['keys'])}", ha="center", va="center", fontsize=11,
            color=COLORS["key"])
    # One query's weights over the source words: a fan from the character being written to the words.
    n_src = len(words)
    xs = [0.4 + 15.2 * (j + 0.5) / n_src for j in range(n_src)]
    for j, (x, word) in enumerate(zip(xs, words, strict=True)):
        ax.text(x, 2.0, word, ha="center", va="top", rotation=90, fontsize=10, color=COLORS["ink"])
        ax.plot([8.0, x], [4.6, 2.15], color=COLORS["weights"], lw=0.4 + 6 * float(row[j]),
                alpha=0.2 + 0.8 * float(row[j]), solid_capstyle="round")
    ax.text(8.0, 4.95, f"weights of the step that writes {chars[query]!r} (layer 1, head {head + 1})", **text)
    drawn = {**rec, "query": query, "head": head, "line_weights": [float(w) for w in row],
             "words": list(words), "query_from": "decoder", "keys_from": "encoder", "values_from": "encoder"}
    return Picture(fig, drawn)
