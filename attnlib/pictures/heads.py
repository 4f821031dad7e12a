"""Multi-head attention and the Transformer block around it, drawn from a real forward pass (chapter 6).

``draw_multi_head(layer, x)`` runs an :class:`attnlib.MultiHeadSelfAttention` on ``x`` and draws
what the pass produced: the stacked projection, the split into heads, each head's weights (the
real ones), the concatenation and the output projection, every box labelled with the shape it held.
``draw_block(block, x)`` does the same for an :class:`attnlib.block.Block`: LayerNorm, attention,
the residual additions, the feed-forward. The shapes are read with forward hooks on the modules.
"""

import torch

from ..layers import split_heads
from .base import COLORS, Picture, arrow, box, canvas, shape_text


def _record(modules: dict, run):
    """Run ``run()`` with forward hooks on ``modules`` (name -> module); -> (result, inputs, outputs)."""
    inputs, outputs, handles = {}, {}, []
    for name, module in modules.items():
        def hook(_module, args, out, name=name):
            inputs[name] = args[0].detach() if args else None
            outputs[name] = (out[0] if isinstance(out, tuple) else out).detach()
        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            result = run()
    finally:
        for handle in handles:
            handle.remove()
    return result, inputs, outputs


def multi_head_pass(layer, x: torch.Tensor) -> dict:
    """The tensors of one forward pass of a MultiHeadSelfAttention ``layer`` on ``x`` (n, d_model)."""
    (y, weights), inputs, outputs = _record({"qkv": layer.qkv, "out": layer.out}, lambda: layer(x))
    q, k, v = outputs["qkv"].chunk(3, dim=-1)  # each (n, d_model)
    concat = inputs["out"]  # (n, d_model): the heads side by side
    return {"x": x, "qkv": outputs["qkv"], "q": q, "k": k, "v": v,
            "q_heads": split_heads(q, layer.n_heads), "k_heads": split_heads(k, layer.n_heads),
            "v_heads": split_heads(v, layer.n_heads), "weights": weights,
            "head_outputs": split_heads(concat, layer.n_heads), "concat": concat, "output": y}


def draw_multi_head(layer, x: torch.Tensor) -> Picture:
    """Split, attend per head, concatenate, project: the shapes and weights of one real pass.

    x: one sequence (n, d_model). ``drawn`` holds each stage's shape and the heads' weights.
    """
    if x.dim() != 2:
        raise ValueError(f"draw one sequence, x of shape (n, d_model), got {tuple(x.shape)}")
    t = multi_head_pass(layer, x)
    h = layer.n_heads
    if h > 6:
        raise ValueError(f"the picture has room for at most 6 heads, the layer has {h}")
    W, H = 10.0, 11.6
    fig, ax = canvas(W, H)
    box(ax, 3.0, 10.5, 4.0, 0.9, f"X   {shape_text(t['x'].shape)}")
    arrow(ax, (5.0, 10.5), (5.0, 9.75))
    ax.text(5.15, 10.1, "one Linear: $W_q, W_k, W_v$ stacked", fontsize=10, va="center")
    for i, (name, role) in enumerate([("Q", "query"), ("K", "key"), ("V", "value")]):
        box(ax, 0.4 + 3.2 * i, 8.8, 3.0, 0.9, f"{name}   {shape_text(t[name.lower()].shape)}",
            color=COLORS[role])
    ax.text(5.0, 8.3, f"split the features into {h} heads of {layer.d_head}", ha="center",
            fontsize=10)
    col = W / h
    n = t["weights"].shape[-1]
    for i in range(h):
        left, mid = i * col + 0.15, (i + 0.5) * col
        arrow(ax, (5.0, 8.1), (mid, 7.55), color=COLORS["other"])
        shape = shape_text(t["q_heads"][i].shape)
        box(ax, left, 6.4, col - 0.3, 1.1, f"head {i}\nQ, K, V: {shape}", fontsize=10)
        side = min(col - 0.6, 1.8)  # the head's weights, a square heatmap
        ax.imshow(t["weights"][i].numpy(), cmap="viridis", vmin=0, vmax=1,
                  extent=(mid - side / 2, mid + side / 2, 3.85, 3.85 + side), zorder=2)
        ax.text(mid, 3.85 + side + 0.1, f"weights {n} × {n}", ha="center", fontsize=10)
        arrow(ax, (mid, 6.4), (mid, 4.0 + side + 0.45))
        box(ax, left, 2.75, col - 0.3, 0.8, f"A V   {shape_text(t['head_outputs'][i].shape)}",
            color=COLORS["output"], fontsize=10)
        arrow(ax, (mid, 3.85), (mid, 3.55))
        arrow(ax, (mid, 2.75), (5.0, 2.15), color=COLORS["other"])
    box(ax, 2.5, 1.3, 5.0, 0.85, f"concatenate   {shape_text(t['concat'].shape)}")
    arrow(ax, (5.0, 1.3), (5.0, 0.95))
    ax.text(5.15, 1.12, "$W_o$", fontsize=10, va="center")
    box(ax, 3.0, 0.05, 4.0, 0.9, f"output   {shape_text(t['output'].shape)}",
        color=COLORS["output"])
    drawn = {"n_heads": h, **{key: tuple(t[key].shape) for key in
                              ("x", "qkv", "q", "k", "v", "q_heads", "k_heads", "v_heads",
                               "weights", "head_outputs", "concat", "output")},
             "weights_drawn": t["weights"].clone()}
    return Picture(fig, drawn)


def block_pass(block, x: torch.Tensor) -> dict:
    """The tensors of one forward pass of a Transformer ``block`` (an attnlib.block.Block) on ``x``."""
    modules = {"ln1": block.ln1, "attn": block.attn, "ln2": block.ln2, "hidden": block.ff[1],
               "ff": block.ff}
    out, inputs, outputs = _record(modules, lambda: block(x))
    return {"x": x, "ln1": outputs["ln1"], "attn": outputs["attn"], "residual1": inputs["ln2"],
            "ln2": outputs["ln2"], "hidden": outputs["hidden"], "ff": outputs["ff"],
            "output": out.x, "weights": out.weights}


def draw_block(block, x: torch.Tensor) -> Picture:
    """A pre-norm Transformer block as one real pass went through it: two sublayers on a residual stream.

    x: (n, d_model) or (batch, n, d_model). ``drawn["stages"]`` lists (stage, shape) in order.
    """
    if block.cross is not None:
        raise ValueError("draw_block draws a block without cross-attention")
    t = block_pass(block, x)
    d, d_ff, h = block.ff[0].in_features, block.ff[0].out_features, block.attn.n_heads
    fig, ax = canvas(10.0, 11.0)
    s = 1.6  # the residual stream runs down x = s
    box(ax, 0.2, 10.0, 2.8, 0.8, f"x   {shape_text(t['x'].shape)}")
    ax.plot([s, s], [10.0, 7.2], color=COLORS["ink"], lw=2, zorder=0)  # the residual path
    for y0 in (8.2, 3.6):
        ax.text(s - 0.15, y0, "residual", rotation=90, ha="right", va="center", fontsize=10)
    for y0, label in ((6.9, "$\\oplus$"), (1.6, "$\\oplus$")):
        ax.text(s, y0, label, ha="center", va="center", fontsize=22, color=COLORS["ink"])
    # sublayer 1: LayerNorm, attention, back onto the stream
    arrow(ax, (s, 9.5), (4.0, 9.5))
    box(ax, 4.0, 9.1, 5.6, 0.8, f"LayerNorm   {shape_text(t['ln1'].shape)}")
    arrow(ax, (6.8, 9.1), (6.8, 8.55))
    box(ax, 4.0, 7.5, 5.6, 1.05, f"multi-head attention, {h} heads\n"
        f"{shape_text(t['attn'].shape)}", color=COLORS["weights"])
    ax.plot([6.8, 6.8], [7.5, 6.9], color=COLORS["ink"], lw=1.3)
    arrow(ax, (6.8, 6.9), (s + 0.3, 6.9))  # the attention's output is added to x
    ax.text(s + 0.5, 6.45, f"sum   {shape_text(t['residual1'].shape)}", fontsize=10)
    ax.plot([s, s], [6.6, 1.9], color=COLORS["ink"], lw=2, zorder=0)
    # sublayer 2: LayerNorm, feed-forward, back onto the stream
    arrow(ax, (s, 5.7), (4.0, 5.7))
    box(ax, 4.0, 5.3, 5.6, 0.8, f"LayerNorm   {shape_text(t['ln2'].shape)}")
    arrow(ax, (6.8, 5.3), (6.8, 4.75))
    box(ax, 4.0, 2.25, 5.6, 2.5, f"feed-forward\nLinear  {d} → {d_ff}\nGELU   "
        f"{shape_text(t['hidden'].shape)}\nLinear  {d_ff} → {d}\n"
        f"{shape_text(t['ff'].shape)}", color=COLORS["value"])
    ax.plot([6.8, 6.8], [2.25, 1.6], color=COLORS["ink"], lw=1.3)
    arrow(ax, (6.8, 1.6), (s + 0.3, 1.6))  # the feed-forward's output is added to the sum
    arrow(ax, (s, 1.3), (s, 0.95))
    box(ax, 0.2, 0.15, 2.8, 0.8, f"out   {shape_text(t['output'].shape)}", color=COLORS["output"])
    stages = [(name, tuple(t[name].shape)) for name in
              ("x", "ln1", "attn", "residual1", "ln2", "hidden", "ff", "output")]
    drawn = {"stages": stages, "n_heads": h, "d_ff": d_ff, "weights": tuple(t["weights"].shape)}
    return Picture(fig, drawn)
