"""TrainConfig: every setting of a training run, declared once, type- and range-checked, saved with
every run.

The settings common to all methods are the fields below, each declared with
:func:`sopdeep.options.option` (type, default, allowed values or range, one line of help); a
method's own settings are declared by the method (``Options`` of each class in
:data:`sopdeep.methods.METHODS`) and held, resolved, in ``config.options`` (``config.epochs``,
``config.options.alpha_u``); they are given flat to the constructor, and a config accepts exactly
the chosen method's options:
``TrainConfig(method="ce", alpha_u=5)`` is refused, naming ``alpha_u`` and the methods it belongs
to. Overrides come from dicts (:meth:`TrainConfig.replace`) and ``key=value`` strings
(:meth:`TrainConfig.from_overrides`, the CLI's ``--set``); named presets live in
:mod:`sopdeep.presets`.

>>> TrainConfig(epochs=3, method="ce").epochs
3
>>> TrainConfig(method="gce").options.gce_q
0.7
>>> TrainConfig(recipe="authors", lr_u=1.0, lr_v=10.0).options.clamp_phi  # None resolved: the recipe's
True
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass, field
from typing import Any

from sopdeep.methods import METHODS, available_methods, method_class, option_fields
from sopdeep.options import check_options, option

__all__ = ["TrainConfig", "common_fields", "methods_with_option"]

# keys renamed since runs were first saved: old name -> new name (read by from_dict)
_RENAMED = {"gamma": "lr_decay"}

#: Largest accepted seed: the trainer derives per-epoch and per-stream seeds from it (seed * 1e6 + ...),
#: which must stay below 2**64.
MAX_SEED = 2**32 - 1


def _dataset_names() -> tuple[str, ...]:
    from sopdeep.datasets import DATASETS

    return tuple(DATASETS)


def _noise_kinds() -> tuple[str, ...]:
    from sopdeep.noise import NOISE_KINDS

    return ("auto", *NOISE_KINDS)


def _architectures() -> tuple[str, ...]:
    from sopdeep.models import ARCHITECTURES

    return tuple(ARCHITECTURES)


@dataclass(init=False)
class TrainConfig:
    """Configuration of one training run (defaults: SOP, PreActResNet18, CIFAR-10, 40% symmetric noise).

    ``noise="auto"`` (the default) is 40% symmetric noise (``noise_rate``) on the benchmarks and
    no synthetic noise on the user's own data (npz, imagefolder: ``DatasetSpec.user_data``), whose
    labels are trained on as given; :attr:`applied_noise` is the kind a run applies.

    Construct with keyword arguments only: the common fields below and the options of ``method``
    (``sop-train --help`` lists both; :func:`sopdeep.methods.option_fields` gives a method's).
    ``options`` is the method's options object; pass it or flat keywords, not both.
    """

    # data
    dataset: str = option("cifar10", "dataset of sopdeep.datasets.DATASETS", choices=_dataset_names)
    data_root: str = option("", "folder or .npz file the data are read from (never downloaded)")
    cache_path: str = option("", "decoded cache of an export (cifar10-jpeg, cifar100-png)")
    image_size: int = option(32, "imagefolder: side in pixels the images are resized to (other datasets: "
                                 "their files decide, keep 32)", low=1)
    train_subset: int = option(0, "keep n training samples (0 = all; the noise is drawn on the full set)", low=0)
    subset_split: str = option("first", "first: the first n; per_class: n/K random per clean class (seeded)",
                               choices=("first", "per_class"))
    noise: str = option("auto", "label noise (sopdeep.noise.make_noisy_labels); auto: sym on the benchmarks, "
                                "none on the user's own data (npz, imagefolder)", choices=_noise_kinds)
    noise_rate: float = option(0.4, "noise rate of the synthetic kinds", low=0.0, high=1.0)
    noise_seed: int = option(0, "seed of the label noise", low=0, high=MAX_SEED)
    cifar_n_path: str = option("", "CIFAR-N label file (noise cifar10n / cifar100n)")
    cifar_n_label: str = option("worst", "CIFAR-10N label set", choices=("aggregate", "random1", "random2",
                                                                          "random3", "worst"))
    augment: str = option("auto", "weak view; auto: the dataset's default", choices=("auto", "none", "flip",
                                                                                     "crop_flip"))
    crop_pad: int = option(4, "padding of the random crop of the crop_flip view, pixels per side", low=0)
    crop_padding: str = option("zeros", "padding of the random crop: zeros (A.4) or reflect (airbench)",
                               choices=("zeros", "reflect"))
    flip: str = option("random", "horizontal flip of the weak view: random (a coin per sample and epoch) or "
                                 "alternate (airbench: epoch 1's coins, every image mirrored again on each "
                                 "even epoch)", choices=("random", "alternate"))
    normalization: str = option("dataset", "dataset: the training set's channel statistics; fixed: the authors' "
                                           "constants", choices=("dataset", "fixed"))
    # network and optimiser of θ
    arch: str = option("preact18", "network (sopdeep.models.build_model)", choices=_architectures)
    width: int = option(0, "network width (0 = the architecture's default)", low=0)
    depth: int = option(0, "network depth (0 = the architecture's default)", low=0)
    epochs: int = option(120, "training epochs", low=1)
    batch_size: int = option(128, "mini-batch size", low=1)
    lr: float = option(0.02, "learning rate tau of theta (SGD)", low=0.0, low_open=True)
    momentum: float = option(0.9, "SGD momentum of theta", low=0.0, high=1.0, high_open=True)
    nesterov: bool = option(False, "Nesterov momentum")
    weight_decay: float = option(5e-4, "weight decay of theta", low=0.0)
    schedule: str = option("multistep", "multistep (lr * lr_decay per milestone), cosine (per step, to 0), "
                                        "cosine_epoch (per epoch, to lr_min), triangle (per step: lr_start "
                                        "-> lr over warmup_fraction, then -> lr_min) or constant",
                           choices=("multistep", "cosine", "cosine_epoch", "triangle", "constant"))
    milestones: list[int] = option(default_factory=lambda: [40, 80], doc="epochs of the multistep decays", low=1)
    lr_decay: float = option(0.1, "factor per milestone (formerly gamma)", low=0.0, low_open=True)
    lr_min: float = option(0.0, "floor of cosine_epoch; last lr of triangle", low=0.0)
    lr_start: float = option(0.0, "first lr of triangle", low=0.0)
    warmup_fraction: float = option(0.23, "triangle: fraction of the steps spent rising to lr", low=0.0,
                                    high=1.0, high_open=True)
    lookahead: int = option(0, "every k steps move a slow copy of theta and the BatchNorm statistics toward "
                               "the network by 1 - 0.95^k (t/T)^3 and restart the network from it; the run ends "
                               "on the slow copy (airbench: 5); 0: off", low=0)
    stem_bias_epochs: int = option(0, "arch fast: epochs the whitening stem's bias trains before it is frozen "
                                      "(airbench: 3); 0: it trains throughout", low=0)
    bias_lr_scale: float = option(1.0, "lr factor of the BatchNorm parameters (airbench: 64); their weight "
                                       "decay per step stays that of the other weights", low=0.0, low_open=True)
    # method (its own options: config.options)
    method: str = option("sop", "training method (sopdeep.methods.METHODS)", choices=available_methods)
    issue_threshold: float = option(0.5, "a label is flagged when its noise score exceeds this (a monitor)",
                                    low=0.0, high=1.0)
    # run
    seed: int = option(0, "seed of initialisation, data order, augmentation and per-sample variables", low=0,
                       high=MAX_SEED)
    device: str = option("auto", "auto: CUDA when available", choices=("auto", "cpu", "cuda"))
    amp: str = option("auto", "mixed precision; auto: bf16 on CUDA when supported, else fp16; on a CPU bf16 "
                      "when it has native bf16 (AVX-512 + oneDNN bf16), else fp32; off: fp32 everywhere",
                      choices=("auto", "bf16", "fp16", "off"))
    threads: int = option(0, "CPU threads of torch (0 = all cores); the run records the number used", low=0)
    compile: bool = option(False, "torch.compile the network")
    tf32: str = option("auto", "TF32 matmuls and convolutions on CUDA (Ampere and later); auto: on with mixed "
                               "precision, off under amp=off (fp32 is then fp32)", choices=("auto", "on", "off"))
    sync_bn: bool = option(False, "DDP on CUDA: BatchNorm statistics over all ranks' shards (SyncBatchNorm) "
                                  "instead of each rank's own")
    out: str = option("runs/default", "run folder")
    eval_batch_size: int = option(1024, "batch size of evaluation", low=1)
    eval_every: int = option(1, "test accuracy every k epochs and at the last (1: every epoch); the other "
                                "epochs' test_acc is empty (a run on a small training subset spends most of "
                                "its time on the test set otherwise)", low=1)
    tta: str = option("none", "test-time augmentation of every evaluation (test accuracy, final predictions): "
                              "none; flip (the mean of the logits of x and of its mirror image); flip_translate "
                              "(airbench: half flip, half the flip of x shifted one pixel up-left and down-right)",
                      choices=("none", "flip", "flip_translate"))
    tta_on: str = option("every_evaluation", "where tta applies: every_evaluation, or last_test (airbench: the "
                                            "last epoch's test accuracy only; the rest un-augmented, 6x cheaper "
                                            "with flip_translate)", choices=("every_evaluation", "last_test"))
    progress: bool = option(True, "progress bar")
    checkpoint: bool = option(True, "write a checkpoint every epoch")
    tensorboard: bool = option(False, "also log each epoch's scalars for TensorBoard into <out>/tensorboard/ "
                                      "(the tensorboard extra; sopdeep.curves)")
    options: Any = field(default=None)

    def __init__(self, **kwargs: Any) -> None:
        method = kwargs.get("method", "sop")
        if not isinstance(method, str):
            raise ValueError(f"method must be of type str, got {method!r} ({type(method).__name__})")
        options_cls = method_class(method).Options  # ValueError naming the registered methods
        common = {f.name: f for f in common_fields()}
        given_options = kwargs.pop("options", None)
        own = {f.name for f in dataclasses.fields(options_cls)}
        method_kwargs = {key: kwargs.pop(key) for key in list(kwargs) if key in own and key not in common}
        _refuse_unknown(kwargs, common, method)
        for name, f in common.items():
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
            setattr(self, name, kwargs.get(name, default))
        check_options(self)  # method first: its name decides the options class
        if given_options is not None:
            if not isinstance(given_options, options_cls):
                raise ValueError(f"options must be a {options_cls.__name__} for method {method!r}, "
                                 f"got {type(given_options).__name__}")
            options = dataclasses.replace(given_options, **method_kwargs)
        else:
            options = options_cls(**method_kwargs)
        # options that follow a common setting (SOP+'s strong_stats: the dataset) resolved once, here
        self.options = options.resolve(self) if hasattr(options, "resolve") else options
        self._check_combinations()

    @property
    def applied_noise(self) -> str:
        """The noise kind the run applies: ``noise``, with ``"auto"`` resolved for the dataset
        (``"none"`` on the user's own data, ``"sym"`` otherwise).

        >>> TrainConfig(dataset="npz").applied_noise, TrainConfig(dataset="cifar10").applied_noise
        ('none', 'sym')
        """
        if self.noise != "auto":
            return self.noise
        from sopdeep.datasets import dataset_spec

        return "none" if dataset_spec(self.dataset).user_data else "sym"

    def _check_combinations(self) -> None:
        from sopdeep.datasets import dataset_spec

        if self.normalization == "fixed":
            from sopdeep.datasets import fixed_normalization

            fixed_normalization(self.dataset)
        spec = dataset_spec(self.dataset)
        default = {f.name: f.default for f in common_fields()}
        if self.image_size != default["image_size"] and "image_size" not in spec.takes:
            from sopdeep.datasets import DATASETS

            users = " or ".join(repr(name) for name, s in DATASETS.items() if "image_size" in s.takes)
            raise ValueError(f"image_size applies to dataset {users} only (the files of {self.dataset!r} "
                             f"decide the size), got image_size={self.image_size}")
        if self.noise == "auto" and spec.user_data and self.noise_rate != default["noise_rate"]:
            # the user asked for a rate: adding no noise without a word would hide that
            raise ValueError(f"noise_rate={self.noise_rate} has no effect: noise='auto' adds no synthetic noise "
                             f"to the user's dataset {self.dataset!r}; set noise='sym' (or another kind) to add it")
        if self.stem_bias_epochs and self.arch != "fast":
            raise ValueError(f"stem_bias_epochs applies to arch 'fast' only (its whitening stem), got arch={self.arch!r}")
        if self.lr_start > self.lr:
            raise ValueError(f"lr_start must be <= lr, got lr_start={self.lr_start}, lr={self.lr}")
        if self.lr_min > self.lr:
            raise ValueError(f"lr_min must be <= lr, got lr_min={self.lr_min}, lr={self.lr}")
        if list(self.milestones) != sorted(self.milestones):
            raise ValueError(f"milestones must be increasing epochs >= 1, got {self.milestones}")

    def replace(self, **overrides: Any) -> "TrainConfig":
        """A copy with ``overrides`` applied; unknown keys raise ``ValueError``.

        Changing ``method`` keeps the options the new method shares with the old one (SOP's for
        SOP+) and resets the rest; an override that is not an option of the new method is refused.
        """
        method = overrides.get("method", self.method)
        kept = {f.name: getattr(self, f.name) for f in common_fields()}
        if method in METHODS:
            new_own = {f.name for f in option_fields(method)}
            kept.update({key: value for key, value in dataclasses.asdict(self.options).items() if key in new_own})
            # a derived option (SOP's switches: the recipe's) is derived again when what it follows
            # changes, unless it is itself overridden
            before = {**kept, "method": self.method}
            for name, sources in getattr(method_class(method).Options, "DERIVED", {}).items():
                if name not in overrides and any(key in overrides and overrides[key] != before.get(key)
                                                 for key in sources):
                    kept[name] = None
        return TrainConfig(**{**kept, **overrides})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Build from a saved dict (``config.json``, a checkpoint's copy).

        Old names are renamed (``gamma`` -> ``lr_decay``), and options of other methods are dropped:
        files written before options belonged to their method held every method's options, which
        the run's method never read. A key no method or field knows raises ``ValueError``.
        """
        if not isinstance(d, dict):
            raise ValueError(f"a config must be a dict of settings, got {type(d).__name__}")
        renamed = {_RENAMED.get(key, key): value for key, value in d.items()}
        method = renamed.get("method", "sop")
        own = {f.name for f in option_fields(method)} if method in METHODS else set()
        common = {f.name for f in common_fields()}
        kept = {key: value for key, value in renamed.items()
                if key in common or key in own or not methods_with_option(key)}
        return cls(**kept)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "TrainConfig":
        """The config of preset ``name`` (:func:`sopdeep.list_presets`) with ``overrides`` applied.

        >>> TrainConfig.from_preset("fast-cifar10-sop-sym40", epochs=3).epochs
        3
        """
        from sopdeep.presets import PRESETS

        if name not in PRESETS:
            close = difflib.get_close_matches(str(name), list(PRESETS), n=1)
            raise ValueError(f"preset must be one of sopdeep.list_presets(), got {name!r}"
                             + (f" (did you mean {close[0]!r}?)" if close else ""))
        return cls().replace(**{**PRESETS[name], **overrides})

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
        """The common settings and the method's options, flat (what ``config.json`` holds)."""
        d = {f.name: getattr(self, f.name) for f in common_fields()}
        d["milestones"] = list(d["milestones"])
        d.update(dataclasses.asdict(self.options))
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def common_fields() -> tuple[dataclasses.Field, ...]:
    """The declared fields every method shares (all of :class:`TrainConfig` but ``options``)."""
    return tuple(f for f in dataclasses.fields(TrainConfig) if f.name != "options")


def methods_with_option(name: str) -> tuple[str, ...]:
    """The registered methods that declare an option ``name`` (empty: none does)."""
    return tuple(m for m in METHODS if any(f.name == name for f in option_fields(m)))


def _refuse_unknown(kwargs: dict[str, Any], common: dict[str, Any], method: Any) -> None:
    """``ValueError`` naming every key that is neither common nor an option of ``method``."""
    unknown = sorted(set(kwargs) - set(common))
    if not unknown:
        return
    elsewhere = {key: methods_with_option(key) for key in unknown}
    foreign = [key for key in unknown if elsewhere[key]]
    if foreign:
        owners = "; ".join(f"{key} belongs to {', '.join(elsewhere[key])}" for key in foreign)
        raise ValueError(f"option(s) {foreign} do not apply to method {method!r} ({owners}); "
                         f"remove them or choose that method")
    known = sorted(set(common) | {f.name for m in METHODS for f in option_fields(m)})
    hints = {key: difflib.get_close_matches(key, known, n=1) for key in unknown}
    hint = "; ".join(f"{key}: did you mean {h[0]}?" for key, h in hints.items() if h)
    raise ValueError(f"unknown config key(s) {unknown}" + (f" ({hint})" if hint else "")
                     + "; sop-train --help lists every key")
