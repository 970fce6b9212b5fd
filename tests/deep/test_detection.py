"""AUROC against the pairwise definition; precision and recall by counting."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sopdeep.detection import auroc, detection_metrics, precision_recall


def _brute_auroc(s, y):
    pos, neg = s[y], s[~y]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (pos.size * neg.size)


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 60), levels=st.integers(1, 6))
def test_auroc_equals_pairwise_count_with_ties(seed, n, levels):
    rng = np.random.default_rng(seed)
    s = rng.integers(0, levels, n).astype(float)  # few levels: many ties
    y = rng.random(n) < 0.4
    if y.all() or not y.any():
        assert np.isnan(auroc(s, y))
        return
    # both sides are exact rationals with denominator 2 n+ n- <= 1800: equal to rounding (1e-12)
    assert abs(auroc(s, y) - _brute_auroc(s, y)) < 1e-12


def test_auroc_limits():
    y = np.array([False, False, True, True])
    assert auroc([0, 1, 2, 3], y) == 1.0
    assert auroc([3, 2, 1, 0], y) == 0.0
    assert auroc([1, 1, 1, 1], y) == 0.5  # all tied: chance
    with pytest.raises(ValueError, match="is_noisy"):
        auroc([0, 1], [0, 1])
    with pytest.raises(ValueError, match="length"):
        auroc([0, 1, 2], y)


def test_precision_recall_counts():
    flagged = np.array([True, True, False, False, True])
    noisy = np.array([True, False, True, False, True])
    p, r = precision_recall(flagged, noisy)
    assert (p, r) == (2 / 3, 2 / 3)
    p, r = precision_recall(np.zeros(5, bool), noisy)
    assert np.isnan(p) and r == 0.0
    m = detection_metrics([0.9, 0.8, 0.1, 0.2, 0.7], flagged, noisy)
    assert m["flagged_fraction"] == 0.6 and m["precision"] == 2 / 3
