"""train(config): CE and SOP training with exact resume, read top to bottom.

Order of a run: config → data (uint8 tensors on the device, labels made noisy by
``sopdeep.noise``) → network and optimiser → per-sample state of the method (u, v) → resume from
``out/checkpoint.pt`` if asked → epochs (batches by index, augmentation on the device, θ step,
u/v step by index) → per-epoch evaluation, detection metrics, checkpoint, CSV/JSONL → per-sample
outputs and summary.

Randomness (no global seeding leaks out of :func:`train`):

* model initialisation and anything in the network that draws from torch's global RNG
  (dropout) run inside ``torch.random.fork_rng`` (CPU, and the run's CUDA device) seeded with
  ``config.seed``; the CPU (and CUDA) states are saved in every checkpoint and restored on
  resume, and the caller's states are restored when ``train`` returns;
* u, v are drawn by a ``torch.Generator`` seeded with ``config.seed`` (on the CPU, then moved);
* data order and augmentation of epoch ``e`` come from a CPU ``torch.Generator`` seeded with
  ``(config.seed, e)``, so an epoch is the same whether or not the run was interrupted before it;
* label noise: ``config.noise_seed`` (numpy generator inside ``sopdeep.noise``).

On the CPU a resumed run is bit-identical to an uninterrupted one (tested by SIGKILL).
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from sopcommon import atomic_path

from sopdeep.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from sopdeep.config import TrainConfig
from sopdeep.detection import detection_metrics
from sopdeep import distributed as ddp
from sopdeep.methods import Batch, get_method

__all__ = ["train", "TrainResult", "NonFiniteLossError", "learning_rate", "augment", "load_data"]

# keys that may differ between the saved config and the one passed with resume=True
_RESUME_FREE_KEYS = ("progress", "device", "out", "data_root", "cache_path", "cifar_n_path")


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes
    ----------
    config : TrainConfig
    model : torch.nn.Module
    state : dict of Tensor
        The method's per-sample variables (SOP: ``u``, ``v``), on the CPU.
    history : list of dict
        One row of metrics per epoch (also in ``metrics.csv`` / ``metrics.jsonl``): ``lr``,
        ``train_loss`` (and its terms), ``train_acc_noisy`` / ``train_acc_clean`` (running, on the
        augmented training batches), ``test_acc``, ``det_auroc`` / ``det_precision`` /
        ``det_recall`` / ``det_flagged_fraction`` of the method's noise score against the true
        noise mask (SOP: u² at the label; CE: 1 - p(label) at the sample's last training visit),
        ``epoch_time``.
    samples : dict of ndarray
        Per-sample outputs (also in ``samples.npz``): ``given_label``, ``noise_score`` (higher =
        more likely mislabelled), ``is_label_issue`` (``noise_score > config.issue_threshold``),
        ``corrected_label`` (argmax of the network's prediction f(x) on the un-augmented image,
        eval mode), ``pred_prob`` (N, K); ``clean_label`` and ``is_noisy`` when known; SOP also
        ``correction`` (s_i, (N, K)).
    summary : dict
        Best / final test accuracy, final detection metrics, wall time (``summary.json``).
    """

    config: TrainConfig
    model: torch.nn.Module
    state: dict[str, torch.Tensor]
    history: list[dict[str, Any]]
    samples: dict[str, np.ndarray]
    summary: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------
# pieces


def learning_rate(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """θ learning rate τ_t at global step ``step`` (0-based).

    multistep: :math:`\\tau \\gamma^{|\\{m \\in \\mathrm{milestones}: m \\le e\\}|}` with
    ``e = step // steps_per_epoch`` the 0-based epoch (like ``MultiStepLR`` stepped per epoch);
    cosine: :math:`\\tfrac{\\tau}{2}(1 + \\cos(\\pi t / T))`, ``T`` the total number of steps;
    constant: τ.
    """
    if config.schedule == "constant":
        return config.lr
    if config.schedule == "multistep":
        epoch = step // steps_per_epoch
        return config.lr * config.gamma ** sum(m <= epoch for m in config.milestones)
    total = config.epochs * steps_per_epoch
    return 0.5 * config.lr * (1.0 + math.cos(math.pi * step / total))


def augment(x: torch.Tensor, mode: str, generator: torch.Generator) -> torch.Tensor:
    """Random crop with zero padding 4 and/or horizontal flip, per sample, on x's device.

    Parameters
    ----------
    x : uint8 Tensor of shape (B, C, H, W)
    mode : {"none", "flip", "crop_flip"}
    generator : torch.Generator
        CPU generator; the random draws are made on the CPU (so they are identical on every
        device) and moved to ``x.device``.
    """
    if mode == "none":
        return x
    b, c, h, w = x.shape
    if mode == "crop_flip":
        pad = 4
        dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
        dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
        padded = F.pad(x, (pad, pad, pad, pad))
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        bi = torch.arange(b, device=x.device)[:, None, None, None]
        ci = torch.arange(c, device=x.device)[None, :, None, None]
        x = padded[bi, ci, rows, cols]
    flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(3), x)


@dataclass
class _Data:
    x_train: torch.Tensor  # uint8 (N, C, H, W) on the device
    y_train: torch.Tensor  # noisy labels, int64 (N,) on the device
    clean_train: torch.Tensor | None
    is_noisy: np.ndarray | None
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    mean: torch.Tensor  # (1, C, 1, 1) float
    std: torch.Tensor
    realised_rate: float | None


def load_data(config: TrainConfig):
    """The dataset and its noisy labels (numpy), as the config says.

    Returns
    -------
    (ArrayDataset, NoisyLabels)
        Restricted to ``config.train_subset`` samples (noise drawn on the full set first).
    """
    from sopdeep.data import load_dataset
    from sopdeep.noise import make_noisy_labels

    if config.dataset == "synthetic":
        from sopdeep.synthetic import make_synthetic

        ds = make_synthetic(seed=config.seed)
    else:
        if not config.data_root:
            raise ValueError("data_root must be set (a local folder; nothing is downloaded)")
        ds = load_dataset(config.dataset, config.data_root, cache_path=config.cache_path or None)
    noisy = make_noisy_labels(
        ds.y_train, config.noise, config.noise_rate, num_classes=ds.num_classes,
        dataset="cifar100" if "100" in config.dataset else "cifar10",
        cifar_n_path=config.cifar_n_path or None, cifar_n_label=config.cifar_n_label,
        random_state=config.noise_seed)
    if config.train_subset and config.train_subset < ds.n_train:
        idx = np.arange(config.train_subset)
        ds, noisy = ds.subset(train_indices=idx), noisy.subset(idx)
    return ds, noisy


def _to_device_data(ds, noisy, device) -> _Data:
    def images(x):
        return torch.from_numpy(np.array(np.asarray(x).transpose(0, 3, 1, 2), order="C")).to(device)

    x_train = images(ds.x_train)
    # per-channel standardisation (A.4) in pixel units; a constant channel is only centred
    mean01, std01 = ds.channel_stats()
    mean = torch.tensor(mean01 * 255.0, dtype=torch.float32).view(1, -1, 1, 1).to(device)
    std = torch.tensor(np.maximum(std01 * 255.0, 1.0), dtype=torch.float32).view(1, -1, 1, 1).to(device)
    # with noise "none" the given labels are all we know: no detection metrics
    is_noisy = np.asarray(noisy.is_noisy) if noisy.kind != "none" else None
    return _Data(
        x_train=x_train,
        y_train=torch.from_numpy(np.array(noisy.noisy_labels, dtype=np.int64)).to(device),
        clean_train=torch.from_numpy(np.array(noisy.clean_labels, dtype=np.int64)).to(device),
        is_noisy=is_noisy,
        x_test=images(ds.x_test),
        y_test=torch.from_numpy(np.array(ds.y_test, dtype=np.int64)).to(device),
        num_classes=ds.num_classes, mean=mean, std=std,
        realised_rate=float(noisy.realised_rate))


def _resolve_device(config: TrainConfig) -> torch.device:
    if config.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but CUDA is not available")
    return torch.device(config.device)


def _amp(config: TrainConfig, device: torch.device):
    """(autocast dtype or None, use GradScaler)."""
    mode = config.amp
    if mode == "auto":
        if device.type != "cuda":
            return None, False
        mode = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if mode == "off":
        return None, False
    if mode == "bf16":
        return torch.bfloat16, False
    return torch.float16, device.type == "cuda"


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def _epoch_scores(scores: torch.Tensor | None, label_prob: torch.Tensor) -> torch.Tensor:
    return 1.0 - label_prob if scores is None else scores


def _write_metrics(out: Path, history: list[dict[str, Any]]) -> None:
    """Rewrite metrics.csv and metrics.jsonl from the whole history (atomic replace), so a
    resumed run never duplicates rows."""
    if not history:
        return
    keys = list(history[0])
    for row in history[1:]:
        keys += [k for k in row if k not in keys]
    with atomic_path(out / "metrics.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(history)
    with atomic_path(out / "metrics.jsonl") as tmp, open(tmp, "w") as fh:
        for row in history:
            fh.write(json.dumps(_strict_json(row), allow_nan=False) + "\n")


def _strict_json(obj: Any) -> Any:
    """Replace non-finite floats by None (JSON ``null``) so files parse under strict JSON readers.

    Metrics can be undefined (e.g. detection precision when nothing is flagged is NaN); Python's
    ``json`` would write the non-standard token ``NaN``, which other tools reject.
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict_json(v) for v in obj]
    return obj


def _write_json(path: Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_strict_json(obj), indent=2, sort_keys=True, allow_nan=False))


# ------------------------------------------------------------------------------------------------
# the run


def train(config: TrainConfig, *, resume: bool = False,
          callbacks: dict[str, Callable] | None = None) -> TrainResult:
    """Train a network with ``config.method`` on noisy labels; see the module docstring.

    Parameters
    ----------
    config : TrainConfig
    resume : bool
        Continue from ``config.out/checkpoint.pt`` when it exists (the saved config must agree
        with ``config`` except for paths, device and progress); start fresh otherwise. Without
        it, an existing checkpoint in ``config.out`` raises ``FileExistsError`` (never
        overwritten).
    callbacks : dict, optional
        Test and monitoring hooks: ``"loss"(epoch, step, loss) -> loss`` may replace the batch
        loss (fault injection), ``"step"(epoch, step)`` runs after each step, ``"epoch"(epoch,
        row)`` after each epoch's checkpoint.

    Returns
    -------
    TrainResult

    Raises
    ------
    NonFiniteLossError
        When an epoch's loss is not finite; that epoch is not checkpointed.
    """
    device = _resolve_device(config)
    forked = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with torch.random.fork_rng(devices=forked):
        return _train(config, resume, callbacks or {})


def _train(config: TrainConfig, resume: bool, callbacks: dict[str, Callable]) -> TrainResult:
    t_start = time.perf_counter()
    env = ddp.init_from_env(_resolve_device(config).type)  # torchrun: one process per device
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / CHECKPOINT_NAME
    if not resume and ckpt_path.exists():
        raise FileExistsError(f"{ckpt_path} exists: pass resume=True (--resume) to continue that run, "
                              "or choose another out folder (nothing was overwritten)")
    ckpt = load_checkpoint(ckpt_path) if resume and ckpt_path.exists() else None
    if ckpt is not None:
        saved = TrainConfig.from_dict(json.loads(ckpt["config"]))
        diff = {k: (v, getattr(config, k)) for k, v in saved.to_dict().items()
                if k not in _RESUME_FREE_KEYS and getattr(config, k) != v}
        if diff:
            raise ValueError(f"config differs from the checkpoint's in {diff} (saved, given); "
                             "start a new run in another out folder instead")
    if env.is_main:
        (out / "config.json").write_text(config.to_json())

    # -- data -----------------------------------------------------------------------------------
    device = _resolve_device(config)
    if env.enabled and device.type == "cuda":
        device = torch.device("cuda", env.local_rank)
    ds, noisy = load_data(config)
    data = _to_device_data(ds, noisy, device)
    n, k = data.x_train.shape[0], data.num_classes
    aug_mode = config.augment
    if aug_mode == "auto":
        aug_mode = "crop_flip" if tuple(data.x_train.shape[1:]) == (3, 32, 32) else "none"
    # batch boundaries; a last batch of one sample is merged into the one before it
    # (BatchNorm cannot train on a single sample)
    bounds = list(range(0, n, config.batch_size)) + [n]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] == 1:
        del bounds[-2]
    steps_per_epoch = len(bounds) - 1
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format

    def normalize(x_uint8: torch.Tensor) -> torch.Tensor:
        x = (x_uint8.float() - data.mean) / data.std
        return x.contiguous(memory_format=memory_format)

    # -- network, optimiser, method state -------------------------------------------------------
    from sopdeep.models import build_model

    torch.manual_seed(config.seed)  # inside fork_rng: scoped to this run
    options = {key: getattr(config, key) for key in ("width", "depth") if getattr(config, key)}
    model = build_model(config.arch, k, in_channels=data.x_train.shape[1],
                        image_size=tuple(data.x_train.shape[2:]), **options)
    model = model.to(device, memory_format=memory_format)
    # θ: one explicit group, momentum and weight decay (Table A.1). u, v are not in a torch
    # optimiser: they are stepped by index with plain projected SGD (sopdeep.methods.SOP), lr
    # α·τ_t, no momentum, no weight decay, so a step touches only the batch's rows.
    optimizer = torch.optim.SGD(
        [{"params": list(model.parameters()), "weight_decay": config.weight_decay, "name": "theta"}],
        lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
        **({"fused": True} if device.type == "cuda" else {}))
    amp_dtype, use_scaler = _amp(config, device)
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
    method = get_method(config)
    state = method.init_state(n, k, torch.Generator().manual_seed(config.seed), device)
    forward_model = ddp.wrap_model(model, env, device=device)
    forward_model = torch.compile(forward_model) if config.compile else forward_model

    history: list[dict[str, Any]] = []
    start_epoch = 0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if use_scaler and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        for key in state:
            state[key].copy_(ckpt["state"][key].to(device))
        torch.set_rng_state(ckpt["rng_cpu"])
        if device.type == "cuda" and "rng_cuda" in ckpt:
            torch.cuda.set_rng_state(ckpt["rng_cuda"], device)
        history = json.loads(ckpt["history"])
        start_epoch = int(ckpt["epoch"])

    def autocast():
        return torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)

    @torch.no_grad()
    def predict(x: torch.Tensor, labels: torch.Tensor):
        """Yield (indices, float32 logits, labels) over x in eval mode, un-augmented."""
        model.eval()
        for lo in range(0, x.shape[0], config.eval_batch_size):
            idx = torch.arange(lo, min(lo + config.eval_batch_size, x.shape[0]), device=device)
            with autocast():
                logits = forward_model(normalize(x[idx]))
            yield idx, logits.float(), labels[idx]
        model.train()

    def train_predict(_data=None):
        return predict(data.x_train, data.y_train)

    def detection(scores: torch.Tensor | None) -> dict[str, float]:
        if scores is None or data.is_noisy is None:
            return {}
        s = scores.detach().float().cpu().numpy()
        m = detection_metrics(s, s > config.issue_threshold, data.is_noisy)
        return {f"det_{key}": val for key, val in m.items()}

    # -- epochs ---------------------------------------------------------------------------------
    progress = None
    if config.progress and env.is_main:
        from tqdm.auto import tqdm

        progress = tqdm(total=config.epochs * steps_per_epoch, initial=start_epoch * steps_per_epoch,
                        desc=f"{config.method} {config.dataset}", unit="step", dynamic_ncols=True)
    # p(given label) of each sample at its last training visit (train mode, augmented): the
    # per-epoch detection score of methods without per-sample variables (CE: 1 - p)
    label_prob = torch.zeros(n, device=device)
    model.train()
    for epoch in range(start_epoch, config.epochs):
        t0 = time.perf_counter()
        gen = _epoch_generator(config.seed, epoch)
        order = torch.randperm(n, generator=gen).to(device)
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        term_sums: dict[str, torch.Tensor] = {}
        correct_noisy = torch.zeros((), device=device, dtype=torch.int64)
        correct_clean = torch.zeros((), device=device, dtype=torch.int64)
        for step in range(steps_per_epoch):
            global_step = epoch * steps_per_epoch + step
            lr = learning_rate(config, global_step, steps_per_epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            idx = ddp.shard(order[bounds[step]:bounds[step + 1]], env)
            raw = data.x_train.index_select(0, idx)
            batch = Batch(indices=idx, images=normalize(augment(raw, aug_mode, gen)),
                          labels=data.y_train.index_select(0, idx), raw=raw, normalize=normalize)
            with autocast():
                out_step = method.batch_loss(forward_model, batch, state)
            loss = out_step.loss
            if "loss" in callbacks:
                loss = callbacks["loss"](epoch, step, loss)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            grad_scale = float(scaler.get_scale()) if use_scaler else 1.0
            scaler.update()
            method.after_backward(batch, out_step, state, lr, grad_scale)
            bsz = idx.numel()
            loss_sum += loss.detach().double() * bsz
            for name, value in out_step.terms.items():
                term_sums[name] = term_sums.get(name, 0.0) + value.double() * bsz
            logits = out_step.logits.detach().float()
            label_prob.index_copy_(0, idx, torch.softmax(logits, 1).gather(1, batch.labels[:, None])[:, 0])
            # DDP: every rank gets the rows (u, v, label_prob) every other rank updated
            ddp.sync_rows({**state, "label_prob": label_prob}, idx, env)
            pred = logits.argmax(1)
            correct_noisy += (pred == batch.labels).sum()
            correct_clean += (pred == data.clean_train.index_select(0, idx)).sum()
            if progress is not None:
                progress.update(1)
            if "step" in callbacks:
                callbacks["step"](epoch, step)
        ddp.sync_buffers(model, env)
        ddp.all_reduce_sum_([loss_sum, correct_noisy, correct_clean, *term_sums.values()], env)
        method.end_of_epoch(model, train_predict, data, state, lr)

        train_loss = float(loss_sum) / n
        if not math.isfinite(train_loss):
            if progress is not None:
                progress.close()
            kept = (f"the checkpoint of epoch {epoch} is kept in {ckpt_path}" if epoch and config.checkpoint
                    else "no checkpoint had been written")
            raise NonFiniteLossError(
                f"non-finite training loss ({train_loss}) in epoch {epoch + 1}: stopped; {kept}. "
                "Lower lr / alpha_u / alpha_v or check the data.")
        test_correct = sum(int((logits.argmax(1) == y).sum()) for _, logits, y in
                           predict(data.x_test, data.y_test))
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "lr": lr,
            "train_loss": train_loss,
            **{f"train_{name}": float(v) / n for name, v in term_sums.items()},
            "train_acc_noisy": int(correct_noisy) / n,
            "train_acc_clean": int(correct_clean) / n,
            "test_acc": test_correct / data.x_test.shape[0],
            **detection(_epoch_scores(method.noise_scores(state, data.y_train, None), label_prob)),
            "epoch_time": time.perf_counter() - t0,
        }
        history.append(row)
        if config.checkpoint and env.is_main:
            payload = {
                "epoch": epoch + 1,
                "config": config.to_json(),
                "history": json.dumps(history),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict() if use_scaler else {},
                "state": {key: val.detach().cpu() for key, val in state.items()},
                "rng_cpu": torch.get_rng_state(),
            }
            if device.type == "cuda":
                payload["rng_cuda"] = torch.cuda.get_rng_state(device)
            save_checkpoint(payload, ckpt_path)
        if env.is_main:
            _write_metrics(out, history)
        if progress is not None:
            progress.set_postfix(loss=f"{train_loss:.3f}", test=f"{row['test_acc']:.3f}")
        if "epoch" in callbacks:
            callbacks["epoch"](epoch, row)
    if progress is not None:
        progress.close()

    # -- per-sample outputs and summary ---------------------------------------------------------
    probs = torch.cat([torch.softmax(logits, 1) for _, logits, _ in train_predict()])
    scores = method.noise_scores(state, data.y_train, probs)
    samples: dict[str, np.ndarray] = {
        "given_label": data.y_train.cpu().numpy(),
        "noise_score": scores.float().cpu().numpy(),
        "is_label_issue": (scores > config.issue_threshold).cpu().numpy(),
        "corrected_label": probs.argmax(1).cpu().numpy(),
        "pred_prob": probs.float().cpu().numpy(),
    }
    corr = method.correction(state, data.y_train, k)
    if corr is not None:
        samples["correction"] = corr.float().cpu().numpy()
    if data.is_noisy is not None:
        samples["clean_label"] = data.clean_train.cpu().numpy()
        samples["is_noisy"] = data.is_noisy
    if env.is_main:
        np.savez(out / "samples.npz", **samples)
    tests = [row["test_acc"] for row in history]
    summary: dict[str, Any] = {
        "method": config.method, "dataset": config.dataset, "noise": config.noise,
        "noise_rate": config.noise_rate, "realised_noise_rate": data.realised_rate,
        "epochs": len(history),
        "best_test_acc": max(tests) if tests else None,
        "best_epoch": int(np.argmax(tests)) + 1 if tests else None,
        "final_test_acc": tests[-1] if tests else None,
        "final_train_acc_noisy": history[-1]["train_acc_noisy"] if history else None,
        "final_train_acc_clean": history[-1]["train_acc_clean"] if history else None,
        "wall_time_s": time.perf_counter() - t_start,
        "train_time_s": sum(row["epoch_time"] for row in history),
    }
    if data.is_noisy is not None:
        s = samples["noise_score"]
        final = detection_metrics(s, samples["is_label_issue"], data.is_noisy)
        summary.update({f"final_det_{key}": val for key, val in final.items()})
        summary["corrected_label_acc"] = float(np.mean(samples["corrected_label"] == samples["clean_label"]))
    if env.is_main:
        _write_json(out / "summary.json", summary)
    return TrainResult(config=config, model=model,
                       state={key: val.detach().cpu() for key, val in state.items()},
                       history=history, samples=samples, summary=summary)
