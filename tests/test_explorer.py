"""The attention explorer's HTML: deterministic, the weights it carries, its still image, its checks."""

import base64
import json
import re

import pytest
import torch

from attnlib.explorer import SCALE, attention_explorer


def _weights(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(*shape, generator=g, dtype=torch.float64) * 2, dim=-1)


def _payload(fragment: str) -> dict:
    match = re.search(r"<script type='application/json' class='ae-data'>(.*?)</script>", fragment)
    return json.loads(match.group(1))


def test_same_input_same_html_and_the_id_is_a_content_hash():
    w = _weights(2, 3, 5, 5)
    tokens = list("abcde")
    first = attention_explorer(w, tokens, title="t").data
    assert first == attention_explorer(w.clone(), tokens, title="t").data
    other = attention_explorer(w, tokens, title="u").data
    uid = re.search(r"id='(ae-[0-9a-f]{12})'", first).group(1)
    assert uid != re.search(r"id='(ae-[0-9a-f]{12})'", other).group(1)


def test_payload_holds_the_weights_in_hundredths():
    w = _weights(2, 3, 4, 6)
    q, k = ["q0", "q1", "q2", "q3"], [f"k{j}" for j in range(6)]
    d = _payload(attention_explorer(w, q, k, layer_names=["L0", "L1"], layer=1, head=2).data)
    assert d["shape"] == [2, 3, 4, 6] and d["q"] == q and d["k"] == k and d["scale"] == SCALE
    assert d["layers"] == ["L0", "L1"] and d["heads"] == ["head 0", "head 1", "head 2"]
    assert (d["layer"], d["head"]) == (1, 2)
    stored = torch.frombuffer(bytearray(base64.b64decode(d["w"])), dtype=torch.uint8).view(2, 3, 4, 6)
    assert torch.equal(stored.double(), torch.round(w * SCALE))
    assert (stored.double() / SCALE - w).abs().max() <= 0.5 / SCALE + 1e-12


def test_three_dimensional_weights_are_one_layer():
    w = _weights(4, 3, 3)
    d = _payload(attention_explorer(w, ["a", "b", "c"]).data)
    assert d["shape"] == [1, 4, 3, 3] and d["layers"] == ["layer 0"]


def test_still_image_draws_the_selected_head():
    w = _weights(2, 2, 5, 5)
    w[1, 0, 2] = torch.tensor([0.0, 0.001, 0.999, 0.0, 0.0], dtype=torch.float64)
    fragment = attention_explorer(w, list("abcde"), layer=1, head=0).data
    rects = re.findall(r"<rect x='(\d+)' y='(\d+)' width='12' height='12' fill-opacity='([.0-9]+)'/>", fragment)
    expected = torch.round(w[1, 0] * SCALE)
    assert len(rects) == int((expected > 0).sum())  # one cell per weight that rounds above 0
    opacities = sorted(float(o) for _, _, o in rects)
    assert opacities == sorted((expected[expected > 0] / SCALE).tolist())
    assert "layer 1, head 0" in fragment


def test_tokens_cannot_break_out_of_the_html():
    w = _weights(1, 1, 2, 2)
    fragment = attention_explorer(w, ["</script><b>", "a&b"]).data
    data = re.search(r"class='ae-data'>(.*?)</script>", fragment).group(1)
    assert "<" not in data and ">" not in data and "&" not in data
    assert _payload(fragment)["q"] == ["</script><b>", "a&b"]
    assert "<b>" not in fragment.replace("\\u003cb\\u003e", "")


def test_checks_say_what_was_expected():
    w = _weights(2, 3, 3)
    with pytest.raises(ValueError, match="shape"):
        attention_explorer(torch.ones(3, 3), ["a", "b", "c"])
    with pytest.raises(ValueError, match="query_tokens has 2 tokens"):
        attention_explorer(w, ["a", "b"])
    with pytest.raises(ValueError, match="square"):
        attention_explorer(_weights(1, 2, 3), ["a", "b"])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        attention_explorer(w * 2, ["a", "b", "c"])
    with pytest.raises(ValueError, match="head_names"):
        attention_explorer(w, ["a", "b", "c"], head_names=["x"])
    with pytest.raises(ValueError, match="head must be"):
        attention_explorer(w, ["a", "b", "c"], head=2)
    with pytest.raises(TypeError, match="list of strings"):
        attention_explorer(w, "abc")
