"""Building a run, in one place: device and processes, precision (autocast, GradScaler), network,
optimiser of θ, method and its per-sample state, weak view, batch boundaries (:class:`RunState`).

Randomness: the network is initialised from ``torch.manual_seed(config.seed)`` inside the caller's
``torch.random.fork_rng`` (:func:`make_model` scopes it itself); u, v are drawn from
``torch.Generator().manual_seed(config.seed)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from sopdeep import distributed as ddp
from sopdeep.config import TrainConfig
from sopdeep.datasets import DATASETS, default_augment
from sopdeep.hooks import AlternatingFlip, Lookahead, StepHook
from sopdeep.methods import get_method
from sopdeep.models import ARCHITECTURES, build_model
from sopdeep.training.data import TrainingData
from sopdeep.training.draws import epoch_draws
from sopdeep.training.precision import apply_backend_flags, backend_flags, resolve_amp

__all__ = ["RunState", "apply_threads", "build_hooks", "build_run", "check_names", "cpu_supports_bf16", "make_model",
           "precision_name", "resolve_device", "theta_groups"]


def check_names(config: TrainConfig) -> None:
    """``ValueError`` unless the dataset, architecture and method are registered."""
    if config.dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {tuple(DATASETS)}, got {config.dataset!r}")
    if config.arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {tuple(ARCHITECTURES)}, got {config.arch!r}")
    get_method(config)


def make_model(config: TrainConfig, num_classes: int, in_channels: int, image_size) -> torch.nn.Module:
    """The network of ``config`` at initialisation, exactly as :func:`train` builds it (on the CPU).

    Seeded with ``config.seed`` inside ``torch.random.fork_rng``: the caller's RNG is untouched.
    ``image_size`` is an int or (H, W). Example::

        data = training_data(config)
        model = make_model(config, data.num_classes, data.x_train.shape[1], tuple(data.x_train.shape[2:]))
    """
    with torch.random.fork_rng(devices=[]):
        return _seeded_model(config, num_classes, in_channels, image_size)


def _seeded_model(config: TrainConfig, num_classes: int, in_channels: int, image_size) -> torch.nn.Module:
    # the one construction of the network: seeds the global RNG (callers scope it with fork_rng)
    torch.manual_seed(config.seed)
    options = {key: getattr(config, key) for key in ("width", "depth") if getattr(config, key)}
    return build_model(config.arch, num_classes, in_channels=in_channels, image_size=image_size, **options)


def theta_groups(model: torch.nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """The optimiser's parameter groups of θ: one group, or with ``config.bias_lr_scale != 1`` two,
    the BatchNorm parameters (``lr_scale`` = bias_lr_scale) and the rest.

    Each group's lr is ``lr_scale`` times the schedule's (the trainer sets it every step); the
    BatchNorm group's weight decay is divided by its scale so that its decay per step, ``lr *
    weight_decay``, is that of the other weights (airbench's decoupling). Frozen parameters are left out.
    """
    params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if config.bias_lr_scale == 1.0:
        return [{"params": [p for _, p in params], "weight_decay": config.weight_decay, "name": "theta",
                 "lr_scale": 1.0}]
    norm_names = {f"{module_name}.{param_name}" if module_name else param_name
                  for module_name, module in model.named_modules()
                  if isinstance(module, torch.nn.modules.batchnorm._BatchNorm)
                  for param_name, _ in module.named_parameters(recurse=False)}
    norm = [p for name, p in params if name in norm_names]
    rest = [p for name, p in params if name not in norm_names]
    return [{"params": rest, "weight_decay": config.weight_decay, "name": "theta", "lr_scale": 1.0},
            {"params": norm, "weight_decay": config.weight_decay / config.bias_lr_scale, "name": "theta_norm",
             "lr_scale": config.bias_lr_scale}]


def resolve_device(config: TrainConfig) -> tuple[torch.device, ddp.DistEnv]:
    """The device of this process and its torchrun environment (one process per device)."""
    device = _config_device(config)
    env = ddp.init_from_env(device.type)
    if env.enabled and device.type == "cuda":
        device = torch.device("cuda", env.local_rank)
    return device, env


def _config_device(config: TrainConfig) -> torch.device:
    if config.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but CUDA is not available")
    return torch.device(config.device)


def cpu_supports_bf16() -> bool:
    """Whether this CPU runs bf16 natively: AVX-512 and oneDNN's bf16 kernels (else bf16 is emulated,
    slower than fp32, and ``amp="auto"`` keeps fp32)."""
    if "AVX512" not in torch.backends.cpu.get_cpu_capability():
        return False
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(torch.backends.mkldnn.is_available() and check is not None and check())


def apply_threads(config: TrainConfig) -> int:
    """Set torch's intra-op threads from ``config.threads`` (0 = all cores); the number in use."""
    if config.threads:
        torch.set_num_threads(config.threads)
    return torch.get_num_threads()


def precision_name(amp_dtype: torch.dtype | None) -> str:
    """What ran, as recorded in the run: "bf16", "fp16" or "fp32"."""
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(amp_dtype, "fp32")


def _amp(config: TrainConfig, device: torch.device):
    """(autocast dtype or None, use GradScaler). BatchNorm, the loss, u and v stay fp32 (autocast
    keeps batch_norm and the losses in fp32; the per-sample state is never cast)."""
    if device.type == "cuda":  # TF32 and cuDNN autotuning: explicit settings (sopdeep.training.precision)
        apply_backend_flags(backend_flags(config.amp, tf32=config.tf32))
    if config.amp == "auto" and device.type == "cpu":  # bf16 where the CPU has it natively, else fp32
        return (torch.bfloat16, False) if cpu_supports_bf16() else (None, False)
    # auto on CUDA: native bf16 only (compute capability >= 8.0), else fp16 + GradScaler
    return resolve_amp(config.amp, device)


@dataclass
class RunState:
    """What the epochs work on (built by :func:`build_run`)."""

    model: torch.nn.Module
    net: Callable  # the model as called in the forward pass (DDP wrapper, compiled)
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    method: Any
    state: dict[str, torch.Tensor]
    env: ddp.DistEnv
    device: torch.device
    augment: str  # "none", "flip" or "crop_flip"
    bounds: list[int]  # batch boundaries in the epoch's order
    threads: int = 0  # torch's CPU threads in use (recorded in summary.json)
    hooks: list[StepHook] = field(default_factory=list)  # the recipe's extras (build_hooks)
    pad: int = 0  # the weak view's crop padding (0: flip only, or no weak view)
    epochs: int = 1  # of the run: the hooks' schedules (lookahead) span all of them

    @property
    def precision(self) -> str:
        return precision_name(self.amp_dtype)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.bounds) - 1

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)


def build_run(config: TrainConfig, data: TrainingData, env: ddp.DistEnv, device: torch.device) -> RunState:
    """Network, optimiser of θ, method and its per-sample state."""
    # inside train's fork_rng: the seeding is scoped to this run
    threads = apply_threads(config)
    model = _seeded_model(config, data.num_classes, data.x_train.shape[1], tuple(data.x_train.shape[2:]))
    init_from_data(model, data)
    model = model.to(device, memory_format=data.memory_format)
    # θ: momentum and weight decay (Table A.1); u, v are stepped by the method
    optimizer = torch.optim.SGD(theta_groups(model, config), lr=config.lr, momentum=config.momentum,
                                nesterov=config.nesterov, **({"fused": True} if device.type == "cuda" else {}))
    amp_dtype, use_scaler = _amp(config, device)
    method = get_method(config, rank=env.rank)
    state = method.init_state(data.n, data.num_classes, torch.Generator().manual_seed(config.seed), device)
    net = ddp.wrap_model(model, env, device=device, sync_bn=config.sync_bn)
    augment = config.augment
    if augment == "auto":
        augment = default_augment(config.dataset, data.image_shape)  # a property of the dataset
    # equal, non-empty shards on every rank; a last batch of one sample per rank merged into the one before
    bounds = ddp.batch_bounds(data.n, config.batch_size, env.world_size)
    pad = config.crop_pad if augment == "crop_flip" else 0
    return RunState(model=model, net=torch.compile(net) if config.compile else net, optimizer=optimizer,
                    scaler=torch.amp.GradScaler("cuda", enabled=use_scaler), amp_dtype=amp_dtype,
                    method=method, state=state, env=env, device=device, augment=augment, bounds=bounds,
                    threads=threads, hooks=build_hooks(config, model, n=data.n, pad=pad, device=device),
                    pad=pad, epochs=config.epochs)


def init_from_data(model: torch.nn.Module, data: TrainingData) -> None:
    """A network whose initialisation depends on the training images (``model.init_from_data``,
    e.g. the fast recipe's patch statistics) gets the first ``model.data_init_samples`` of them,
    normalised, float32, on the CPU; any other network is left as it is."""
    if hasattr(model, "init_from_data"):
        model.init_from_data(data.normalize(data.x_train[:model.data_init_samples]).float().cpu())


def build_hooks(config: TrainConfig, model: torch.nn.Module, *, n: int, pad: int, device) -> list[StepHook]:
    """The run's step hooks (:mod:`sopdeep.hooks`): the lookahead (``config.lookahead``), the
    alternating flip (``config.flip``), then those the network brings (``model.training_hooks``)."""
    hooks: list[StepHook] = []
    if config.lookahead:
        hooks.append(Lookahead(model, config.lookahead))
    if config.flip == "alternate":
        # epoch 1's coins, as train_one_epoch drew them (the order comes first in its generator)
        hooks.append(AlternatingFlip(lambda: epoch_draws(config.seed, 0, n, pad=pad, weak_view=True,
                                                         device=device)[1]["coins"]))
    if hasattr(model, "training_hooks"):
        hooks.extend(model.training_hooks(config))
    return hooks
