import pytest
import torch

from attnlib.claims import ClaimFailed, Claims


def test_a_claim_that_holds_is_listed_with_its_link():
    claims = Claims("chapters/03_x")
    claims.check("grows", "It grows", holds=torch.tensor(2.0) > 1, measured="2.0", margin="1.0 above 1")
    box, index = claims.box().data, claims.index().data
    assert "What this chapter checked" in box and "It grows" in box and "1.0 above 1" in box
    assert "href='#claim-grows'" in box
    assert "href='chapters/03_x.html#claim-grows'" in index


def test_a_claim_that_fails_stops_the_cell():
    with pytest.raises(ClaimFailed, match="It grows"):
        Claims("chapters/03_x").check("grows", "It grows", holds=False, measured="0.5")


@pytest.mark.parametrize("holds", ["yes", 1, None, torch.ones(2) > 0])
def test_holds_must_be_a_boolean(holds):
    with pytest.raises((TypeError, RuntimeError)):
        Claims("chapters/03_x").check("k", "c", holds=holds, measured="m")


def test_one_key_per_claim_and_keys_that_make_anchors():
    claims = Claims("chapters/03_x")
    claims.check("k", "c", holds=True, measured="m")
    with pytest.raises(ValueError, match="checked twice"):
        claims.check("k", "c", holds=True, measured="m")
    with pytest.raises(ValueError, match="lower-case"):
        claims.check("Bad Key", "c", holds=True, measured="m")
    with pytest.raises(ValueError, match="without extension"):
        Claims("chapters/03_x.ipynb")
    with pytest.raises(ValueError, match="no checked claims"):
        Claims("chapters/03_x").box()


def test_bounds_lie_beyond_the_margin_on_the_tenths():
    from attnlib.claims import at_least, at_most, bound

    for x in [0.0, 0.02, 0.1, 0.37, 0.5, 0.55, 0.8, 0.95, 0.999, 1.0]:
        low, high = float(at_least(x).split()[-1]), float(at_most(x).split()[-1])
        assert low <= max(0.0, x - 0.1) + 1e-9 and round(low * 10, 9).is_integer()
        assert high >= min(1.0, x + 0.1) - 1e-9 and round(high * 10, 9).is_integer()
        assert x - low < 0.2 + 1e-9 and high - x < 0.2 + 1e-9  # the nearest such tenth
    assert at_least(1.0) == "≥ 0.9" and at_most(0.0) == "≤ 0.1"
    assert bound(0.7) == "≥ 0.6" and bound(0.3) == "≤ 0.4"
