import nbformat as nbf

cells = []
def md(s): cells.append(nbf.v4.new_markdown_cell(s.strip("\n")))
def code(s, tags=None):
    c = nbf.v4.new_code_cell(s.strip("\n"))
    if tags: c.metadata["tags"] = tags
    cells.append(c)

md(r"""
(ch-modern)=
# Attention in today's models

The book so far builds attention as the Transformer of 2017 has it {cite}`vaswani2017attention`.
Open the code of a current open model (Llama, Mistral, Qwen) and four things look different at
once: positions are not added to the embeddings but *rotate* the queries and keys; there are fewer
key/value heads than query heads; attention may be restricted to a sliding window; and a few
"sink" tokens at the start stay visible to every query. None of these is new machinery. Each is
something earlier chapters measured, put to work:

- rotary positions make the score a {ref}`bilinear form <ch-bilinear>` whose matrix depends only
  on the distance between query and key, built from the rotations of chapter 6's previous-token head;
- shared key/value heads exist because of the cache's memory ({ref}`ch-cost`, {ref}`ch-generating`);
- windows are the restricted attention of {ref}`ch-long-range`;
- sinks are the heads of {ref}`ch-pretrained` that park their attention on `[CLS]` and `[SEP]`.

Symbols and shapes are listed on the {ref}`notation page <notation>`; terms, in English and Chinese, in the {ref}`glossary <glossary>`.
""")
code(r"""
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from myst_nb import glue

import attnlib
from attnlib.experiments import modern

attnlib.reproducible(seed=0)
""")

md(r"""
## Rotary positions: the position goes into the score

Chapter 6 added a position vector to every token. A {term}`rotary position embedding <rotary position embedding (旋转位置编码, RoPE)>`
{cite}`su2021roformer` instead *rotates* the query and the key. Split a vector of width $d$ into
$d/2$ pairs of features; pair $j$ of the vector at position $m$ turns by the angle $m\,\theta_j$,
with frequencies $\theta_j = 10000^{-2j/d}$ that fall geometrically, the same ladder as the
sinusoidal encoding:

$$
\begin{pmatrix} a \\ b \end{pmatrix} \mapsto
\begin{pmatrix} \cos m\theta_j & -\sin m\theta_j \\ \sin m\theta_j & \cos m\theta_j \end{pmatrix}
\begin{pmatrix} a \\ b \end{pmatrix}.
$$

Write $R_m$ for the whole block-diagonal rotation. The score of query $q$ at position $m$ against
key $k$ at position $n$ becomes

$$
(R_m q)^\top (R_n k) = q^\top R_m^\top R_n\, k = q^\top R_{n-m}\, k ,
$$

because rotations compose by adding angles. That is the bilinear score $q^\top W k$ of
{ref}`chapter 4 <ch-bilinear>`, with a matrix $W = R_{n-m}$ that depends on the two positions only
through their distance. We can measure that claim rather than trust the algebra:
`attnlib.apply_rotary` rotates the $d$ basis vectors, which gives $R_m$ as a matrix, and we compare
$R_m^\top R_n$ for many pairs with the same offset.
""")
code(r"""
d = 8


def rotation(m, pairing="half"):
    # R_m as a (d, d) matrix: rotate each basis vector e_i (the rows of the identity) to position m
    eye = torch.eye(d, dtype=torch.float64)                               # (d, d): d vectors
    return attnlib.apply_rotary(eye, torch.full((d,), m), pairing=pairing).T   # column i = R_m e_i


def score_matrix(m, n):
    return rotation(m).T @ rotation(n)                                    # W(m, n) = R_m^T R_n


worst = max((score_matrix(m, m + offset) - score_matrix(0, offset)).abs().max().item()
            for m in range(0, 200, 7) for offset in range(-5, 40, 3) if m + offset >= 0)
print("W(m, n) depends only on n - m (largest difference < 1e-12):", worst < 1e-12)
print("W(m, n) is the rotation R_(n-m):",
      torch.allclose(score_matrix(30, 37), rotation(7), atol=1e-12))
print("and a rotation keeps lengths (W^T W = I):",
      torch.allclose(score_matrix(3, 11).T @ score_matrix(3, 11), torch.eye(d, dtype=torch.float64)))
""")
md(r"""
Chapter 6 built a previous-token head by hand from exactly such a rotation: its query projection
turned the sinusoidal code of position $p$ into the code of $p - 1$. With rotary positions every
head gets that machinery for free, inside the score: a head whose query and key put their weight
on the fastest pair is a sharp detector of one particular offset, a head that uses the slow pairs
hardly cares about distance at all. The figure shows the scores of one random query and key placed
at every pair of positions: constant along each diagonal (one offset), a Toeplitz matrix. On the
right, the score of a query equal to its key as the offset grows, for a head width of 64: the
long-term decay that Su et al. point out; the further apart, the more the pairs' rotations disagree.
""")
code(r"""
n_pos, d_demo = 32, 16
q1, k1 = torch.randn(2, 1, d_demo, dtype=torch.float64)                  # one query, one key
positions = torch.arange(n_pos)
q_at = attnlib.apply_rotary(q1.expand(n_pos, d_demo), positions)         # (n_pos, d): q at every position
k_at = attnlib.apply_rotary(k1.expand(n_pos, d_demo), positions)         # (n_pos, d)
grid = q_at @ k_at.T                                                     # (n_pos, n_pos): score(m, n)
print("every diagonal is constant:",
      all(torch.allclose(grid.diagonal(o), grid.diagonal(o)[:1].expand(n_pos - abs(o)), atol=1e-12)
          for o in range(-n_pos + 1, n_pos)))

ones = torch.ones(1, 64, dtype=torch.float64)
offsets = torch.arange(0, 256)
decay = [(attnlib.apply_rotary(ones, torch.tensor([0])) @ attnlib.apply_rotary(ones, torch.tensor([int(o)])).T).item() / 64
         for o in offsets]

fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
image = axes[0].imshow(grid.numpy(), cmap="RdBu", aspect="auto")
axes[0].set_xlabel("key position n")
axes[0].set_ylabel("query position m")
axes[0].set_title("score of one rotated q and k")
fig.colorbar(image, ax=axes[0], label="score")
axes[1].plot(offsets.numpy(), decay, label="q = k = (1, ..., 1), d = 64")
axes[1].axhline(0, color="grey", lw=0.5)
axes[1].set_xlabel("offset n - m (positions)")
axes[1].set_ylabel("score / d")
axes[1].set_title("rotary scores decay with distance")
axes[1].legend()
fig.tight_layout()
plt.show()
""")

md(r"""
### Two pairings, one permutation, and a porting trap

Which features form pair $j$? The RoFormer paper pairs neighbours, $(2j, 2j+1)$, and reads each pair
as a complex number multiplied by $e^{i m \theta_j}$; Meta's original Llama code does the same. The
Llama code in Hugging Face's `transformers` pairs feature $j$ with feature $j + d/2$ (its
`rotate_half`). `attnlib.apply_rotary` does both, `pairing="interleaved"` and `pairing="half"`
(the default), and the tests check each against its reference: the complex product, and
`transformers`' own `apply_rotary_pos_emb`. The two are the same rotations applied to differently
ordered features: reorder the features as $0, d/2, 1, d/2+1, \dots$ and one becomes the other.
""")
code(r"""
x = torch.randn(5, d, dtype=torch.float64)                               # (n, d)
pos5 = torch.arange(5)
perm = torch.arange(d).view(2, d // 2).T.flatten()                       # 0, 4, 1, 5, 2, 6, 3, 7
half = attnlib.apply_rotary(x, pos5, pairing="half")
interleaved = attnlib.apply_rotary(x, pos5, pairing="interleaved")
print("the permutation:", perm.tolist())
print("same result without it:", torch.allclose(half, interleaved))
print("interleaved(x[perm]) == half(x)[perm]:",
      torch.allclose(attnlib.apply_rotary(x[:, perm], pos5, pairing="interleaved"), half[:, perm], atol=1e-12))
""")
md(r"""
Both are valid rotary embeddings, and a model trained with either works. The trap is loading
weights trained for one into code written for the other: nothing crashes, every shape matches,
and the model quietly computes something else. Hugging Face's script that converts Meta's Llama
checkpoints therefore permutes the rows of $W_q$ and $W_k$ (its `permute` function), head by head,
so that the half pairing sees the features the interleaved pairing saw.

To see both the trap and the fix we need a trained model with rotary positions. `modern.RotaryLM` is
a small decoder built from the book's pieces: pre-norm blocks whose attention,
`modern.GroupedSelfAttention`, rotates queries and keys with `apply_rotary` and has no position
embedding at all. We train it on a small synthetic language, the *bigram-backcopy* language of
Guo et al.: tokens follow a random bigram table, except that after one of three "trigger" tokens
the next token copies the token *before* the trigger. The copy needs attention (a look two tokens
back); everything else a bigram table can do. Every sequence starts with a start token `BOS`, as
Llama's tokenizer puts `<s>` in front.
""")
code(r"""
data = torch.Generator().manual_seed(1)
vocab_size, n_seq = 16, 32
table = modern.bigram_backcopy_table(vocab_size, sharpness=2.0, generator=data)   # (V, V)
triggers = torch.tensor([1, 2, 3])
train_seqs = modern.bigram_backcopy(table, triggers, 4096, n_seq, data)          # (4096, 32)
val_seqs = modern.bigram_backcopy(table, triggers, 512, n_seq, data)             # (512, 32)
x_val, y_val = val_seqs[:, :-1], val_seqs[:, 1:]                                 # inputs, next tokens
is_trigger = torch.isin(x_val, triggers)                                          # (512, 31): copy positions


def bb_batch(generator, batch_size=32):
    rows = torch.randint(len(train_seqs), (batch_size,), generator=generator)
    seqs = train_seqs[rows]                                                       # (batch, 32)
    return seqs[:, :-1], seqs[:, 1:]


bb_seeds, bb_steps = [0, 1, 2], 150
bb_models = [modern.train_lm(bb_batch, vocab_size=vocab_size, d_model=32, n_heads=4, n_kv_heads=4,
                             n_layers=1, steps=bb_steps, lr=1e-2, seed=seed)[0] for seed in bb_seeds]
print("a sequence:", " ".join("BOS" if t == modern.BOS else str(t) for t in val_seqs[0, :16].tolist()), "...")
print("trigger tokens:", triggers.tolist())
""")
code(r"""
glue("bb_steps", bb_steps, display=False)
""", ["remove-cell"])
md(r"""
The trap, on one of these trained models: run it with the other pairing and its loss on held-out
sequences jumps; permute the rows of $W_q$ and $W_k$ within each head, as the conversion script
does, and the interleaved code computes the same logits as the half code it was trained with.
""")
code(r"""
def val_loss(model, mask=None):
    with torch.no_grad():
        return modern.next_token_loss(model, (x_val, y_val), mask).item()


model = bb_models[0]
d_head = model.attn[0].d_head
head_perm = torch.arange(d_head).view(2, d_head // 2).T.flatten()                 # within one head
row_perm = torch.cat([h * d_head + head_perm for h in range(4)])                  # every head's rows
with torch.no_grad():
    logits_half = model(x_val)
    right = val_loss(model)
    for attn in model.attn:
        attn.pairing = "interleaved"                                              # the wrong code
    wrong = val_loss(model)
    for attn in model.attn:                                                       # the conversion's fix
        attn.w_q.weight.copy_(attn.w_q.weight[row_perm])
        attn.w_k.weight.copy_(attn.w_k.weight[row_perm])
    fixed_logits = model(x_val)
print(f"wrong pairing raises the loss by more than 0.1 nats: {wrong - right > 0.1}")
print("rows of W_q and W_k permuted: the same logits as before:",
      torch.allclose(fixed_logits, logits_half, atol=1e-4))
assert wrong - right > 0.1
for attn in model.attn:                                                           # undo, for later sections
    with torch.no_grad():
        attn.w_q.weight.copy_(attn.w_q.weight[row_perm.argsort()])
        attn.w_k.weight.copy_(attn.w_k.weight[row_perm.argsort()])
    attn.pairing = "half"
assert torch.allclose(model(x_val), logits_half, atol=1e-5)
""")
md(r"""
With the wrong pairing the loss rises by more than 0.1 nats per token (printed above), while every tensor has
the right shape and nothing warns. A test that compares the
logits of a ported model against the original on one batch catches this at once; a test that
only checks shapes or that "the loss is finite" does not.

## Grouped-query attention: a smaller cache

A decoder that generates text keeps every layer's keys and values (the cache of
{ref}`ch-generating`), so each new token costs one row per layer instead of recomputing the past.
That cache, not the weights, is what limits how many sequences fit in memory. Per token it holds

$$
2 \times n_\text{layers} \times h_\text{kv} \times d_\text{head} \times \text{bytes per number},
$$

with $h_\text{kv}$ key/value heads. Multi-query attention {cite}`shazeer2019fast` keeps a single
key/value head for all $h$ query heads; {term}`grouped-query attention <grouped-query attention (分组查询注意力, GQA)>`
{cite}`ainslie2023gqa` keeps $h_\text{kv}$ of them, each shared by a group of $h / h_\text{kv}$
consecutive query heads. Llama 2 70B, for example, has 80 layers of 64 query heads of width 128
and uses 8 key/value heads, with a context of 4,096 tokens {cite}`touvron2023llama`. In 16-bit
numbers its cache at $h_\text{kv} \in \{h, h/4, 8, 1\}$:
""")
code(r"""
llama2_70b = dict(n_layers=80, n_heads=64, d_head=128, context=4096, bytes_per_number=2)   # Touvron et al. 2023


def cache_bytes(n_layers, h_kv, d_head, n_tokens, bytes_per_number):
    return 2 * n_layers * h_kv * d_head * n_tokens * bytes_per_number                     # keys and values


c = llama2_70b
rows = []
for h_kv, name in [(64, "multi-head (h_kv = h)"), (16, "grouped, h_kv = h/4"), (8, "grouped, h_kv = 8 (Llama 2 70B)"),
                   (1, "multi-query (h_kv = 1)")]:
    per_token = cache_bytes(c["n_layers"], h_kv, c["d_head"], 1, c["bytes_per_number"])
    per_seq = cache_bytes(c["n_layers"], h_kv, c["d_head"], c["context"], c["bytes_per_number"])
    rows.append([name, h_kv, f"{per_token / 2**10:,.0f} KiB", f"{per_seq / 2**30:.2f} GiB", f"{64 // h_kv}x"])
attnlib.html_table(["attention", "h_kv", "cache per token", "per 4,096-token sequence", "smaller by"], rows)
""")
code(r"""
glue("mha_gib", round(cache_bytes(80, 64, 128, 4096, 2) / 2**30, 2), display=False)
glue("gqa_gib", round(cache_bytes(80, 8, 128, 4096, 2) / 2**30, 2), display=False)
""", ["remove-cell"])
md(r"""
With 64 key/value heads one sequence of 4,096 tokens would need {glue:text}`mha_gib` GiB of cache
in 16-bit numbers; the 8 shared heads bring it to {glue:text}`gqa_gib` GiB, which is why a server
can hold eight times as many conversations at once, or each eight times longer. The weights barely
change: only $W_k$ and $W_v$ shrink.

The computation is an ordinary attention once each key/value head is repeated for its group.
`attnlib.grouped_query_attention` does exactly that, and its tests compare it with PyTorch's
`scaled_dot_product_attention(..., enable_gqa=True)` in float64, with masks, causal, and more
queries than keys or fewer:

```{literalinclude} ../attnlib/attention.py
:pyobject: grouped_query_attention
```
""")
code(r"""
q = torch.randn(2, 8, 5, 16, dtype=torch.float64)                     # (batch, h = 8, n, d_head)
k, v = torch.randn(2, 2, 2, 5, 16, dtype=torch.float64)               # (batch, h_kv = 2, n, d_head) each
out, weights = attnlib.grouped_query_attention(q, k, v, causal=True)  # (2, 8, 5, 16), (2, 8, 5, 5)
print("output", tuple(out.shape), "weights", tuple(weights.shape))
print("== torch enable_gqa:", torch.allclose(out, F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)))
print("query heads 0-3 share key/value head 0:",
      torch.allclose(out[:, :4], attnlib.attention(q[:, :4], k[:, :1], v[:, :1], causal=True)[0]))
""")
md(r"""
### What sharing costs

Fewer key/value heads mean fewer distinct ways to describe the keys. Whether that costs quality
depends on how much each head has to tell apart. We measure it on a task that needs many keys
told apart: *key-value recall*. A sequence holds six facts, each one token standing for a pair
(key, value) out of 16 keys and 8 values, then asks for every key once; the model must answer
with that key's value. The model is one `GroupedSelfAttention` layer ($d_\text{model} = 32$,
$h = 4$ query heads of width 8), with $h_\text{kv} = 4$ (multi-head) or $h_\text{kv} = 1$
(multi-query).

A fair comparison: the same model otherwise, the same batches (the same seeds), the same budget
of 300 steps; for each $h_\text{kv}$ the learning rate is chosen on a validation set, and the loss
is reported on a separate test set, over three seeds. Sharing also removes parameters (from $W_k$
and $W_v$), so the parameter counts are listed: the comparison is at matched *budget and width*,
which is the trade a model designer makes, not at matched parameters.
""")
code(r"""
n_keys, n_values, n_facts = 16, 8, 6
recall_vocab = 1 + n_keys + n_keys * n_values
val_set = modern.recall_batch(1024, n_facts, n_keys, n_values, torch.Generator().manual_seed(100))
test_set = modern.recall_batch(1024, n_facts, n_keys, n_values, torch.Generator().manual_seed(101))


def recall_run(h_kv, lr, seed):
    model, _ = modern.train_lm(lambda g: modern.recall_batch(32, n_facts, n_keys, n_values, g),
                               vocab_size=recall_vocab, d_model=32, n_heads=4, n_kv_heads=h_kv,
                               n_layers=1, steps=300, lr=lr, seed=seed)
    with torch.no_grad():
        return model, modern.next_token_loss(model, val_set).item(), modern.next_token_loss(model, test_set).item()


kv_counts, lrs, seeds = [4, 1], [3e-3, 1e-2], [0, 1, 2]
chosen, test_loss, n_params = {}, {}, {}
for h_kv in kv_counts:
    tuning = {lr: recall_run(h_kv, lr, seeds[0]) for lr in lrs}               # seed 0, both rates
    chosen[h_kv] = min(lrs, key=lambda lr: tuning[lr][1])                      # by validation loss
    runs = [tuning[chosen[h_kv]]] + [recall_run(h_kv, chosen[h_kv], s) for s in seeds[1:]]
    test_loss[h_kv] = [r[2] for r in runs]
    n_params[h_kv] = attnlib.count_parameters(runs[0][0])
""")
code(r"""
fig, ax = plt.subplots(figsize=(6.5, 3.8))
for i, h_kv in enumerate(kv_counts):
    ax.scatter([i] * len(seeds), test_loss[h_kv], color="C0", label="one seed" if i == 0 else None)
    ax.plot([i - 0.2, i + 0.2], [sum(test_loss[h_kv]) / len(seeds)] * 2, color="black",
            label="mean of 3 seeds" if i == 0 else None)
ax.set_xticks(range(len(kv_counts)), [f"h_kv = {h}\n({n_params[h]:,} parameters)" for h in kv_counts])
ax.set_ylabel("test loss (nats per answer)")
ax.set_ylim(bottom=0)
ax.set_title("Key-value recall, h = 4 query heads, 300 steps")
ax.legend()
fig.tight_layout()
plt.show()
""")
code(r"""
mean = {h_kv: sum(test_loss[h_kv]) / len(seeds) for h_kv in kv_counts}
costs_more = min(test_loss[1]) > max(test_loss[4])           # every MQA seed worse than every MHA seed
print("learning rate chosen on validation:", {f"h_kv = {h}": chosen[h] for h in kv_counts})
twice = mean[1] > 2 * mean[4]
print("multi-query (h_kv = 1) worse than multi-head (h_kv = 4) on every seed:", costs_more)
print("mean test loss of multi-query more than twice that of multi-head:", twice)
assert costs_more and twice
""", ["remove-input"])
md(r"""
On this task one shared key/value head costs clearly: every multi-query seed ends above every
multi-head seed, and the mean test loss is more than twice as high. The task is built to be hard on sharing (16 keys to tell apart in
an 8-dimensional key space when all heads share it), so this is an upper end, not a typical
cost: Ainslie et al. found that 8 groups in a large model come close to multi-head quality, and
the memory table above is why everyone takes that trade. What the experiment does not show: how
the cost shrinks with width, or with more training.

## Sliding windows, and what the first tokens were for

A cache that grows with every token must stop somewhere. The simplest bound is the restricted
attention of {ref}`chapter 7 <ch-long-range>`: each query sees only its last $w$ keys, so the
cache holds $w$ tokens however long the text. Longformer {cite}`beltagy2020longformer` combines
such windows with a few global tokens; Mistral 7B {cite}`jiang2023mistral` uses a window of 4,096
in every layer, so information travels further only through the layers. Xiao et al.
{cite}`xiao2023efficient` found what goes wrong when a model trained with full attention is run
with a window: as soon as the *first* tokens leave the window, the text falls apart, even though
those tokens carry almost no meaning. Heads with nothing to do park their weight on the first
tokens, as the BERT heads of {ref}`chapter 9 <ch-pretrained>` park theirs on `[CLS]` and
`[SEP]`. Evict the parking place and the softmax must put that weight somewhere else. Their fix is
to keep the first few tokens in the cache for ever, as {term}`attention sinks <attention sink (注意力汇聚点)>`.

`attnlib.sliding_window_mask(n, window, sinks=s)` is that rule as a mask, built from
`causal_mask` and `window_mask`: query $i$ sees keys $i - w < j \le i$, and the first $s$ keys.
""")
code(r"""
fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
for ax, (title, mask) in zip(axes, [("causal", attnlib.causal_mask(10)),
                                    ("window w = 3", attnlib.sliding_window_mask(10, 3)),
                                    ("window w = 3, 1 sink", attnlib.sliding_window_mask(10, 3, sinks=1))], strict=True):
    ax.imshow(mask.numpy(), cmap="Greys", vmin=0, vmax=1.4)
    ax.set_title(title)
    ax.set_xlabel("key position")
axes[0].set_ylabel("query position")
fig.suptitle("Which keys each query may see (dark = may attend)")
fig.tight_layout()
plt.show()
""")
md(r"""
Our three bigram-backcopy models were trained with full causal attention on sequences of 31
tokens. Nothing in the language needs more than the last two tokens, so a window of $w$ tokens
loses no information the task uses. We evaluate each model on the held-out sequences with the
full causal mask, with windows of 2 and 4 tokens, and with the same windows plus one sink (the
start token), scoring only positions 8 and later, where the start token has left every window.
""")
code(r"""
n_in = x_val.shape[1]
late = slice(8, None)                                                      # positions where BOS is out of the window


def late_loss(model, mask):
    with torch.no_grad():
        losses = modern.next_token_loss(model, (x_val, y_val), mask, reduction="none")   # (512, 31)
    return losses[:, late].mean().item()


settings = {"full": None}
for w in (2, 4):
    settings[f"window {w}"] = attnlib.sliding_window_mask(n_in, w)
    settings[f"window {w} + sink"] = attnlib.sliding_window_mask(n_in, w, sinks=1)
excess = {name: [late_loss(m, mask) - late_loss(m, None) for m in bb_models] for name, mask in settings.items()}
fig, ax = plt.subplots(figsize=(7, 3.8))
for i, name in enumerate(settings):
    ax.scatter([i] * len(bb_seeds), excess[name], color="C3" if "sink" not in name and name != "full" else "C0")
ax.set_xticks(range(len(settings)), list(settings), rotation=20)
ax.axhline(0, color="grey", lw=0.5)
ax.set_ylabel("loss above full attention (nats per token)")
ax.set_title("Evicting the first token hurts; keeping it as a sink restores (3 seeds)")
fig.tight_layout()
plt.show()
""")
code(r"""
for w in (2, 4):
    lost = sum(excess[f"window {w}"]) / len(bb_seeds)
    kept = sum(excess[f"window {w} + sink"]) / len(bb_seeds)
    print(f"window {w}: evicting the start token costs on average more than with it kept: {lost > kept};"
          f" the sink restores more than half of the loss: {kept < lost / 2}")
    assert lost > 0 and kept < lost / 2
""", ["remove-input"])
md(r"""
The models lose little in absolute terms, because most of their loss is the bigram table's own
uncertainty. But on average over the three seeds, for both windows, a window that has dropped the
start token is worse than full attention, and adding back just that one token recovers more than
half of the difference (both asserted above); the figure shows how much the seeds vary. Where did the weight go? The figure below is the measurement of
{ref}`chapter 9 <ch-pretrained>` repeated on our models: the share of each head's attention that
lands on the start token, separately for queries that must copy (after a trigger) and for all the
others.
""")
code(r"""
trigger_late = is_trigger[:, late]                                          # (512, 23)
fig, axes = plt.subplots(1, len(bb_models), figsize=(10, 3.4), sharey=True)
parked_share = []
for ax, seed, m in zip(axes, bb_seeds, bb_models, strict=True):
    with torch.no_grad():
        _, layer_weights = m.forward_with_weights(x_val)                    # per layer (512, 4, 31, 31)
    on_bos = torch.stack([w[:, :, late, 0] for w in layer_weights])         # (layers, 512, heads, 23)
    idle = on_bos.permute(0, 2, 1, 3)[..., ~trigger_late].mean(-1).flatten()   # (layers * heads,)
    busy = on_bos.permute(0, 2, 1, 3)[..., trigger_late].mean(-1).flatten()
    parked_share.append((idle.max().item(), busy[idle.argmax()].item()))
    labels = [f"L{ly}H{h}" for ly in range(len(layer_weights)) for h in range(4)]
    ax.bar(torch.arange(len(labels)) - 0.2, idle, width=0.4, label="no copy to do")
    ax.bar(torch.arange(len(labels)) + 0.2, busy, width=0.4, label="after a trigger")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=8)
    ax.set_title(f"seed {seed}")
axes[0].set_ylabel("attention on the start token")
axes[-1].legend(fontsize=8)
fig.suptitle("Where heads park: weight on BOS, positions 8 and later")
fig.tight_layout()
plt.show()
""")
code(r"""
parks_more_when_idle = sum(idle > 2 * busy for idle, busy in parked_share) >= 2
print("in at least two of the three models, the head that parks most on BOS does so more than twice as much"
      " when there is nothing to copy:", parks_more_when_idle)
assert parks_more_when_idle
""", ["remove-input"])
md(r"""
In at least two of the three models, the head that parks most on the start token puts more
than twice as much weight there when there is nothing to copy as when there is (asserted above): the
start token is where a head goes to do nothing, exactly what Clark et al. found for `[SEP]` in
BERT {cite}`clark2019what` and what Xiao et al. found for the first tokens of Llama. How strongly a
head parks varies a lot from seed to seed; this tiny one-layer model, trained for only {glue:text}`bb_steps` steps, develops the
habit only partly, whereas large models trained on trillions of tokens park most of the weight of
many heads on the first token. The lesson carries over unchanged: a token that is attended to
for no reason of content is still load-bearing, and a cache that evicts it changes the model.
Mistral and the StreamingLLM recipe keep the window *and* the first few tokens.

## Summary

- Rotary positions rotate pairs of query and key features by angles proportional to the position;
  the score becomes the bilinear form $q^\top R_{n-m} k$, a function of the distance only
  (measured above; tested against `transformers`' Llama code).
- Two pairings are in use, neighbours and halves; they differ by a fixed permutation of the
  features, and weights trained for one must be permuted (rows of $W_q$, $W_k$) for the other.
- Grouped-query attention shares each key/value head among a group of query heads; the cache
  shrinks by $h / h_\text{kv}$. On a task built to need many distinct keys, sharing one head for
  all costs clearly; real models choose a middle ($h_\text{kv} = 8$).
- A sliding window bounds the cache; a model trained with full attention parks weight on the first
  tokens, and keeping a few of them as sinks restores what evicting them breaks.

## Exercises

```{exercise}
:label: ex-modern-wrong-pairing

The porting trap produced a model that computes something else. Does the wrongly paired model still
have scores that depend only on the relative position? Check with `apply_rotary` and explain.
```
""")
md(r"""
```{solution-start} ex-modern-wrong-pairing
:class: dropdown
```
Yes. The interleaved pairing is also a set of rotations by $m\,\theta_j$, only of other feature
pairs, so $(R'_m q)^\top (R'_n k) = q^\top R'_{n-m} k$ still holds. What changes is *which*
features rotate together and at which frequency: the model's learnt queries and keys expected other
partners, so the scores it computes are relative but wrong.
""")
code(r"""
qx, kx = torch.randn(2, 1, 16, dtype=torch.float64)


def interleaved_score(m, n):
    q_rot = attnlib.apply_rotary(qx, torch.tensor([m]), pairing="interleaved")
    k_rot = attnlib.apply_rotary(kx, torch.tensor([n]), pairing="interleaved")
    return (q_rot @ k_rot.T).item()


same = all(abs(interleaved_score(m, m + 5) - interleaved_score(0, 5)) < 1e-12 for m in range(100))
print("interleaved scores depend only on n - m:", same)
""")
md(r"""
```{solution-end}
```
""")
md(r"""
```{exercise}
:label: ex-modern-mistral-cache

Mistral 7B has 32 layers, 32 query heads and 8 key/value heads of width 128, and a sliding window
of 4,096 tokens {cite}`jiang2023mistral`. How large is its cache, in 16-bit numbers, for one
sequence of 32,768 tokens: with full attention and 32 key/value heads, with its 8 heads, and with
its 8 heads and the window?
```
""")
md(r"""
```{solution-start} ex-modern-mistral-cache
:class: dropdown
```
The window caps the number of cached tokens at 4,096, whatever the length; the shared heads divide
by 4. Together, a factor of 32.
""")
code(r"""
for name, h_kv, tokens in [("32 heads, full", 32, 32768), ("8 heads, full", 8, 32768), ("8 heads, window", 8, 4096)]:
    print(f"{name:16s} {cache_bytes(32, h_kv, 128, tokens, 2) / 2**30:6.2f} GiB")
""")
md(r"""
```{solution-end}
```
""")
md(r"""
```{exercise}
:label: ex-modern-how-many-sinks

Xiao et al. keep four sink tokens. With a window of 2, evaluate the three bigram-backcopy models
with 0, 1, 2 and 4 sinks. Does keeping more than the start token help here? Why would a large
model need more than one?
```
""")
md(r"""
```{solution-start} ex-modern-how-many-sinks
:class: dropdown
```
Here only the start token is special: it is the one token every sequence shares, so heads learn to
park there, and the sinks after it are ordinary tokens. A large model trained on text without a
fixed start token at every position 0 spreads its parking over the first few tokens, hence four.
""")
code(r"""
cost = {}
for s in (0, 1, 2, 4):
    mask = attnlib.sliding_window_mask(n_in, 2, sinks=s)
    cost[s] = sum(late_loss(m, mask) - late_loss(m, None) for m in bb_models) / len(bb_models)
for s in (1, 2, 4):
    print(f"{s} sink(s) recover more than half of what evicting cost: {cost[s] < cost[0] / 2}")
""")
md(r"""
```{solution-end}
```
""")

nb = nbf.v4.new_notebook()
nb.cells = cells
nb.metadata = nbf.read('/work/main/chapters/06_self_attention.ipynb', 4).metadata
nbf.write(nb, '/work/main/chapters/12_modern_attention.ipynb')
print(len(cells), "cells")
