"""Which labels are wrong: label-quality scores and label issues from ONE SOP run.

cleanlab 2.x's conventions, so a user can switch between the two: wherever a name is cleanlab's
it means what it means there. :func:`get_label_quality_scores` (cleanlab's name, scores and default; ``"sop"`` when given a
method's noise score) returns a score in [0, 1] per sample, higher = the given label more likely
correct, like ``cleanlab.rank.get_label_quality_scores``; :func:`find_label_issues` returns a boolean mask or
the indices of the issues ranked by a score, like ``cleanlab.filter.find_label_issues``, and
:func:`order_label_issues` ranks a mask like ``cleanlab.rank.order_label_issues``. The inputs
are what every SOP run writes into its ``samples.npz`` (:func:`sopdeep.training.train`): the given
labels, the SOP-trained network's ``pred_prob`` and SOP's ``noise_score`` u²_{i,y_i};
:func:`from_run` reads a run folder in one call. Without a noise score (cleanlab's call
``find_label_issues(labels, pred_probs)``, or a CE run) the score is cleanlab's self-confidence.

Unlike cleanlab, no cross-validation is needed: SOP's network is trained on all samples, but
the correction s_i absorbs the wrong labels, so the network does not memorise them and its
in-sample predictions stay informative (measured in ``benchmarks/bench_label_issues.py``).

Scores (``method``; :math:`p = p(x_i)` the network's probabilities, :math:`y = y_i`)
    ``"self_confidence"``: :math:`p_y`. ``"normalized_margin"``:
    :math:`\\tfrac12(1 + p_y - \\max_{k \\ne y} p_k)`. ``"confidence_weighted_entropy"``:
    with :math:`H = -\\sum_k p_k \\log p_k / \\log K` (0 log 0 = 0) and
    :math:`s = H / \\max(p_y, 10^{-6})`, the score :math:`\\log(1 + s) / \\max(s, 10^{-6})`
    (cleanlab 2.x's mapping to [0, 1], its clip included: an exactly one-hot prediction has
    s = 0 and scores 0). These three are cleanlab's definitions, implemented here from them.
    ``"correction"``: :math:`1 - u^2_{i,y}`.
    ``"sop"`` (the default with a noise score):

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
Ties
    Every ranking (the mask's lowest-m cut and the returned order) breaks exact ties of its
    score by a second score, then by index: ``"sop"``, ``"correction"``, ``"normalized_margin"``
    and ``"confidence_weighted_entropy"`` by self-confidence :math:`p_y` (the network's own
    doubt), ``"self_confidence"`` by the normalised margin. Ties are common: u² saturates at 1 on
    many wrong labels (``"correction"`` ties them all), and the Borda score q ties whenever two
    rank sums agree (about a quarter of the samples of a 256-sample run).
Number of issues (``num_issues="predicted_neq_given"``, the default)
    The mask flags the ``m`` samples of lowest quality, with ``m`` estimated without the clean
    labels as the number of samples whose SOP-network prediction disagrees with the given label,
    ``m = #{i : argmax_k p_k(x_i) ≠ y_i}`` (cleanlab's ``"predicted_neq_given"`` rule, as a count,
    with its tie rule: another class must beat p_y by more than 1e-6; ``filter_by=
    "predicted_neq_given"`` flags exactly those samples, as cleanlab does).
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
cleanlab's confident-learning filters (``filter_by="prune_by_noise_rate"`` and the others) are
not reimplemented: they estimate a noise matrix from out-of-sample predictions, and SOP's are
in-sample; pass those predictions to cleanlab itself.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

__all__ = ["get_label_quality_scores", "estimate_num_issues", "find_label_issues",
           "order_label_issues", "from_run", "run_label_issues", "SCORE_METHODS", "CLEANLAB_SCORE_METHODS",
           "NUM_ISSUES_METHODS", "FILTER_BY"]

CLEANLAB_SCORE_METHODS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")
SCORE_METHODS = ("sop", "correction", *CLEANLAB_SCORE_METHODS)
NUM_ISSUES_METHODS = ("predicted_neq_given", "correction")
FILTER_BY = ("low_quality", "predicted_neq_given")
# cleanlab's filters that need its confident joint (a noise matrix from out-of-sample predictions)
_CLEANLAB_ONLY_FILTERS = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning",
                          "low_normalized_margin", "low_self_confidence")
# the score that breaks exact ties of each score (then the index): see the module docstring
_TIE_BREAK = {"sop": "self_confidence", "correction": "self_confidence", "self_confidence": "normalized_margin",
              "normalized_margin": "self_confidence", "confidence_weighted_entropy": "self_confidence"}
_ROW_SUM_TOL = 1e-3  # how far a row of pred_probs may sum from 1 (see _check_inputs)
_CLIP = 1e-6  # cleanlab 2.x's lower clip of p_y and of s in confidence_weighted_entropy
_NEAR_TIE = 1e-6  # cleanlab 2.x: another class must beat p_y by more than this to count as a disagreement


def _check_inputs(labels, pred_probs, noise_score):
    p = np.asarray(pred_probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"pred_probs must have shape (n_samples, n_classes >= 2), got {p.shape}")
    if p.shape[0] == 0:
        raise ValueError("pred_probs must hold at least one sample, got shape (0, n_classes)")
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise ValueError("pred_probs must hold finite probabilities in [0, 1]")
    # each row a distribution (cleanlab refuses others too); float32 softmax rows of 1,000
    # classes sum to 1 within ~1e-4, so 1e-3 accepts every real network's output
    worst = float(np.abs(p.sum(axis=1) - 1.0).max())
    if worst > _ROW_SUM_TOL:
        raise ValueError(f"pred_probs rows must each sum to 1 (probabilities, e.g. a softmax), got a row off by {worst:.3g}")
    y = np.asarray(labels)
    if y.shape != (p.shape[0],) or y.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers of shape ({p.shape[0]},), got shape {y.shape}, dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError(f"labels must lie in [0, {p.shape[1]}), got range [{y.min()}, {y.max()}]")
    u2 = None
    if noise_score is not None:
        if isinstance(noise_score, str):  # cleanlab's third positional argument is return_indices_ranked_by
            raise ValueError(f"noise_score must be an array (SOP's u² at the label), got the string {noise_score!r}; "
                             "pass cleanlab's options by keyword")
        u2 = np.asarray(noise_score, dtype=np.float64)
        if u2.shape != y.shape:
            raise ValueError(f"noise_score must have shape {y.shape}, got {u2.shape}")
        if not np.all(np.isfinite(u2)) or u2.min() < 0 or u2.max() > 1:
            raise ValueError("noise_score must hold finite values in [0, 1] (SOP's u² at the label)")
    return y.astype(np.int64), p, u2


def _resolve_method(method, u2, name="method"):
    """None -> "sop" with a noise score, else "self_confidence"; a method that needs u² without one raises."""
    if method is None:
        return "sop" if u2 is not None else "self_confidence"
    if method not in SCORE_METHODS:
        raise ValueError(f"{name} must be one of {SCORE_METHODS}, got {method!r}")
    if method in ("sop", "correction") and u2 is None:
        raise ValueError(f"noise_score (SOP's u² at the given label) is required by {name}={method!r}")
    return method


def _disagrees(y, p):
    """Prediction ≠ given label: another class beats p_y by more than 1e-6 (ties go to the label, as cleanlab)."""
    others = p.copy()
    others[np.arange(y.size), y] = -np.inf
    return others.max(axis=1) > p[np.arange(y.size), y] + _NEAR_TIE


def _score(method, y, p, u2):
    """The score ``method`` of checked inputs (float64, higher = cleaner)."""
    rows = np.arange(y.size)
    p_label = p[rows, y]
    if method == "self_confidence":
        return p_label
    if method == "normalized_margin":
        others = p.copy()
        others[rows, y] = -np.inf  # the largest probability of another class
        return (1.0 + p_label - others.max(axis=1)) / 2.0
    if method == "confidence_weighted_entropy":
        plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)  # 0 log 0 = 0
        entropy = -plogp.sum(axis=1) / np.log(p.shape[1])  # in [0, 1]
        s = entropy / np.maximum(p_label, _CLIP)
        # log(1 + s)/s falls from 1 (s -> 0) towards 0; cleanlab clips the divisor, so s < 1e-6 scores s·1e6
        return np.log1p(s) / np.maximum(s, _CLIP)
    if method == "correction":
        return 1.0 - u2
    n = y.size
    # rank sums are exact half-integers: one division keeps equal sums exactly equal (true ties)
    return 1.0 - (rankdata(u2) + rankdata(1.0 - p_label) - 1.0) / (2.0 * n)


def _ranking(method, y, p, u2):
    """All indices, lowest ``method`` score first; ties by the second score, then by index."""
    second = _score(_TIE_BREAK[method], y, p, u2)
    return np.lexsort((np.arange(y.size), second, _score(method, y, p, u2)))


def get_label_quality_scores(labels, pred_probs, *, method=None, noise_score=None):
    """Label-quality score of every sample in [0, 1], higher = the given label more likely correct.

    cleanlab's ``cleanlab.rank.get_label_quality_scores``: the same name and scores, and without
    a noise score the same default (``"self_confidence"``). The one difference: given a method's
    ``noise_score`` the default is ``"sop"`` (the rank mean of that score and the network's
    1 - p(label), module docstring). cleanlab's ``adjust_pred_probs`` is not supported.

    Parameters
    ----------
    labels : int array-like of shape (n_samples,)
        Given (possibly wrong) labels in ``[0, n_classes)``.
    pred_probs : array-like of shape (n_samples, n_classes)
        Predicted probabilities on the training samples, each row summing to 1 (the run's
        ``pred_prob``, or any classifier's: cleanlab's out-of-sample ``pred_probs``).
    method : {None, "sop", "correction", "self_confidence", "normalized_margin", \
"confidence_weighted_entropy"}, default None
        None: ``"sop"`` when ``noise_score`` is given, else ``"self_confidence"``. The formulas
        are in the module docstring; the last three are cleanlab's.
    noise_score : array-like of shape (n_samples,), optional
        A method's own noise score in [0, 1] (SOP's u²_{i,y_i}, ELR's 1 - t_{i,y_i}: the run's
        ``noise_score`` when ``has_method_score``). Required by ``"sop"`` and ``"correction"``.

    Returns
    -------
    ndarray of shape (n_samples,), float64 in [0, 1]

    Examples
    --------
    >>> get_label_quality_scores([0, 1], [[0.9, 0.1], [0.8, 0.2]], noise_score=[0.0, 1.0])
    array([0.75, 0.25])
    >>> get_label_quality_scores([0, 1], [[0.9, 0.1], [0.8, 0.2]])  # cleanlab's default: self-confidence
    array([0.9, 0.2])
    >>> get_label_quality_scores([0, 1], [[0.9, 0.1], [0.8, 0.2]], method="normalized_margin")
    array([0.9, 0.2])
    """
    y, p, u2 = _check_inputs(labels, pred_probs, noise_score)
    return _score(_resolve_method(method, u2), y, p, u2)


def estimate_num_issues(labels, pred_probs, noise_score=None, *, method="predicted_neq_given"):
    """Estimate the number of wrong labels without the clean labels.

    Parameters
    ----------
    labels, pred_probs, noise_score
        As in :func:`get_label_quality_scores` (``noise_score`` only for ``"correction"``).
    method : {"predicted_neq_given", "correction"}, default "predicted_neq_given"
        ``"predicted_neq_given"``: :math:`\\#\\{i : \\max_{k \\ne y_i} p_k(x_i) > p_{y_i}(x_i) + 10^{-6}\\}`,
        the samples whose prediction is another class (an exact or near tie counts for the given
        label, as in cleanlab 2.x); ``"correction"``: :math:`\\mathrm{round}(\\sum_i u_{i,y_i}^2)`.

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
    y, p, u2 = _check_inputs(labels, pred_probs, noise_score)
    if method == "correction":
        if u2 is None:
            raise ValueError("noise_score (SOP's u² at the given label) is required by num_issues='correction'")
        return int(round(float(u2.sum())))
    return int(np.count_nonzero(_disagrees(y, p)))


def _check_ranked_by(ranked_by, name):
    if ranked_by is not None and ranked_by != "severity" and ranked_by not in SCORE_METHODS:
        raise ValueError(f"{name} must be None, 'severity' or one of {SCORE_METHODS}, got {ranked_by!r}")


def find_label_issues(labels, pred_probs, noise_score=None, *, filter_by="low_quality",
                      return_indices_ranked_by=None, method=None, num_issues=None):
    """The samples whose given label is likely wrong: a mask, or indices ranked by a score.

    cleanlab's ``cleanlab.filter.find_label_issues(labels, pred_probs, filter_by=...,
    return_indices_ranked_by=...)`` with the same meaning of the names both have; a call
    without ``noise_score`` works on any classifier's ``pred_probs`` (self-confidence scores).
    The one difference in defaults: cleanlab's ``filter_by`` is ``"prune_by_noise_rate"``
    (confident learning, which needs out-of-sample predictions); here it is ``"low_quality"``,
    and cleanlab's confident-learning filters are refused, naming cleanlab.

    Parameters
    ----------
    labels, pred_probs, noise_score
        As in :func:`get_label_quality_scores`.
    filter_by : {"low_quality", "predicted_neq_given"}, default "low_quality"
        ``"low_quality"``: the ``m`` samples of lowest ``method`` score (ties broken as in the
        module docstring), ``m`` from ``num_issues``. ``"predicted_neq_given"``: cleanlab's rule,
        exactly the samples whose prediction is another class (ties within 1e-6 go to the given
        label, as in cleanlab; ``num_issues`` unused).
        cleanlab's confident-learning filters are refused (module docstring).
    return_indices_ranked_by : {None, "severity", "sop", "correction", "self_confidence", \
"normalized_margin", "confidence_weighted_entropy"}, default None
        None: a boolean mask of shape (n_samples,). A score name: the indices of the flagged
        samples, lowest score first (cleanlab's convention; exact ties broken by the score's
        second score, then by index). ``"severity"``: by ``method``'s score.
    method : str or None, default None
        The score of the ``"low_quality"`` cut, as in :func:`get_label_quality_scores` (None:
        ``"sop"`` with a noise score, else ``"self_confidence"``).
    num_issues : {None, "predicted_neq_given", "correction"} or int, default None
        How many samples ``"low_quality"`` flags: an estimate (:func:`estimate_num_issues`) or a
        number; None is ``"predicted_neq_given"``.

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
    >>> find_label_issues(labels, probs, return_indices_ranked_by="self_confidence")  # cleanlab's call
    array([1])
    """
    if filter_by in _CLEANLAB_ONLY_FILTERS:
        raise ValueError(f"filter_by={filter_by!r} is cleanlab's confident learning (needs out-of-sample pred_probs): "
                         f"call cleanlab.filter.find_label_issues, or use one of {FILTER_BY}")
    if filter_by not in FILTER_BY:
        raise ValueError(f"filter_by must be one of {FILTER_BY}, got {filter_by!r}")
    _check_ranked_by(return_indices_ranked_by, "return_indices_ranked_by")
    y, p, u2 = _check_inputs(labels, pred_probs, noise_score)
    method = _resolve_method(method, u2)
    n = y.size
    if filter_by == "predicted_neq_given":
        if num_issues is not None:
            raise ValueError("num_issues must be None with filter_by='predicted_neq_given' "
                             "(it flags every disagreement)")
        mask = _disagrees(y, p)
    else:
        if num_issues is None or isinstance(num_issues, str):
            m = estimate_num_issues(y, p, u2, method=num_issues or "predicted_neq_given")
        elif isinstance(num_issues, (int, np.integer)) and not isinstance(num_issues, bool) and 0 <= num_issues <= n:
            m = int(num_issues)
        else:
            raise ValueError(f"num_issues must be None, one of {NUM_ISSUES_METHODS} or an int in [0, {n}], "
                             f"got {num_issues!r}")
        mask = np.zeros(n, dtype=bool)
        mask[_ranking(method, y, p, u2)[:m]] = True
    if return_indices_ranked_by is None:
        return mask
    by = method if return_indices_ranked_by == "severity" else _resolve_method(
        return_indices_ranked_by, u2, "return_indices_ranked_by")
    return _ordered(mask, by, y, p, u2)


def _ordered(mask, by, y, p, u2):
    ranking = _ranking(by, y, p, u2)
    return ranking[mask[ranking]]  # the flagged samples, in the full ranking's order


def order_label_issues(label_issues_mask, labels, pred_probs, *, rank_by="self_confidence", noise_score=None):
    """cleanlab's ``cleanlab.rank.order_label_issues``: the flagged indices, lowest score first.

    Parameters
    ----------
    label_issues_mask : bool array-like of shape (n_samples,)
    labels, pred_probs
        As in :func:`get_label_quality_scores`.
    rank_by : str, default "self_confidence"
        One of :data:`SCORE_METHODS` (``"sop"`` and ``"correction"`` need ``noise_score``);
        exact ties are broken by a second score, then by index (module docstring).
    noise_score : array-like of shape (n_samples,), optional

    Returns
    -------
    ndarray of int of shape (label_issues_mask.sum(),)

    Examples
    --------
    >>> order_label_issues([True, True, False], [0, 0, 1], [[0.3, 0.7], [0.1, 0.9], [0.5, 0.5]])
    array([1, 0])
    """
    y, p, u2 = _check_inputs(labels, pred_probs, noise_score)
    mask = np.asarray(label_issues_mask)
    if mask.dtype != bool or mask.shape != y.shape:
        raise ValueError(f"label_issues_mask must be a boolean array of shape {y.shape}, got {mask.dtype} {mask.shape}")
    return _ordered(mask, _resolve_method(rank_by, u2, "rank_by"), y, p, u2)


def from_run(folder: str | os.PathLike, *, method="sop", num_issues="predicted_neq_given") -> dict:
    """Label quality and issues of a training run, read from its ``samples.npz`` in one call.

    Parameters
    ----------
    folder : str or PathLike
        A run folder written by :func:`sopdeep.training.train`.
    method, num_issues
        As in :func:`find_label_issues`. A run whose method has no per-sample noise score (CE,
        GCE; ``has_method_score`` False) wrote 1 - p(label) as its ``noise_score``, so
        ``method="self_confidence"`` is used whatever is asked.

    Returns
    -------
    dict
        Every array of ``samples.npz`` (``given_label``, ``pred_prob``, ``noise_score``, and
        ``clean_label`` / ``is_noisy`` when known), plus ``label_quality`` (n_samples,),
        ``is_label_issue`` (bool mask of :func:`find_label_issues`, the one the run's summary
        ``final_issues_*`` scores) and ``issues_ranked`` (indices, most severe first).
    """
    from sopdeep.runs import read_samples  # the one checked reader of a run's per-sample outputs

    path = Path(folder) / "samples.npz"
    if not path.is_file():
        raise FileNotFoundError(f"no samples.npz in {folder} (is it a finished run folder?)")
    # a damaged, truncated or incomplete file: sopdeep.runs.RunFileError (a ValueError) naming it
    d = read_samples(folder, keys=("given_label", "pred_prob", "noise_score"))
    # the method's own score, when it has one (runs written before has_method_score: SOP's correction)
    own = bool(d["has_method_score"][0]) if "has_method_score" in d else "correction" in d
    quality, ranked = run_label_issues(d["given_label"], d["pred_prob"], d["noise_score"] if own else None,
                                       method=method, num_issues=num_issues)
    d["label_quality"], d["issues_ranked"] = quality, ranked
    d["is_label_issue"] = np.zeros(d["given_label"].shape, dtype=bool)
    d["is_label_issue"][ranked] = True
    return d


def run_label_issues(labels, pred_probs, noise_score=None, *, method="sop",
                     num_issues="predicted_neq_given"):
    """Label quality and the issues ranked by severity, as every training run writes them.

    ``noise_score`` is the method's own per-sample noise score (SOP's u² at the label, ELR's
    1 - t at the label; clipped to [0, 1]), or None for a method without one (CE), which then
    uses ``method="self_confidence"`` whatever is asked.

    Returns
    -------
    label_quality : ndarray of shape (n_samples,)
    issues_ranked : ndarray of int of shape (m,), lowest quality first (ties as in the module docstring)
    """
    y, p, u2 = _check_inputs(labels, pred_probs, None if noise_score is None else np.clip(noise_score, 0.0, 1.0))
    chosen = method if u2 is not None else "self_confidence"
    quality = _score(_resolve_method(chosen, u2), y, p, u2)
    ranked = find_label_issues(y, p, u2, method=chosen, num_issues=num_issues, return_indices_ranked_by="severity")
    return quality, ranked
