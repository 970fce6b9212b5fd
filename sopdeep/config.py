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


__all__ = ["TrainConfig"]

# keys renamed since runs were first saved: old name -> new name (read by from_dict)
_RENAMED = {"gamma": "lr_decay"}

_CHOICES: dict[str, tuple[str, ...]] = {
    "noise": ("none", "sym", "sym-all", "asym", "cifar10n", "cifar100n"),
    "cifar_n_label": ("aggregate", "random1", "random2", "random3", "worst"),
    "schedule": ("multistep", "cosine", "constant"),
    "u_shape": ("scalar", "vector"),
    "v_shape": ("scalar", "vector"),
    "update": ("batch", "epoch"),
    "device": ("auto", "cpu", "cuda"),
    "amp": ("auto", "bf16", "fp16", "off"),
    "augment": ("auto", "none", "flip", "crop_flip"),
    "strong_policy": ("autoaugment", "randaugment"),  # SOP+ (sopdeep.sop_plus)
    "strong_backend": ("kornia", "torchvision"),
}


@dataclass
class TrainConfig:
    """Configuration of one training run (defaults: SOP, PreActResNet18, CIFAR-10, 40% symmetric noise).

    Data
        dataset : a name of ``sopdeep.data.load_dataset`` or ``"synthetic"`` (``sopdeep.synthetic``);
        data_root : folder or ``.npz`` file, read, never downloaded; cache_path : decoded-JPEG cache;
        train_subset : keep the first n training samples (0 = all; noise is drawn on the full set);
        noise, noise_rate, noise_seed, cifar_n_path, cifar_n_label : ``sopdeep.noise.make_noisy_labels``;
        augment : ``"auto"`` = crop (padding 4) + flip for 32x32 colour images, none otherwise.
    Network and optimiser of θ
        arch, width, depth (``sopdeep.models.build_model``; 0 = the architecture's default);
        epochs, batch_size, lr, momentum, nesterov, weight_decay;
        schedule : ``"multistep"`` (lr · lr_decay^(number of milestones passed)), ``"cosine"``
        (to 0 at the last step) or ``"constant"``; milestones : epochs; lr_decay : factor per milestone.
    Method
        method : ``"ce"``, ``"sop"`` or ``"sop+"`` (``sopdeep.methods``); alpha_u, alpha_v : u and v
        step sizes are α·τ_t, τ_t the θ learning rate (Algorithm 1); init_std : std of u, v at
        start; u_shape, v_shape : ``"scalar"`` (N, 1) or ``"vector"`` (N, K); update : ``"batch"``
        (u, v step after every mini-batch) or ``"epoch"`` (one u, v pass after each θ epoch);
        eps : floor of φ; issue_threshold : a label issue when the noise score exceeds it;
        lambda_c, lambda_b, strong_policy, strong_backend, cutout : SOP+ (``sopdeep.sop_plus``).
    Run
        seed (model init, data order, augmentation, u, v); device; amp (``"auto"``: bf16 on CUDA
        when supported, else fp16 with GradScaler; fp32 on CPU); compile; out (run folder);
        eval_batch_size; progress (tqdm bar); checkpoint (one every epoch).
    """

    # data
    dataset: str = "cifar10"
    data_root: str = ""
    cache_path: str = ""
    train_subset: int = 0
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
    # run
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    compile: bool = False
    out: str = "runs/default"
    eval_batch_size: int = 1024
    progress: bool = True
    checkpoint: bool = True
    # SOP+ (sopdeep.sop_plus, appendix A.3; Table A.1: lambda_c 0.9, lambda_b 0.1)
    lambda_c: float = 0.9
    lambda_b: float = 0.1
    strong_policy: str = "autoaugment"
    strong_backend: str = "kornia"
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
        for name in ("weight_decay", "alpha_u", "alpha_v", "init_std", "momentum", "lambda_c", "lambda_b"):
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
        if any(m < 1 for m in self.milestones) or list(self.milestones) != sorted(self.milestones):
            raise ValueError(f"milestones must be increasing epochs >= 1, got {self.milestones}")

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
