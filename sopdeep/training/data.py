"""The data of a run: read and noised on the CPU (:func:`load_data`), then held on the device as
uint8 images (:class:`TrainingData`, :func:`training_data`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from sopdeep.config import TrainConfig
from sopdeep.datasets import dataset_spec, fixed_normalization, load_dataset, split_indices
from sopdeep.noise import NOISE_KINDS, make_noisy_labels

__all__ = ["TrainingData", "applied_noise", "load_data", "subset_indices", "training_data", "to_device"]

def load_data(config: TrainConfig):
    """(ArrayDataset, NoisyLabels) as the config says, cut to ``config.train_subset`` samples
    (the noise, ``config.applied_noise``, is drawn on the full set first)."""
    spec = dataset_spec(config.dataset)
    if spec.needs_root and not config.data_root:
        raise ValueError("data_root must be set (a local folder; nothing is downloaded)")
    # seed: the data drawn in memory ("synthetic") depend on the run's seed; files ignore it
    ds = load_dataset(config.dataset, config.data_root or None, cache_path=config.cache_path or None,
                      image_size=config.image_size if "image_size" in spec.takes else None, seed=config.seed)
    noisy = make_noisy_labels(
        ds.y_train, config.applied_noise, config.noise_rate, num_classes=ds.num_classes,
        dataset=config.dataset,
        cifar_n_path=config.cifar_n_path or None, cifar_n_label=config.cifar_n_label,
        random_state=config.noise_seed)
    if config.train_subset and config.train_subset < ds.n_train:
        idx, _ = subset_indices(config, ds.y_train)
        ds, noisy = ds.subset(train_indices=idx), noisy.subset(idx)
    return ds, noisy


def subset_indices(config: TrainConfig, clean_labels) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held_out): the indices of the full training set a run with ``config.train_subset``
    trains on, and the rest (a held-out split of the training set, with the same label noise).

    ``subset_split="first"``: the first ``train_subset``; ``"per_class"``: stratified by
    ``clean_labels`` (shape (N,)), seeded by ``config.seed``. Both sorted, disjoint, together
    ``range(N)``; ``train_subset=0`` keeps all.

    >>> kept, held = subset_indices(TrainConfig(train_subset=3, subset_split="first"), [0, 1, 0, 1, 0])
    >>> kept.tolist(), held.tolist()
    ([0, 1, 2], [3, 4])
    """
    labels = np.asarray(clean_labels)
    n = labels.shape[0]
    keep = config.train_subset if config.train_subset and config.train_subset < n else n
    if config.subset_split == "per_class":
        return split_indices(n, n - keep, labels=labels, random_state=config.seed)
    return np.arange(keep), np.arange(keep, n)


def applied_noise(config: TrainConfig, realised_rate: float) -> dict[str, Any]:
    """What a run reports of its label noise (``summary.json``): the noise actually applied.

    ``noise``: the kind (``config.applied_noise``, so ``"auto"`` resolved); ``noise_rate``: the
    rate asked of a synthetic kind, None for ``"none"`` and the human CIFAR-N labels;
    ``realised_noise_rate``: ``realised_rate`` (:attr:`TrainingData.realised_rate`), the fraction
    of training labels that differ from the clean ones, measured where those are known (synthetic
    noise, CIFAR-N; 0.0 for a benchmark without noise), None for the user's own labels trained
    on as given (nobody knows how many are wrong); CIFAR-N runs add ``noise_label_set``
    (``"worst"``, ..., ``"noisy"``).
    """
    kind = config.applied_noise
    report: dict[str, Any] = {
        "noise": kind,
        "noise_rate": config.noise_rate if NOISE_KINDS[kind].rated else None,
        "realised_noise_rate": float(realised_rate),
    }
    if kind == "none" and dataset_spec(config.dataset).user_data:
        report["realised_noise_rate"] = None  # the given labels are all there is: no clean labels
    if kind in ("cifar10n", "cifar100n"):
        report["noise_label_set"] = "noisy" if kind == "cifar100n" else config.cifar_n_label
    return report


@dataclass
class TrainingData:
    """The training and test sets on the device (uint8 images, int64 labels)."""

    x_train: torch.Tensor  # (N, C, H, W)
    y_train: torch.Tensor  # noisy labels (N,)
    clean_train: torch.Tensor
    is_noisy: np.ndarray | None  # None when the noise is "none" (no detection metrics)
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    mean: torch.Tensor  # (1, C, 1, 1), pixel units
    std: torch.Tensor
    realised_rate: float
    memory_format: torch.memory_format
    #: per-sample columns the dataset supplies for the run's ``samples.npz`` (image folders: ``path``)
    sample_info: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.x_train.shape[0]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of the images, as :attr:`sopdeep.datasets.ArrayDataset.image_shape`."""
        _, c, h, w = self.x_train.shape
        return int(h), int(w), int(c)

    def network_inputs(self) -> dict[str, Any]:
        """What the network is built for and fed, as plain numbers (a checkpoint's ``network``):
        ``num_classes``, ``in_channels``, ``image_size`` [H, W] and the ``mean`` / ``std`` (pixel
        units, per channel) of :meth:`normalize`."""
        h, w, c = self.image_shape
        return {"num_classes": int(self.num_classes), "in_channels": c, "image_size": [h, w],
                "mean": self.mean.flatten().cpu().tolist(), "std": self.std.flatten().cpu().tolist()}

    def normalize(self, x_uint8: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W) to standardised float (per channel, A.4)."""
        return ((x_uint8.float() - self.mean) / self.std).contiguous(memory_format=self.memory_format)


def training_data(config: TrainConfig, device="cpu") -> TrainingData:
    """The training and test sets of ``config`` exactly as :func:`train` holds them.

    Same subset and label noise as the run (:func:`load_data`), uint8 images (N, C, H, W) on
    ``device``; ``.normalize(x)`` standardises a batch as the network sees it, ``.y_train`` are
    the noisy labels, ``.clean_train`` the clean ones, ``.is_noisy`` the noise mask (None without
    noise). Example: ``x = training_data(config).normalize(data.x_train)``.
    """
    return to_device(*load_data(config), torch.device(device), config.normalization, config.dataset)


def to_device(ds, noisy, device: torch.device, normalization: str = "dataset", dataset: str = "") -> TrainingData:
    """``ds`` (ArrayDataset) with the labels ``noisy`` (NoisyLabels) as a :class:`TrainingData` on ``device``;
    standardised with the training set's channel statistics, or the dataset's fixed constants
    (:func:`sopdeep.datasets.fixed_normalization`) when ``normalization="fixed"``."""
    def images(x):
        return torch.from_numpy(np.array(np.asarray(x).transpose(0, 3, 1, 2), order="C")).to(device)

    def labels(y):
        return torch.from_numpy(np.array(y, dtype=np.int64)).to(device)

    mean01, std01 = ds.channel_stats()  # a constant channel is only centred
    if normalization == "fixed":
        mean01, std01 = (np.asarray(v) for v in fixed_normalization(dataset))
    return TrainingData(
        x_train=images(ds.x_train), y_train=labels(noisy.noisy_labels), clean_train=labels(noisy.clean_labels),
        is_noisy=np.asarray(noisy.is_noisy) if noisy.kind != "none" else None,
        x_test=images(ds.x_test), y_test=labels(ds.y_test), num_classes=ds.num_classes,
        mean=torch.tensor(mean01 * 255.0, dtype=torch.float32).view(1, -1, 1, 1).to(device),
        std=torch.tensor(np.maximum(std01 * 255.0, 1.0), dtype=torch.float32).view(1, -1, 1, 1).to(device),
        realised_rate=float(noisy.realised_rate),
        sample_info={"path": np.asarray(ds.train_paths, dtype=str)} if ds.train_paths else {},
        # channels_last on both devices: on this project's AVX-512 CPU it adds 1.4-1.5x to bf16's 2.5x
        # (benchmarks/bench_throughput.py: cnn 535 -> 1333 -> 2036 img/s, preact18 50 -> 128 -> 178)
        memory_format=torch.channels_last if device.type in ("cuda", "cpu") else torch.contiguous_format)
