"""attnlib: the small self-attention library the book teaches."""

from .analysis import attention_mass_beyond, mean_attention_distance
from .attention import SCORES, attention, causal_mask
from .layers import MultiHeadSelfAttention, SelfAttention
from .online_softmax import online_normalizer, online_softmax
from .partner_task import PartnerAttention, PartnerTask
from .plotting import plot_weights
from .positional import sinusoidal_positions
from .pretrained import load_minilm
from .scores import additive_scores, bilinear_scores, dot_scores, scaled_dot_scores
from .softmax import softmax
from .toy_tasks import RetrievalAttention, retrieval_batch, train_retrieval
from .utils import reproducible

__all__ = [
    "SCORES",
    "MultiHeadSelfAttention",
    "PartnerAttention",
    "PartnerTask",
    "RetrievalAttention",
    "SelfAttention",
    "additive_scores",
    "attention",
    "attention_mass_beyond",
    "bilinear_scores",
    "causal_mask",
    "dot_scores",
    "load_minilm",
    "mean_attention_distance",
    "online_normalizer",
    "online_softmax",
    "plot_weights",
    "reproducible",
    "retrieval_batch",
    "scaled_dot_scores",
    "sinusoidal_positions",
    "softmax",
    "train_retrieval",
]
