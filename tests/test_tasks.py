import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from attnlib.experiments.long_range import label_of, remember_first_token


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("distance, length", [(0, None), (5, None), (5, 12), (30, 31)])
def test_shapes_and_token_ranges(distance, length):
    tokens, labels = remember_first_token(64, distance, length=length, generator=gen(0))
    n = distance + 1 if length is None else length
    assert tokens.shape == (64, n) and labels.shape == (64,)
    assert tokens.dtype == labels.dtype == torch.int64
    where = n - 1 - distance
    assert torch.equal(tokens[:, where], labels)
    assert ((labels >= 0) & (labels < 8)).all()
    others = torch.cat([tokens[:, :where], tokens[:, where + 1 :]], dim=1)
    assert ((others >= 8) & (others < 16)).all()  # every other position is a distractor


def test_same_seed_same_batch_other_seed_other_batch():
    a = remember_first_token(32, 10, generator=gen(3))
    b = remember_first_token(32, 10, generator=gen(3))
    c = remember_first_token(32, 10, generator=gen(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_labels_and_distractors_cover_their_vocabularies():
    tokens, labels = remember_first_token(4000, 3, n_classes=5, n_distractors=3, generator=gen(0))
    assert torch.equal(labels.unique(), torch.arange(5))
    assert torch.equal(tokens[:, 1:].unique(), torch.arange(5, 8))
    # uniform labels: every class within 20% of its expected count 800
    assert (labels.bincount().float() - 800).abs().max() < 160


@given(st.integers(0, 40), st.integers(0, 10), st.integers(0, 2**31 - 1))
def test_label_depends_only_on_the_token_d_back(distance, extra, seed):
    tokens, labels = remember_first_token(8, distance, length=distance + 1 + extra, generator=gen(seed))
    assert torch.equal(label_of(tokens, distance), labels)
    where = tokens.shape[1] - 1 - distance
    changed = tokens.clone()
    others = torch.ones(tokens.shape[1], dtype=torch.bool)
    others[where] = False
    changed[:, others] = torch.randint(16, (8, int(others.sum())), generator=gen(seed + 1))  # every other token
    assert torch.equal(label_of(changed, distance), labels)
    changed[:, where] = (tokens[:, where] + 1) % 8  # that token
    assert not (label_of(changed, distance) == labels).any()


@pytest.mark.parametrize(
    "kwargs",
    [dict(batch_size=0, distance=3), dict(batch_size=4, distance=-1), dict(batch_size=4, distance=3, n_classes=1),
     dict(batch_size=4, distance=3, n_distractors=0), dict(batch_size=4, distance=3, length=3)],
)
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        remember_first_token(**kwargs)


def test_label_of_bad_input_raises():
    with pytest.raises(ValueError, match="length > distance"):
        label_of(torch.zeros(2, 4, dtype=torch.int64), 4)
    with pytest.raises(ValueError, match=r"\(batch_size, length\)"):
        label_of(torch.zeros(4, dtype=torch.int64), 1)
