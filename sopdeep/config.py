"""TrainConfig: every setting of a training run, type- and range-checked, saved with every run.

Overrides come from dicts (:meth:`TrainConfig.replace`) and ``key=value`` strings
(:meth:`TrainConfig.from_overrides`, the CLI's ``--set``); named presets live in
:mod:`sopdeep.presets`. An unknown key, a value of the wrong type or out of range raises a
``ValueError`` naming the field. Names of datasets, architectures and methods are checked against
their registries when a run starts (:func:`sopdeep.trainer.train`), so building a config imports
no data, model or method code.

>>> TrainConfig(epochs=3, method="ce").epochs
3
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any


__all__ = ["TrainConfig", "FIXED_NORMALIZATION", "fixed_normalization"]

# keys renamed since runs were first saved: old name -> new name (read by from_dict)
_RENAMED = {"gamma": "lr_decay"}

_CHOICES: dict[str, tuple[str, ...]] = {
    "noise": ("none", "sym", "sym-all", "asym", "sym-authors", "asym-authors", "cifar10n", "cifar100n"),
    "cifar_n_label": ("aggregate", "random1", "random2", "random3", "worst"),
    "schedule": ("multistep", "cosine", "cosine_epoch", "constant"),
    "u_shape": ("scalar", "vector"),
    "v_shape": ("scalar", "vector"),
    "update": ("batch", "epoch"),
    "device": ("auto", "cpu", "cuda"),
    "amp": ("auto", "bf16", "fp16", "off"),
    "augment": ("auto", "none", "flip", "crop_flip"),
    "strong_policy": ("autoaugment", "randaugment"),  # SOP+ (sopdeep.sop_plus)
    "strong_backend": ("torchvision", "kornia"),
    "recipe": ("paper", "authors"),  # sopdeep.sop_loss.RECIPES
    "subset_split": ("first", "per_class"),
    "normalization": ("dataset", "fixed"),
}

# fixed normalisation constants of the authors' code (mean, std in [0, 1] units) per dataset
FIXED_NORMALIZATION = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar10-jpeg": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
}



def fixed_normalization(dataset: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) in [0, 1] units of ``normalization="fixed"`` for ``dataset``.

    >>> fixed_normalization("cifar100")[0]
    (0.5071, 0.4867, 0.4408)
    """
    if dataset not in FIXED_NORMALIZATION:
        raise ValueError(f"normalization='fixed' has constants for datasets {sorted(FIXED_NORMALIZATION)} only, "
                         f"got dataset={dataset!r}; use normalization='dataset'")
    return FIXED_NORMALIZATION[dataset]


# each recipe's u, v step-size schedule, for validation without importing torch; a test checks it
# against sopdeep.sop_loss.RECIPES, the one source of every switch
_RECIPE_UV_SCHEDULE = {"paper": "network", "authors": "constant"}


@dataclass
class TrainConfig:
    """Configuration of one training run (defaults: SOP, PreActResNet18, CIFAR-10, 40% symmetric noise).

    Data
        dataset : a name of ``sopdeep.data.load_dataset`` or ``"synthetic"`` (``sopdeep.synthetic``);
        data_root : folder or ``.npz`` file, read, never downloaded; cache_path : decoded-JPEG cache;
        train_subset : keep n training samples (0 = all; noise is drawn on the full set);
        subset_split : ``"first"`` keeps the first n, ``"per_class"`` n/K random ones per clean class
        (the ELR-style split of the "45,000 training examples" columns, seeded by ``seed``);
        noise, noise_rate, noise_seed, cifar_n_path, cifar_n_label : ``sopdeep.noise.make_noisy_labels``;
        augment : ``"auto"`` = crop (padding 4) + flip for 32x32 colour images, none otherwise.
    Network and optimiser of θ
        arch, width, depth (``sopdeep.models.build_model``; 0 = the architecture's default);
        epochs, batch_size, lr, momentum, nesterov, weight_decay;
        schedule : ``"multistep"`` (lr · lr_decay^(number of milestones passed)), ``"cosine"``
        (to 0 at the last step), ``"cosine_epoch"`` (stepped per epoch, to ``lr_min`` after the last
        epoch: the authors' ``CosineAnnealingLR(T_max=epochs, eta_min=lr_min)``) or ``"constant"``;
        milestones : epochs; lr_decay : factor per milestone; lr_min : floor of ``"cosine_epoch"``.
    Method
        method : ``"ce"``, ``"sop"`` or ``"sop+"`` (``sopdeep.methods``); alpha_u, alpha_v : u and v
        step sizes are α·τ_t, τ_t the θ learning rate (Algorithm 1); init_std : std of u, v at
        start; u_shape, v_shape : ``"scalar"`` (N, 1) or ``"vector"`` (N, K); update : ``"batch"``
        (u, v step after every mini-batch) or ``"epoch"`` (one u, v pass after each θ epoch);
        eps : floor of φ; issue_threshold : a label issue when the noise score exceeds it;
        recipe : ``"paper"`` (Algorithm 1) or ``"authors"`` (the authors' released code), selecting
        all of u_learns_mse, clamp_corrections, clamp_phi, project_uv, uv_lr_schedule
        (``sopdeep.sop_loss.RECIPES``); each of them, when not None, overrides the recipe alone;
        uv_lr_schedule ``"network"`` (α·τ_t per sample) or ``"constant"`` (lr_u / B, lr_v / B per
        sample, never scheduled; lr_u, lr_v > 0 required); :meth:`TrainConfig.switches` resolves them;
        lambda_c, lambda_b, strong_policy, strong_backend, cutout : SOP+ (``sopdeep.sop_plus``).
    Run
        normalization : ``"dataset"`` (the training set's channel statistics) or ``"fixed"`` (the
        authors' constants, :data:`FIXED_NORMALIZATION`);
        seed (model init, data order, augmentation, u, v); device; amp (``"auto"``: bf16 on CUDA
        when supported, else fp16 with GradScaler; fp32 on CPU); compile; out (run folder);
        eval_batch_size; progress (tqdm bar); checkpoint (one every epoch).
    """

    # data
    dataset: str = "cifar10"
    data_root: str = ""
    cache_path: str = ""
    train_subset: int = 0
    subset_split: str = "first"
    noise: str = "sym"
    noise_rate: float = 0.4
    noise_seed: int = 0
    cifar_n_path: str = ""
    cifar_n_label: str = "worst"
    augment: str = "auto"
    # model / optimiser
    arch: str = "preact18"
    width: int = 0
    depth: int = 0
    epochs: int = 120
    batch_size: int = 128
    lr: float = 0.02
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "multistep"
    milestones: list[int] = field(default_factory=lambda: [40, 80])
    lr_decay: float = 0.1
    lr_min: float = 0.0
    # method
    method: str = "sop"
    alpha_u: float = 10.0
    alpha_v: float = 10.0
    init_std: float = 1e-8
    u_shape: str = "scalar"
    v_shape: str = "vector"
    update: str = "batch"
    eps: float = 1e-4
    issue_threshold: float = 0.5
    recipe: str = "paper"
    u_learns_mse: bool | None = None
    clamp_corrections: bool | None = None
    clamp_phi: bool | None = None
    project_uv: bool | None = None
    uv_lr_schedule: str | None = None
    lr_u: float = 0.0
    lr_v: float = 0.0
    # run
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    compile: bool = False
    out: str = "runs/default"
    eval_batch_size: int = 1024
    normalization: str = "dataset"
    progress: bool = True
    checkpoint: bool = True
    # SOP+ (sopdeep.sop_plus, appendix A.3; Table A.1: lambda_c 0.9, lambda_b 0.1)
    lambda_c: float = 0.9
    lambda_b: float = 0.1
    strong_policy: str = "autoaugment"
    strong_backend: str = "torchvision"
    cutout: int = 16

    def __post_init__(self) -> None:
        self._validate()

    def _validate(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            setattr(self, f.name, _coerce(f.name, f.type, value))
        for name, choices in _CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {getattr(self, name)!r}")
        positive = ("epochs", "batch_size", "eval_batch_size")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "eps", "lr_decay"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v}")
        for name in ("weight_decay", "alpha_u", "alpha_v", "init_std", "momentum", "lambda_c", "lambda_b", "lr_min", "lr_u",
                     "lr_v"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v}")
        if self.momentum >= 1:
            raise ValueError(f"momentum must be < 1, got {self.momentum}")
        if not 0 <= self.noise_rate <= 1:
            raise ValueError(f"noise_rate must be in [0, 1], got {self.noise_rate}")
        if not 0 <= self.issue_threshold <= 1:
            raise ValueError(f"issue_threshold must be in [0, 1], got {self.issue_threshold}")
        if self.cutout < 0:
            raise ValueError(f"cutout must be >= 0, got {self.cutout}")
        for name in ("train_subset", "width", "depth"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.normalization == "fixed":
            fixed_normalization(self.dataset)
        if self.lr_min > self.lr:
            raise ValueError(f"lr_min must be <= lr, got lr_min={self.lr_min}, lr={self.lr}")
        if self.uv_lr_schedule not in (None, "network", "constant"):
            raise ValueError(f"uv_lr_schedule must be None, 'network' or 'constant', got {self.uv_lr_schedule!r}")
        if (self.uv_lr_schedule or _RECIPE_UV_SCHEDULE[self.recipe]) == "constant":
            if self.method != "ce" and not (self.lr_u > 0 and self.lr_v > 0):
                raise ValueError(f"lr_u and lr_v must be > 0 when uv_lr_schedule is 'constant' "
                                 f"(recipe={self.recipe!r}), got lr_u={self.lr_u}, lr_v={self.lr_v}")
            if self.update == "epoch":
                raise ValueError("uv_lr_schedule='constant' is a per-batch step (lr / B); use update='batch'")
        if any(m < 1 for m in self.milestones) or list(self.milestones) != sorted(self.milestones):
            raise ValueError(f"milestones must be increasing epochs >= 1, got {self.milestones}")

    def switches(self) -> dict[str, Any]:
        """The SOP switches in force: ``recipe``'s values with each non-None single switch applied.

        >>> TrainConfig(recipe="authors", lr_u=1.0, lr_v=10.0, project_uv=True).switches()["project"]
        True
        """
        from sopdeep.sop_loss import recipe_switches  # torch-free config import otherwise

        return recipe_switches(self.recipe, u_learns_mse=self.u_learns_mse, clamp_corrections=self.clamp_corrections,
                               clamp_phi=self.clamp_phi, project=self.project_uv, uv_lr_schedule=self.uv_lr_schedule)

    def replace(self, **overrides: Any) -> "TrainConfig":
        """A copy with ``overrides`` applied; unknown keys raise ``ValueError``."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}; known keys: {sorted(known)}")
        return dataclasses.replace(self, **overrides)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Build from a dict (e.g. a saved ``config.json``); unknown keys raise ``ValueError``."""
        return cls().replace(**{_RENAMED.get(key, key): value for key, value in d.items()})

    @classmethod
    def from_overrides(cls, pairs: list[str], base: "TrainConfig | None" = None) -> "TrainConfig":
        """Apply ``key=value`` strings; values are parsed as JSON when possible, else as strings.

        >>> TrainConfig.from_overrides(["epochs=3", "method=ce"]).epochs
        3
        """
        base = base or cls()
        overrides: dict[str, Any] = {}
        for pair in pairs:
            if "=" not in pair:
                raise ValueError(f"override must look like key=value, got {pair!r}")
            key, raw = pair.split("=", 1)
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                value = raw
            overrides[key.strip()] = value
        return base.replace(**overrides)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def _coerce(name: str, type_name: Any, value: Any) -> Any:
    """Check ``value`` against the field's annotation (a string under ``from __future__``)."""
    t = type_name if isinstance(type_name, str) else getattr(type_name, "__name__", str(type_name))
    bad = ValueError(f"{name} must be of type {t}, got {value!r} ({type(value).__name__})")
    if t.endswith(" | None"):
        return None if value is None else _coerce(name, t[: -len(" | None")], value)
    if t == "bool":
        if not isinstance(value, bool):
            raise bad
        return value
    if t == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if t == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if t == "str":
        if not isinstance(value, str):
            raise bad
        return value
    if t == "list[int]":
        if not isinstance(value, (list, tuple)) or any(
                isinstance(x, bool) or not isinstance(x, int) for x in value):
            raise bad
        return list(value)
    raise TypeError(f"no coercion rule for field {name} of type {t}")  # pragma: no cover
