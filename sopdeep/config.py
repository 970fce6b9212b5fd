"""TrainConfig: every knob of a training run, type-checked, saved with every run and checkpoint.

Overrides come from dicts (:meth:`TrainConfig.replace`), ``key=value`` strings
(:meth:`TrainConfig.from_overrides`, the CLI's ``--set``) and named presets (:data:`PRESETS`).
Unknown keys and values of the wrong type or outside their range raise ``ValueError`` naming
the field.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TrainConfig", "PRESETS", "register_preset"]

METHODS = ("ce", "sop")  # extended by sopdeep.methods.register_method
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
    """Configuration of one training run.

    Data
        dataset : a name of ``sopdeep.data.load_dataset`` (``"cifar10"``, ``"cifar100"``,
        ``"fashion-mnist"``, ``"cifar10-jpeg"`` with ``cache_path``, ``"npz"``) or
        ``"synthetic"`` (a small seeded in-memory problem for tests, ``sopdeep.synthetic``).
        data_root : folder (or ``.npz`` file) read, never downloaded. train_subset : keep only
        the first n training samples (0 = all; noise is drawn on the full set first).
        noise, noise_rate, noise_seed, cifar_n_path, cifar_n_label : label noise
        (``sopdeep.noise.make_noisy_labels``); ``"none"`` keeps the labels. augment :
        ``"auto"`` = random crop (padding 4) + flip for 32x32 colour images, none otherwise.
    Model and optimiser of θ
        arch, width, depth (``sopdeep.models.build_model``; 0 = the architecture's default),
        epochs, batch_size, lr, momentum, weight_decay,
        schedule (``"multistep"`` with milestones/gamma, ``"cosine"`` to 0 at the last step, or
        ``"constant"``), nesterov.
    Method
        method : ``"ce"`` or ``"sop"`` (more via ``sopdeep.methods``). For SOP: alpha_u,
        alpha_v (u and v learning rates are α·τ_t with τ_t the current θ learning rate, Alg. 1),
        init_std (1e-8), u_shape (default ``"scalar"``, equivalent to the paper's vector for
        one-hot labels, see ``sopdeep.sop_loss``), v_shape (``"vector"``), update
        (``"batch"``: u, v step after every mini-batch, like the authors' code; ``"epoch"``:
        Algorithm 1 as written, a u, v pass after each θ epoch), eps (φ's floor),
        issue_threshold (label issue when the noise score u²_{i,y_i} exceeds it).
    Run
        seed (model init, data order, augmentation, u/v init), device, amp (``"auto"``: bf16 on
        CUDA when supported, else fp16 + GradScaler; fp32 on CPU), compile, out, eval_batch_size,
        progress (tqdm bar), checkpoint (write one every epoch).
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
    gamma: float = 0.1
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

    # -- validation ---------------------------------------------------------------------------
    def _validate(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            setattr(self, f.name, _coerce(f.name, f.type, value))
        for name, choices in _CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {getattr(self, name)!r}")
        from sopdeep.data import DATASET_NAMES
        from sopdeep.methods import available_methods
        import sopdeep.sop_plus  # noqa: F401  (registers "sop+")
        from sopdeep.models import ARCHITECTURES

        datasets = tuple(DATASET_NAMES) + ("synthetic",)
        if self.dataset not in datasets:
            raise ValueError(f"dataset must be one of {datasets}, got {self.dataset!r}")
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch must be one of {tuple(ARCHITECTURES)}, got {self.arch!r}")

        if self.method not in available_methods():
            raise ValueError(f"method must be one of {available_methods()}, got {self.method!r}")
        positive = ("epochs", "batch_size", "eval_batch_size")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "eps", "gamma"):
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
        if self.train_subset < 0:
            raise ValueError(f"train_subset must be >= 0, got {self.train_subset}")
        if any(m < 1 for m in self.milestones) or list(self.milestones) != sorted(self.milestones):
            raise ValueError(f"milestones must be increasing epochs >= 1, got {self.milestones}")

    # -- construction -------------------------------------------------------------------------
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
        return cls().replace(**d)

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


#: Named override sets, applied before user overrides. ``sop-train --preset NAME``.
PRESETS: dict[str, dict[str, Any]] = {
    # Table A.1, CIFAR-10 column (SOP, ResNet34, 120 epochs, lr 0.02 decayed at 40 and 80).
    "cifar10-sym": dict(dataset="cifar10", arch="resnet34", epochs=120, batch_size=128, lr=0.02,
                        schedule="multistep", milestones=[40, 80], gamma=0.1, weight_decay=5e-4,
                        method="sop", alpha_u=10.0, alpha_v=10.0, noise="sym"),
    "cifar10-asym": dict(dataset="cifar10", arch="resnet34", epochs=120, batch_size=128, lr=0.02,
                         schedule="multistep", milestones=[40, 80], gamma=0.1, weight_decay=5e-4,
                         method="sop", alpha_u=10.0, alpha_v=100.0, noise="asym"),
}


def register_preset(name: str, overrides: dict[str, Any]) -> None:
    """Add a named preset; its keys are validated now."""
    TrainConfig().replace(**overrides)
    PRESETS[name] = dict(overrides)

# Every Table A.1 setting and Tables 1/2/4 cell (sopdeep.presets; validated in its tests)
from sopdeep.presets import PRESETS as _TABLE_PRESETS  # noqa: E402

PRESETS.update({name: dict(overrides) for name, overrides in _TABLE_PRESETS.items()})
