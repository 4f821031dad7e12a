"""attnlib: the small self-attention library the book teaches."""

from .analysis import attention_entropy, attention_mass_beyond, mean_attention_distance
from .attention import SCORES, attention, causal_mask
from .chunked import chunked_attention
from .language_model import LSTMLM, TransformerLM, count_parameters, evaluate_loss, generate, lm_loss, train_lm
from .layers import MultiHeadSelfAttention, SelfAttention
from .models import (
    AttentionClassifier,
    RecurrentClassifier,
    accuracy,
    causal_conv,
    count_macs,
    dependency_pattern,
    gradient_by_distance,
    local_attention,
    path_length,
    recurrent_layer,
    recurrent_sweep,
    sequential_steps,
    train_classifier,
    window_mask,
)
from .online_softmax import online_normalizer, online_softmax
from .partner_task import PartnerAttention, PartnerTask
from .plotting import plot_weights
from .positional import sinusoidal_positions
from .pretrained import load_minilm
from .scores import additive_scores, bilinear_scores, dot_scores, scaled_dot_scores
from .softmax import softmax
from .tasks import label_of, remember_first_token
from .text_data import (
    CharTokenizer,
    book_documents,
    book_text,
    find_book_root,
    get_batch,
    interleaved_split,
    page_spans,
    train_val_split,
)
from .toy_tasks import RetrievalAttention, retrieval_batch, train_retrieval
from .utils import reproducible

__all__ = [
    "SCORES",
    "AttentionClassifier",
    "CharTokenizer",
    "LSTMLM",
    "MultiHeadSelfAttention",
    "PartnerAttention",
    "PartnerTask",
    "RecurrentClassifier",
    "RetrievalAttention",
    "SelfAttention",
    "TransformerLM",
    "accuracy",
    "additive_scores",
    "attention",
    "attention_entropy",
    "attention_mass_beyond",
    "bilinear_scores",
    "book_documents",
    "book_text",
    "causal_conv",
    "causal_mask",
    "chunked_attention",
    "count_macs",
    "count_parameters",
    "dependency_pattern",
    "dot_scores",
    "evaluate_loss",
    "find_book_root",
    "generate",
    "get_batch",
    "gradient_by_distance",
    "interleaved_split",
    "label_of",
    "lm_loss",
    "load_minilm",
    "local_attention",
    "mean_attention_distance",
    "online_normalizer",
    "online_softmax",
    "page_spans",
    "path_length",
    "plot_weights",
    "recurrent_layer",
    "recurrent_sweep",
    "remember_first_token",
    "reproducible",
    "retrieval_batch",
    "scaled_dot_scores",
    "sequential_steps",
    "sinusoidal_positions",
    "softmax",
    "train_classifier",
    "train_lm",
    "train_retrieval",
    "train_val_split",
    "window_mask",
]
