"""attnlib: the small self-attention library the book teaches.

The mechanism, in the order the book builds it (every name below is importable from ``attnlib``):

- ``scores``     how similar is each query to each key: dot, scaled dot, bilinear, additive (ch 2-4)
- ``softmax``    scores -> weights, and the online softmax's running maximum and sum (ch 5)
- ``masks``      which keys a query may see: causal (top-left or bottom-right), windows, sinks (ch 5-7, 10, 12)
- ``attention``  softmax(score(Q, K)) V, the function every chapter calls (ch 1-6); grouped-query (ch 12)
- ``layers``     SelfAttention, MultiHeadSelfAttention and MultiHeadCrossAttention as torch modules (ch 1, 3, 6, 11)
- ``positions``  sinusoidal position encodings (ch 6), rotary positions (ch 12)
- ``chunked``    attention without the n x n score matrix, forward and backward (ch 5, 8);
                 its backward pass by recomputation is in ``chunked_backward``
- ``ring``       ring attention: one sequence split across the processes of a group (ch 13);
                 ``processes`` runs a function on N local processes that form the group
- ``cache``      the key-value cache: past keys and values kept, one new query per step (ch 10)
- ``decoder``    a decoder-only Transformer and text generation: greedy, temperature, top-k, top-p (ch 10)
- ``analysis``   reading attention weights: entropy, distance (ch 1, 3, 5, 6, 9, 10)
- ``training``   seeding and the one training loop every experiment uses
- ``display``    a heatmap of attention weights (imports matplotlib only when called)
- ``checks``     the input checks every public function runs once, at its entry

Each chapter's experiment scaffolding (tasks, toy models, data) lives in ``attnlib.experiments``,
one module per experiment; see its docstring.
"""

from .analysis import attention_entropy, attention_mass_beyond, mean_attention_distance
from .attention import SCORES, attention, grouped_query_attention
from .block import Block, Config
from .cache import KVCache, kv_cache_bytes
from .chunked import chunked_attention
from .decoder import TransformerLM, filter_logits, generate
from .display import html_table, plot_weights
from .explorer import attention_explorer
from .layers import MultiHeadCrossAttention, MultiHeadSelfAttention, SelfAttention
from .masks import causal_mask, sliding_window_mask, window_mask
from .positions import apply_rotary, sinusoidal_positions
from .processes import run_on_processes
from .ring import ring_attention
from .scores import additive_scores, bilinear_scores, dot_scores, scaled_dot_scores
from .softmax import online_normalizer, online_softmax, softmax
from .training import count_parameters, reproducible, train

__all__ = [
    "SCORES",
    "Block",
    "Config",
    "KVCache",
    "MultiHeadCrossAttention",
    "MultiHeadSelfAttention",
    "SelfAttention",
    "TransformerLM",
    "additive_scores",
    "apply_rotary",
    "attention",
    "attention_entropy",
    "attention_explorer",
    "attention_mass_beyond",
    "bilinear_scores",
    "causal_mask",
    "chunked_attention",
    "count_parameters",
    "dot_scores",
    "filter_logits",
    "generate",
    "grouped_query_attention",
    "html_table",
    "kv_cache_bytes",
    "mean_attention_distance",
    "online_normalizer",
    "online_softmax",
    "plot_weights",
    "reproducible",
    "ring_attention",
    "run_on_processes",
    "scaled_dot_scores",
    "sinusoidal_positions",
    "sliding_window_mask",
    "softmax",
    "train",
    "window_mask",
]
