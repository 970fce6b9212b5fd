"""Label noise: synthetic (symmetric, asymmetric) and real human noise (CIFAR-N).

Every generator is reproducible from ``random_state`` and returns a :class:`NoisyLabels` holding the
noisy labels, the clean labels (kept for evaluation), the mask of corrupted samples and the realised
noise rate. Definitions follow Liu et al. (ICML 2022), Table 1 and appendix A.2:

* **symmetric** (Table 1: "labels ... randomly flipped uniformly to another class"): exactly
  ``round(rate * N)`` samples, chosen uniformly without replacement, get a label drawn uniformly from
  the K - 1 *other* classes, so the realised rate is exactly ``round(rate * N) / N``. With
  ``include_true_class=True`` the appendix A.2 variant is used instead: the chosen samples get "a
  random one-hot vector", i.e. a label drawn uniformly from all K classes, so about 1/K of them keep
  their label and the realised rate is about ``rate * (K - 1) / K``.
* **asymmetric** (A.2, following Patrini et al. 2017): CIFAR-10 TRUCK->AUTOMOBILE, BIRD->AIRPLANE,
  DEER->HORSE, CAT<->DOG; CIFAR-100 each class to the next one of its super-class, circularly. In
  every source class exactly ``round(rate * n_c)`` of its ``n_c`` samples, chosen uniformly, are
  flipped (the per-class count of the authors' reference code), so the rate within each source class
  is exact.
* **the authors' generators** (``shengliu66/SOP`` at 4d991ce, ``data_loader/cifar10.py`` and
  ``cifar100.py``), which produced the paper's tables and differ from the definitions above:
  ``"sym-authors"`` draws the new label from all K classes for the first ``ceil(rate * N)`` of a
  random permutation (realised about ``rate * (K - 1) / K``: 45% at "50%", 72% at "80%" on
  CIFAR-10); ``"asym-authors"`` on CIFAR-10 flips class by class, 0 to 9, on the *already flipped*
  labels, so dog -> cat also moves cats that were just flipped to dog back (cat about 24%, about
  18.4% overall at "40%"); on CIFAR-100 it swaps two random classes inside each block of 5
  consecutive class indices, each sample of the two with probability ``rate`` (about 16% overall at
  "40%", 40 classes touched; the blocks are not the super-classes).
* **CIFAR-N** (Wei et al., ICLR 2022): the human labels of CIFAR-10N (aggregate, random1..3, worst)
  and CIFAR-100N (noisy), read from the ``.pt`` label files with a restricted unpickler that admits
  only numpy's array globals, so a tampered file cannot run code.

The generators live in :mod:`~sopdeep.noise.synthetic` (symmetric, asymmetric),
:mod:`~sopdeep.noise.authors` (the authors' generators) and :mod:`~sopdeep.noise.cifar_n`;
:class:`~sopdeep.noise.labels.NoisyLabels` and the rule of which classes exist in
:mod:`~sopdeep.noise.labels`. :data:`NOISE_KINDS` is the one registry of kinds (``TrainConfig.noise``), a dict like the others;
:func:`make_noisy_labels` dispatches to them by name, :func:`transition_matrix` to each kind's expected
transition matrix (:mod:`~sopdeep.noise.transition`). Class counts and class maps come from
:data:`sopdeep.datasets.DATASETS` (this package imports it; it never imports this one), and
neither imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from sopdeep.noise.authors import asymmetric_noise_authors, symmetric_noise_authors
from sopdeep.noise.cifar_n import CIFAR10N_LABELS, CIFAR100N_LABELS, load_cifar_n, read_cifar_n
from sopdeep.noise.labels import NoisyLabels, resolve
from sopdeep.noise.synthetic import (
    CIFAR10_ASYMMETRIC_MAP,
    CIFAR100_FINE_TO_COARSE,
    asymmetric_datasets,
    asymmetric_noise,
    cifar100_asymmetric_map,
    no_noise,
    symmetric_noise,
)
from sopdeep.noise.transition import (
    asymmetric_authors_transition,
    asymmetric_transition,
    no_noise_transition,
    symmetric_all_transition,
    symmetric_transition,
)

__all__ = [
    "NOISE_KINDS",
    "NoiseKind",
    "make_noisy_labels",
    "NoisyLabels",
    "CIFAR10_ASYMMETRIC_MAP",
    "CIFAR100_FINE_TO_COARSE",
    "CIFAR10N_LABELS",
    "CIFAR100N_LABELS",
    "no_noise",
    "symmetric_noise",
    "asymmetric_noise",
    "symmetric_noise_authors",
    "asymmetric_noise_authors",
    "asymmetric_datasets",
    "cifar100_asymmetric_map",
    "read_cifar_n",
    "load_cifar_n",
    "transition_matrix",
]


@dataclass(frozen=True)
class NoiseKind:
    """One kind of label noise in :data:`NOISE_KINDS`.

    Attributes
    ----------
    name : str
        The key (``TrainConfig.noise``).
    make : callable
        ``make(labels, rate, *, num_classes, dataset, cifar_n_path, cifar_n_label, random_state)``
        -> :class:`NoisyLabels`; every kind receives the same keywords and uses those it needs.
    description : str
        One line for ``--help``.
    rated : bool
        Whether ``rate`` sets its noise level (False: none, and the human CIFAR-N labels).
    aliases : tuple of str
    transition : callable or None
        ``transition(rate, num_classes, dataset)`` -> the expected transition matrix (K, K) of the
        kind (:mod:`sopdeep.noise.transition`; Forward correction's "known" T); None: not known
        (human labels).
    """

    name: str
    make: Callable[..., NoisyLabels]
    description: str
    rated: bool = True
    aliases: tuple[str, ...] = ()
    transition: Callable[..., np.ndarray] | None = None


def _none(labels, rate, *, num_classes, dataset, random_state, **_):
    return no_noise(labels, num_classes=num_classes, dataset=dataset)


def _symmetric(include_true_class):
    def make(labels, rate, *, num_classes, dataset, random_state, **_):
        return symmetric_noise(labels, rate, num_classes=num_classes, dataset=dataset,
                               include_true_class=include_true_class, random_state=random_state)
    return make


def _symmetric_authors(labels, rate, *, num_classes, dataset, random_state, **_):
    return symmetric_noise_authors(labels, rate, num_classes=num_classes, dataset=dataset, random_state=random_state)


def _needs_class_map(kind, dataset):
    if dataset is None:
        raise ValueError(f"kind={kind!r} needs dataset= (one of {sorted(asymmetric_datasets())}) to pick the class map")


def _asymmetric(labels, rate, *, num_classes, dataset, random_state, **_):
    _needs_class_map("asym", dataset)
    return asymmetric_noise(labels, rate, dataset=dataset, num_classes=num_classes, random_state=random_state)


def _asymmetric_authors(labels, rate, *, num_classes, dataset, random_state, **_):
    _needs_class_map("asym-authors", dataset)
    resolve(labels, num_classes, dataset)  # refuse a num_classes that disagrees with the dataset
    return asymmetric_noise_authors(labels, rate, dataset=dataset, random_state=random_state)


def _cifar_n(kind):
    def make(labels, rate, *, cifar_n_path, cifar_n_label, **_):
        if cifar_n_path is None:
            raise ValueError(f"cifar_n_path is required for kind={kind!r}")
        # CIFAR-100N has one human label set; CIFAR-10N five, chosen by cifar_n_label
        label = "noisy" if kind == "cifar100n" else cifar_n_label
        if kind == "cifar10n" and label not in CIFAR10N_LABELS:
            raise ValueError(f"cifar_n_label must be one of {sorted(CIFAR10N_LABELS)}, got {label!r}")
        return load_cifar_n(cifar_n_path, label, clean_labels=labels)
    return make


#: The registered noise kinds, name -> :class:`NoiseKind` (``TrainConfig.noise``); a new kind is one entry.
NOISE_KINDS: dict[str, NoiseKind] = {kind.name: kind for kind in (
    NoiseKind("none", _none, "the labels as given", rated=False, aliases=("clean",), transition=no_noise_transition),
    NoiseKind("sym", _symmetric(False), "round(rate N) labels flipped to another class, uniformly",
              aliases=("symmetric",), transition=symmetric_transition),
    NoiseKind("sym-all", _symmetric(True), "A.2's variant: the chosen labels redrawn from all K classes",
              transition=symmetric_all_transition),
    NoiseKind("asym", _asymmetric, "the dataset's class map (A.2), round(rate n_c) per source class",
              aliases=("asymmetric",), transition=asymmetric_transition),
    NoiseKind("sym-authors", _symmetric_authors, "the authors' symmetric generator", aliases=("symmetric_authors",),
              transition=symmetric_all_transition),
    NoiseKind("asym-authors", _asymmetric_authors, "the authors' asymmetric generator",
              aliases=("asymmetric_authors",), transition=asymmetric_authors_transition),
    NoiseKind("cifar10n", _cifar_n("cifar10n"), "CIFAR-10N human labels (cifar_n_label)", rated=False),
    NoiseKind("cifar100n", _cifar_n("cifar100n"), "CIFAR-100N human labels", rated=False),
)}
_KIND_ALIASES = {alias: kind.name for kind in NOISE_KINDS.values() for alias in kind.aliases}


def make_noisy_labels(labels, kind, rate=0.0, *, num_classes=None, dataset=None, cifar_n_path=None,
                      cifar_n_label="worst", random_state=None):
    """Dispatch to a noise model of :data:`NOISE_KINDS` by name (for configs and the command line).

    Parameters
    ----------
    labels : array-like of shape (N,)
        Clean labels.
    kind : str
        A key of :data:`NOISE_KINDS` or an alias. "sym": :func:`symmetric_noise`; "sym-all": its A.2
        variant; "asym": :func:`asymmetric_noise` with ``dataset``'s class map; "sym-authors" /
        "asym-authors": :func:`symmetric_noise_authors` / :func:`asymmetric_noise_authors`;
        "cifar10n"/"cifar100n": :func:`load_cifar_n` from ``cifar_n_path`` with ``cifar_n_label``
        (``labels`` must equal the file's clean labels).
    rate : float in [0, 1], default 0.0
        Noise level for the rated kinds (ignored for none / CIFAR-N).
    num_classes : int, optional
        K; must agree with ``dataset`` / the labels (:mod:`sopdeep.noise.labels`, "Which classes exist").
    dataset : str, optional
        The name of the dataset the labels belong to, as given to :func:`sopdeep.datasets.load_dataset`
        (aliases allowed) or ``"synthetic"``. The asymmetric kinds need one with a class map
        (:func:`asymmetric_datasets`) and refuse any other.
    cifar_n_path : str or Path, optional
        The CIFAR-N label file (the CIFAR-N kinds).
    cifar_n_label : str, default "worst"
        The CIFAR-10N label set.
    random_state : None, int, SeedSequence or numpy Generator

    Returns
    -------
    NoisyLabels
        With ``realised_rate``, the fraction of labels actually changed.

    Examples
    --------
    >>> make_noisy_labels([0, 1, 2, 3] * 5, "sym", 0.5, num_classes=4, random_state=0).realised_rate
    0.5
    """
    name = _KIND_ALIASES.get(kind, kind) if isinstance(kind, str) else kind
    if name not in NOISE_KINDS:
        raise ValueError(f"kind must be one of {tuple(NOISE_KINDS)}, got {kind!r}")
    return NOISE_KINDS[name].make(labels, rate, num_classes=num_classes, dataset=dataset, cifar_n_path=cifar_n_path,
                                  cifar_n_label=cifar_n_label, random_state=random_state)


def transition_matrix(kind, rate, num_classes, dataset=None):
    """The expected transition matrix ``T[i, j] = P(noisy = j | clean = i)`` of noise ``kind`` at
    ``rate`` (the entry's ``transition`` of :data:`NOISE_KINDS`; Forward correction's "known" T).

    Parameters
    ----------
    kind : str
        A key of :data:`NOISE_KINDS` or an alias.
    rate : float in [0, 1]
    num_classes : int
        K (>= 2); the dataset's for the asymmetric kinds.
    dataset : str, optional
        Picks the class map of the asymmetric kinds.

    Returns
    -------
    ndarray of shape (K, K), float64
        Row-stochastic.

    Raises
    ------
    ValueError
        For a kind without a known matrix (the CIFAR-N human labels, the authors' CIFAR-100
        asymmetric noise): one line naming ``forward_matrix='estimated'``.

    Examples
    --------
    >>> transition_matrix("symmetric", 0.5, 2)
    array([[0.5, 0.5],
           [0.5, 0.5]])
    """
    name = _KIND_ALIASES.get(kind, kind) if isinstance(kind, str) else kind
    if name not in NOISE_KINDS:
        raise ValueError(f"kind must be one of {tuple(NOISE_KINDS)}, got {kind!r}")
    entry = NOISE_KINDS[name]
    if entry.transition is None:
        known = tuple(key for key, value in NOISE_KINDS.items() if value.transition is not None)
        raise ValueError(f"noise kind {name!r} has no known transition matrix (known for {known}); "
                         "use forward_matrix='estimated'")
    return entry.transition(rate, num_classes, dataset)
