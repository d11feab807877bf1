"""Masks from thresholds and fractions."""

from __future__ import annotations

import numpy as np
import pytest

from bayesstruct import pruning


def _scores():
    rng = np.random.default_rng(0)
    return {"a": rng.random((4, 5)), "b": rng.random((3,))}


def test_threshold_removes_exactly_the_scores_at_or_above():
    s = _scores()
    masks = pruning.decide(s, threshold=0.5)
    for k in s:
        np.testing.assert_array_equal(masks[k], s[k] < 0.5)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.99, 1.0])
def test_fraction_removes_the_top_scores_jointly(fraction):
    s = _scores()
    masks = pruning.decide(s, fraction=fraction)
    flat = np.concatenate([s[k].ravel() for k in s])
    removed = np.concatenate([~masks[k].ravel() for k in s])
    k = round(fraction * flat.size)
    assert removed.sum() == k
    if 0 < k < flat.size:
        assert flat[removed].min() >= flat[~removed].max()
    assert pruning.fraction_removed(masks) == pytest.approx(k / flat.size)


def test_exactly_one_rule():
    with pytest.raises(ValueError, match="exactly one"):
        pruning.decide(_scores())
    with pytest.raises(ValueError, match="exactly one"):
        pruning.decide(_scores(), threshold=0.1, fraction=0.2)
    with pytest.raises(ValueError, match="fraction"):
        pruning.decide(_scores(), fraction=1.5)
