import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from attnlib.experiments import translation_model as tm  # noqa: E402
from attnlib.experiments import translation_task as tt  # noqa: E402
from attnlib.pictures.encoder_decoder import draw_encoder_decoder  # noqa: E402


def one_sentence(dates):
    src, tgt, _ = tt.encode([tt.translate_dates(dates)])
    n_src, n_tgt = int((src != 0).sum()), int((tgt != 0).sum()) - 1
    return src[:, :n_src], tgt[:, :n_tgt]


def model(d_model=16, n_heads=2, n_layers=2):
    torch.manual_seed(0)
    return tm.translator(d_model, n_heads=n_heads, n_layers=n_layers).double()


def draw(m, src, tgt_in, query=2, head=0):
    words = tt.show(src[0], tt.SRC_VOCAB, " ").split() + ["<eos>"]
    chars = [*tt.show(tgt_in[0], tt.TGT_VOCAB), "<eos>"]
    picture = draw_encoder_decoder(m, src, tgt_in, words, chars, query=query, head=head)
    plt.close(picture.figure)
    return picture.drawn


@pytest.mark.parametrize("dates", [[(2024, 3, 23, 4)], [(1905, 1, 2, 0), (2010, 12, 31, 2)]])
def test_the_shapes_drawn_are_those_of_the_forward_pass(dates):
    m = model()
    src, tgt_in = one_sentence(dates)
    # What the first cross-attention's projections really read, caught by hooks of our own.
    seen = {}
    cross = m.decoder[0].cross
    hooks = [cross.q.register_forward_hook(lambda mod, i, o: seen.update(q_in=i[0], q=o)),
             cross.kv.register_forward_hook(lambda mod, i, o: seen.update(kv_in=i[0], kv=o))]
    with torch.no_grad():
        logits, weights = m.forward_with_weights(src, tgt_in)
        memory, _ = m.encode(src)
    for h in hooks:
        h.remove()
    drawn = draw(m, src, tgt_in)
    assert torch.equal(seen["kv_in"], memory)  # keys and values are projected from the encoder's output
    assert seen["q_in"].shape[1] == tgt_in.shape[1] != src.shape[1]  # queries from the decoder's positions
    assert drawn["memory"] == tuple(memory.shape) == (1, src.shape[1], 16)
    assert drawn["queries"] == tuple(seen["q"].shape) == (1, tgt_in.shape[1], 16)
    assert drawn["keys"] == drawn["values"] == (1, src.shape[1], 16)
    assert drawn["weights"] == tuple(weights[0].shape) == (1, 2, tgt_in.shape[1], src.shape[1])
    assert drawn["logits"] == tuple(logits.shape)
    assert drawn["source"] == tuple(src.shape) and drawn["target"] == tuple(tgt_in.shape)
    assert (drawn["query_from"], drawn["keys_from"], drawn["values_from"]) == ("decoder", "encoder", "encoder")


def test_the_fan_is_the_real_weights_of_the_drawn_query():
    m = model(d_model=24, n_heads=3, n_layers=1)
    src, tgt_in = one_sentence([(2024, 3, 23, 4)])
    drawn = draw(m, src, tgt_in, query=4, head=2)
    with torch.no_grad():
        _, weights = m.forward_with_weights(src, tgt_in)
    assert drawn["line_weights"] == pytest.approx(weights[0][0, 2, 4].tolist(), abs=0)
    assert len(drawn["line_weights"]) == len(drawn["words"]) == src.shape[1]
    assert drawn["n_heads"] == 3 and drawn["n_layers"] == 1 and drawn["queries"][-1] == 24


def test_a_batch_or_mislabelled_sentence_is_refused():
    m = model()
    src, tgt_in = one_sentence([(2024, 3, 23, 4)])
    with pytest.raises(ValueError, match="one sentence"):
        draw_encoder_decoder(m, src.repeat(2, 1), tgt_in.repeat(2, 1), ["x"] * src.shape[1],
                             ["y"] * tgt_in.shape[1], query=0)
    with pytest.raises(ValueError, match="one sentence"):
        draw_encoder_decoder(m, src, tgt_in, ["x"], ["y"] * tgt_in.shape[1], query=0)
