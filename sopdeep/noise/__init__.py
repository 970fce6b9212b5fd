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
:mod:`~sopdeep.noise.labels`. :data:`NOISE_KINDS` is the one list of kinds (``TrainConfig.noise``);
:func:`make_noisy_labels` dispatches to them by name. Class counts and class maps come from
:data:`sopdeep.datasets.DATASETS` (this package imports it; it never imports this one), and
neither imports torch.
"""

from __future__ import annotations

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

__all__ = [
    "NOISE_KINDS",
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
]

#: Kinds accepted by :func:`make_noisy_labels` (aliases: "clean", "symmetric", "asymmetric",
#: "symmetric_authors", "asymmetric_authors").
NOISE_KINDS = ("none", "sym", "sym-all", "asym", "sym-authors", "asym-authors", "cifar10n", "cifar100n")
_KIND_ALIASES = {"clean": "none", "symmetric": "sym", "asymmetric": "asym", "symmetric_authors": "sym-authors",
                 "asymmetric_authors": "asym-authors"}


def make_noisy_labels(labels, kind, rate=0.0, *, num_classes=None, dataset=None, cifar_n_path=None,
                      cifar_n_label="worst", random_state=None):
    """Dispatch to a noise model by name (for configs and the command line).

    Parameters
    ----------
    labels : array-like of shape (N,)
        Clean labels.
    kind : {"none", "sym", "sym-all", "asym", "sym-authors", "asym-authors", "cifar10n", "cifar100n"}
        "sym": :func:`symmetric_noise`; "sym-all": its A.2 variant; "asym": :func:`asymmetric_noise`
        with ``dataset``'s class map; "sym-authors" / "asym-authors": :func:`symmetric_noise_authors`
        / :func:`asymmetric_noise_authors`; "cifar10n"/"cifar100n": :func:`load_cifar_n` from
        ``cifar_n_path`` with ``cifar_n_label`` (``labels`` must equal the file's clean labels).
    rate : float in [0, 1], default 0.0
        Noise level for the synthetic kinds (ignored for none / CIFAR-N).
    num_classes : int, optional
        K; must agree with ``dataset`` / the labels (:mod:`sopdeep.noise.labels`, "Which classes exist").
    dataset : str, optional
        The name of the dataset the labels belong to, as given to :func:`sopdeep.datasets.load_dataset`
        (``"cifar10"``, ``"cifar100"``, ``"fashion-mnist"``, ``"cifar10-jpeg"``, ``"npz"``,
        ``"imagefolder"``, aliases allowed) or ``"synthetic"``. The asymmetric kinds need one with a
        class map (:func:`asymmetric_datasets`) and refuse any other.
    random_state : None, int, SeedSequence or numpy Generator

    Returns
    -------
    NoisyLabels
        With ``realised_rate``, the fraction of labels actually changed.
    """
    kind = _KIND_ALIASES.get(kind, kind) if isinstance(kind, str) else kind
    if kind == "none":
        return no_noise(labels, num_classes=num_classes, dataset=dataset)
    if kind in ("sym", "sym-all"):
        return symmetric_noise(labels, rate, num_classes=num_classes, dataset=dataset,
                               include_true_class=kind == "sym-all", random_state=random_state)
    if kind == "sym-authors":
        return symmetric_noise_authors(labels, rate, num_classes=num_classes, dataset=dataset,
                                       random_state=random_state)
    if kind in ("asym", "asym-authors"):
        if dataset is None:
            raise ValueError(f"kind={kind!r} needs dataset= (one of {sorted(asymmetric_datasets())}) to pick the class map")
        if kind == "asym":
            return asymmetric_noise(labels, rate, dataset=dataset, num_classes=num_classes, random_state=random_state)
        resolve(labels, num_classes, dataset)  # refuse a num_classes that disagrees with the dataset
        return asymmetric_noise_authors(labels, rate, dataset=dataset, random_state=random_state)
    if kind in ("cifar10n", "cifar100n"):
        if cifar_n_path is None:
            raise ValueError(f"cifar_n_path is required for kind={kind!r}")
        label = "noisy" if kind == "cifar100n" else cifar_n_label
        if kind == "cifar10n" and label not in CIFAR10N_LABELS:
            raise ValueError(f"cifar_n_label must be one of {sorted(CIFAR10N_LABELS)}, got {label!r}")
        return load_cifar_n(cifar_n_path, label, clean_labels=labels)
    raise ValueError(f"kind must be one of {NOISE_KINDS}, got {kind!r}")
