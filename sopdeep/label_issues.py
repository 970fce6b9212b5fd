"""Which labels are wrong: label-quality scores and label issues from ONE SOP run.

cleanlab's conventions, so a user can switch between the two: :func:`label_quality_scores`
returns a score in [0, 1] per sample (higher = the given label is more likely correct, like
``cleanlab.rank.get_label_quality_scores``) and :func:`find_label_issues` a boolean mask or the
indices of the issues ranked by severity (like ``cleanlab.filter.find_label_issues``). The
inputs are what every SOP run writes into its ``samples.npz`` (:func:`sopdeep.train.train`):
the given labels, the SOP-trained network's ``pred_prob`` and SOP's ``noise_score``
u²_{i,y_i}; :func:`from_run` reads a run folder in one call.

Unlike cleanlab, no cross-validation is needed: SOP's network is trained on all samples, but
the correction s_i absorbs the wrong labels, so the network does not memorise them and its
in-sample predictions stay informative (measured in ``benchmarks/bench_label_issues.py``).

Score (``method="sop"``, the default)
    .. math::

        q_i = 1 - \\tfrac12\\left(r_i(u^2_{\\cdot,y}) + r_i(1 - p_{y}(x_\\cdot))\\right),
        \\qquad r_i(a) = \\frac{\\mathrm{rank}_i(a) - 1/2}{n},

    the mean of the two normalised mid-ranks (a Borda count) of two noise signals: the mass
    u²_{i,y_i} the correction had to add at the given label, and the SOP network's own
    1 - p(given label). Ranks, not values, because the two live on scales that move during
    training: u only grows (its CE gradient never shrinks it), so u² saturates at 1 and ties on
    most wrong labels *and* on hard clean ones late in a run, where 1 - p separates them; early,
    or when the network starts to memorise, u² is small and unsaturated while 1 - p is near 0
    for memorised wrong labels, where u² separates them. Measured AUROC of 1 - q on the two
    validation settings (Fashion-MNIST 40 % symmetric noise, seed 1 / the synthetic problem of
    the tests, seeds 0-2): rank mean 0.981 / 0.929-0.943; plain mean (u² + 1 - p)/2 0.979 /
    0.847-0.892; u² alone 0.942 / 0.977-0.986; 1 - p alone 0.977 / 0.803-0.852. q is in
    (0, 1), ranks the samples, and depends on the whole set (like any rank).
Number of issues (``num_issues="predicted_neq_given"``, the default)
    The mask flags the ``m`` samples of lowest quality, with ``m`` estimated without the clean
    labels as the number of samples whose SOP-network prediction disagrees with the given label,
    ``m = #{i : argmax_k p_k(x_i) ≠ y_i}`` (cleanlab's ``"predicted_neq_given"`` rule, as a count).
    It counts the wrong labels the network did not memorise (SOP's purpose) plus the clean
    samples it gets wrong; the two errors (memorised wrong labels, mispredicted clean ones)
    partly cancel. ``"correction"`` uses ``round(Σ_i u²_{i,y_i})``, the noise mass the
    correction absorbed; it over-counts once u has converged (u² also rises on hard clean
    samples). Measured on Fashion-MNIST seed 1 (4,034 wrong labels): disagreement count 3,941,
    Σu² 4,558. Both under-count when the run is too short for u to converge and the network
    memorises (synthetic problem of the tests: 4-10 and 18-27 for 102 wrong labels). An integer
    sets ``m`` directly.

Both choices were made on validation settings (Fashion-MNIST seed 1 and the synthetic problem),
not on the settings reported in the benchmark's table (Fashion-MNIST seed 0, CIFAR-10N).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

__all__ = ["label_quality_scores", "estimate_num_issues", "find_label_issues", "from_run",
           "SCORE_METHODS", "NUM_ISSUES_METHODS"]

SCORE_METHODS = ("sop", "correction", "self_confidence")
NUM_ISSUES_METHODS = ("predicted_neq_given", "correction")


def _check_inputs(labels, pred_probs, noise_score, needs_noise_score):
    p = np.asarray(pred_probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"pred_probs must have shape (n_samples, n_classes >= 2), got {p.shape}")
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise ValueError("pred_probs must hold finite probabilities in [0, 1]")
    y = np.asarray(labels)
    if y.shape != (p.shape[0],) or y.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers of shape ({p.shape[0]},), got shape {y.shape}, dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError(f"labels must lie in [0, {p.shape[1]}), got range [{y.min()}, {y.max()}]")
    u2 = None
    if noise_score is not None:
        u2 = np.asarray(noise_score, dtype=np.float64)
        if u2.shape != y.shape:
            raise ValueError(f"noise_score must have shape {y.shape}, got {u2.shape}")
        if not np.all(np.isfinite(u2)) or u2.min() < 0 or u2.max() > 1:
            raise ValueError("noise_score must hold finite values in [0, 1] (SOP's u² at the label)")
    elif needs_noise_score:
        raise ValueError("noise_score (SOP's u² at the given label) is required by this method")
    return y.astype(np.int64), p, u2


def label_quality_scores(labels, pred_probs, noise_score=None, *, method="sop"):
    """Label-quality score of every sample in [0, 1], higher = the given label more likely correct.

    Parameters
    ----------
    labels : int array-like of shape (n_samples,)
        Given (possibly wrong) labels in ``[0, n_classes)``.
    pred_probs : array-like of shape (n_samples, n_classes)
        The SOP-trained network's predicted probabilities on the training samples (the run's
        ``pred_prob``).
    noise_score : array-like of shape (n_samples,), optional
        SOP's u²_{i,y_i} in [0, 1] (the run's ``noise_score``), or its mean over the epochs when
        recorded. Required by ``"sop"`` and ``"correction"``.
    method : {"sop", "correction", "self_confidence"}, default "sop"
        ``"sop"``: one minus the mean normalised mid-rank of u² and of :math:`1 - p_y` (module
        docstring); ``"correction"``: :math:`1 - u^2`;
        ``"self_confidence"``: :math:`p_y` (cleanlab's default score, here on SOP's in-sample
        predictions).

    Returns
    -------
    ndarray of shape (n_samples,), float64 in [0, 1]

    Examples
    --------
    >>> label_quality_scores([0, 1], [[0.9, 0.1], [0.8, 0.2]], [0.0, 1.0])
    array([0.75, 0.25])
    """
    if method not in SCORE_METHODS:
        raise ValueError(f"method must be one of {SCORE_METHODS}, got {method!r}")
    y, p, u2 = _check_inputs(labels, pred_probs, noise_score, method != "self_confidence")
    p_label = p[np.arange(y.size), y]
    if method == "self_confidence":
        return p_label
    if method == "correction":
        return 1.0 - u2
    n = y.size
    return 1.0 - ((rankdata(u2) - 0.5) / n + (rankdata(1.0 - p_label) - 0.5) / n) / 2.0


def estimate_num_issues(labels, pred_probs, noise_score=None, *, method="predicted_neq_given"):
    """Estimate the number of wrong labels without the clean labels.

    Parameters
    ----------
    labels, pred_probs, noise_score
        As in :func:`label_quality_scores` (``noise_score`` only for ``"correction"``).
    method : {"predicted_neq_given", "correction"}, default "predicted_neq_given"
        ``"predicted_neq_given"``: :math:`\\#\\{i : \\arg\\max_k p_k(x_i) \\ne y_i\\}`;
        ``"correction"``: :math:`\\mathrm{round}(\\sum_i u_{i,y_i}^2)`.

    Returns
    -------
    int in [0, n_samples]

    Notes
    -----
    Measured on Fashion-MNIST (first 10,000 images, 40 % symmetric noise, seed 1: 4,034 wrong
    labels) after 40 SOP epochs: disagreement count 3,941 (-2.3 %), Σu² 4,558 (+13 %).

    Examples
    --------
    >>> estimate_num_issues([0, 1, 1], [[0.9, 0.1], [0.7, 0.3], [0.2, 0.8]])
    1
    """
    if method not in NUM_ISSUES_METHODS:
        raise ValueError(f"num_issues must be an int or one of {NUM_ISSUES_METHODS}, got {method!r}")
    y, p, u2 = _check_inputs(labels, pred_probs, noise_score, method == "correction")
    if method == "correction":
        return int(round(float(u2.sum())))
    return int(np.count_nonzero(p.argmax(axis=1) != y))


def find_label_issues(labels, pred_probs, noise_score=None, *, method="sop",
                      num_issues="predicted_neq_given", return_indices_ranked_by=None):
    """The samples whose given label is likely wrong: a mask, or indices ranked by severity.

    The ``m`` samples of lowest :func:`label_quality_scores` are the issues, with ``m`` from
    :func:`estimate_num_issues` (or given). Ties in the score are broken by sample index.

    Parameters
    ----------
    labels, pred_probs, noise_score, method
        As in :func:`label_quality_scores`.
    num_issues : {"predicted_neq_given", "correction"} or int, default "predicted_neq_given"
        How many samples to flag: an estimate (:func:`estimate_num_issues`) or a number.
    return_indices_ranked_by : {None, "severity"}, default None
        None: a boolean mask of shape (n_samples,). ``"severity"``: the indices of the flagged
        samples, lowest quality first (cleanlab's ``"self_confidence"`` ranking convention).

    Returns
    -------
    ndarray of bool of shape (n_samples,), or ndarray of int of shape (m,)

    Examples
    --------
    >>> labels, probs, u2 = [0, 1, 1], [[0.9, 0.1], [0.7, 0.3], [0.2, 0.8]], [0.0, 1.0, 0.1]
    >>> find_label_issues(labels, probs, u2)
    array([False,  True, False])
    >>> find_label_issues(labels, probs, u2, num_issues=2, return_indices_ranked_by="severity")
    array([1, 2])
    """
    if return_indices_ranked_by not in (None, "severity"):
        raise ValueError(f"return_indices_ranked_by must be None or 'severity', got {return_indices_ranked_by!r}")
    quality = label_quality_scores(labels, pred_probs, noise_score, method=method)
    n = quality.size
    if isinstance(num_issues, str):
        m = estimate_num_issues(labels, pred_probs, noise_score, method=num_issues)
    elif isinstance(num_issues, (int, np.integer)) and not isinstance(num_issues, bool) and 0 <= num_issues <= n:
        m = int(num_issues)
    else:
        raise ValueError(f"num_issues must be one of {NUM_ISSUES_METHODS} or an int in [0, {n}], got {num_issues!r}")
    ranked = np.argsort(quality, kind="stable")[:m]
    if return_indices_ranked_by == "severity":
        return ranked
    mask = np.zeros(n, dtype=bool)
    mask[ranked] = True
    return mask


def from_run(folder: str | os.PathLike, *, method="sop", num_issues="predicted_neq_given") -> dict:
    """Label quality and issues of a training run, read from its ``samples.npz`` in one call.

    Parameters
    ----------
    folder : str or PathLike
        A run folder written by :func:`sopdeep.train.train`.
    method, num_issues
        As in :func:`find_label_issues`. A run without SOP's correction (CE) has no u²: its
        ``noise_score`` is 1 - p(label), so ``method="self_confidence"`` is used whatever is asked.

    Returns
    -------
    dict
        Every array of ``samples.npz`` (``given_label``, ``pred_prob``, ``noise_score``, and
        ``clean_label`` / ``is_noisy`` when known), plus ``label_quality`` (n_samples,),
        ``is_label_issue`` (bool mask of :func:`find_label_issues`; replaces the trainer's fixed
        threshold) and ``issues_ranked`` (indices, most severe first).
    """
    from sopdeep.runs import read_samples  # the one checked reader of a run's per-sample outputs

    path = Path(folder) / "samples.npz"
    if not path.is_file():
        raise FileNotFoundError(f"no samples.npz in {folder} (is it a finished run folder?)")
    # a damaged, truncated or incomplete file: sopdeep.runs.RunFileError (a ValueError) naming it
    d = read_samples(folder, keys=("given_label", "pred_prob", "noise_score"))
    quality, ranked = run_label_issues(d["given_label"], d["pred_prob"],
                                       d["noise_score"] if "correction" in d else None,
                                       method=method, num_issues=num_issues)
    d["label_quality"], d["issues_ranked"] = quality, ranked
    d["is_label_issue"] = np.zeros(d["given_label"].shape, dtype=bool)
    d["is_label_issue"][ranked] = True
    return d


def run_label_issues(labels, pred_probs, noise_score=None, *, method="sop",
                     num_issues="predicted_neq_given"):
    """Label quality and the issues ranked by severity, as every training run writes them.

    ``noise_score`` is SOP's u² at the label (clipped to [0, 1]), or None for a method without a
    correction (CE), which then uses ``method="self_confidence"`` whatever is asked.

    Returns
    -------
    label_quality : ndarray of shape (n_samples,)
    issues_ranked : ndarray of int of shape (m,), lowest quality first
    """
    args = (labels, pred_probs, None if noise_score is None else np.clip(noise_score, 0.0, 1.0))
    chosen = method if noise_score is not None else "self_confidence"
    quality = label_quality_scores(*args, method=chosen)
    ranked = find_label_issues(*args, method=chosen, num_issues=num_issues,
                               return_indices_ranked_by="severity")
    return quality, ranked
