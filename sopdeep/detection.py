"""Label-noise detection metrics: AUROC (ties handled), precision and recall of a mask.

The positive class is "the given label is wrong" (``is_noisy``); scores are higher for samples
more likely mislabelled.
"""

from __future__ import annotations

import numpy as np

__all__ = ["auroc", "precision_recall", "detection_metrics"]


def _as_arrays(scores, is_noisy):
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(is_noisy).ravel()
    if y.dtype != bool:
        raise ValueError(f"is_noisy must be a boolean array, got dtype {y.dtype}")
    if s.shape != y.shape:
        raise ValueError(f"scores and is_noisy must have the same length, got {s.shape} and {y.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    return s, y


def auroc(scores, is_noisy) -> float:
    """Area under the ROC curve, the Mann-Whitney statistic with ties counted one half.

    .. math::

        \\mathrm{AUROC} = \\frac{1}{n_+ n_-} \\sum_{i: y_i=1} \\sum_{j: y_j=0}
            \\left(\\mathbb 1[s_i > s_j] + \\tfrac12 \\mathbb 1[s_i = s_j]\\right)
            = \\frac{R_+ - n_+(n_+ + 1)/2}{n_+ n_-}

    with :math:`R_+` the sum of the mid-ranks (average rank over ties) of the positives.

    Parameters
    ----------
    scores : array-like of shape (n,)
    is_noisy : bool array-like of shape (n,)

    Returns
    -------
    float, or ``nan`` when one class is empty.

    Examples
    --------
    >>> auroc([0.1, 0.4, 0.4, 0.9], [False, False, True, True])
    0.875
    """
    s, y = _as_arrays(scores, is_noisy)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    # mid-ranks: each run of equal scores gets the mean of its 1-based ranks
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    ends = np.r_[starts[1:], s.size]
    mid = (starts + ends + 1) / 2.0  # mean of ranks start+1 .. end
    ranks = np.empty(s.size)
    ranks[order] = np.repeat(mid, ends - starts)
    r_pos = ranks[y].sum()
    return float((r_pos - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def precision_recall(flagged, is_noisy) -> tuple[float, float]:
    """Precision ``|flagged ∩ noisy| / |flagged|`` and recall ``|flagged ∩ noisy| / |noisy|``.

    Returns ``nan`` for a ratio whose denominator is zero.
    """
    f = np.asarray(flagged).ravel()
    y = np.asarray(is_noisy).ravel()
    if f.dtype != bool or y.dtype != bool:
        raise ValueError("flagged and is_noisy must be boolean arrays")
    if f.shape != y.shape:
        raise ValueError(f"flagged and is_noisy must have the same length, got {f.shape} and {y.shape}")
    tp = int(np.count_nonzero(f & y))
    nf, ny = int(f.sum()), int(y.sum())
    return (tp / nf if nf else float("nan"), tp / ny if ny else float("nan"))


def detection_metrics(scores, flagged, is_noisy) -> dict[str, float]:
    """``{"auroc", "precision", "recall", "flagged_fraction"}`` of a noise score and its mask.

    A run's summary reports this once, as ``final_issues_*``: of ``1 - label_quality`` and
    ``is_label_issue`` (:mod:`sopdeep.label_issues`, no threshold, no clean labels needed); its
    per-epoch rows log ``monitor_*``, of the method's noise score at ``config.issue_threshold``.
    """
    p, r = precision_recall(flagged, is_noisy)
    return {"auroc": auroc(scores, is_noisy), "precision": p, "recall": r,
            "flagged_fraction": float(np.mean(np.asarray(flagged)))}
