"""attnlib: the small self-attention library the book teaches."""

from .analysis import attention_mass_beyond, mean_attention_distance
from .attention import SCORES, attention, causal_mask
from .layers import MultiHeadSelfAttention, SelfAttention
from .plotting import plot_weights
from .positional import sinusoidal_positions
from .scores import additive_scores, bilinear_scores, dot_scores, scaled_dot_scores
from .softmax import softmax
from .utils import reproducible

__all__ = [
    "SCORES",
    "MultiHeadSelfAttention",
    "SelfAttention",
    "additive_scores",
    "attention",
    "attention_mass_beyond",
    "bilinear_scores",
    "causal_mask",
    "dot_scores",
    "mean_attention_distance",
    "plot_weights",
    "reproducible",
    "scaled_dot_scores",
    "sinusoidal_positions",
    "softmax",
]
