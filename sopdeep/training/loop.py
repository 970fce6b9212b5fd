"""train(config): training with exact resume, read top to bottom.

:func:`train` = set-up (names, run folder, data on the device, network, optimiser, method state,
resume) → for each epoch: :func:`train_one_epoch` (the hot path) → the method's end-of-epoch
step → evaluate and record (metrics, checkpoint) → finish (per-sample outputs, summary). The
set-up is :mod:`sopdeep.training.setup`, the data :mod:`sopdeep.training.data`, the learning rate
:mod:`sopdeep.training.schedule`; the files of a run folder are written by :mod:`sopdeep.runs`.

Randomness (no global seeding leaks out of :func:`train`): model initialisation runs inside
``torch.random.fork_rng`` seeded with ``config.seed`` (the RNG states are checkpointed);
u, v are drawn from ``torch.Generator().manual_seed(config.seed)``; the data order and
augmentation of epoch ``e`` from a CPU generator seeded with ``(config.seed, e)`` (the order, then
the weak view's crop offsets and flip coins of all N samples, once per epoch); label noise
from ``config.noise_seed``. On the CPU a resumed run is bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from sopdeep import distributed as ddp
from sopdeep import runs
from sopdeep.augment import random_crop_flip
from sopdeep.config import TrainConfig
from sopdeep.detection import detection_metrics
from sopdeep.label_issues import run_label_issues
from sopdeep.methods import Batch
from sopdeep.training.data import TrainingData, applied_noise, load_data, to_device
from sopdeep.training.draws import epoch_draws
from sopdeep.training.precision import scaler_signals
from sopdeep.training.schedule import learning_rate
from sopdeep.training.setup import RunState, build_run, check_names, resolve_device

__all__ = ["train", "train_one_epoch", "tta_logits", "TrainResult", "NonFiniteLossError"]

NonFiniteLossError = runs.NonFiniteLossError  # re-exported: the run's exceptions live in sopdeep.runs


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
        One row per epoch (also ``metrics.csv`` / ``metrics.jsonl``): ``lr``, ``train_loss`` and
        its terms, ``train_acc_noisy`` / ``train_acc_clean`` (running, on augmented batches),
        ``test_acc`` (None on the epochs ``config.eval_every`` skips), ``monitor_auroc`` / ``monitor_precision`` / ``monitor_recall`` /
        ``monitor_flagged_fraction``: a training monitor of the method's noise score against the
        true noise mask (flagged: above ``config.issue_threshold``; not the run's result, which
        is the summary's ``final_issues_*``), ``epoch_time``.
    samples : dict of ndarray
        Per-sample outputs (also ``samples.npz``): ``given_label``, ``noise_score`` (higher = more
        likely mislabelled), ``label_quality`` in [0, 1] (higher = cleaner) and
        ``is_label_issue`` (their count estimated without clean labels), both from
        :func:`sopdeep.label_issues.run_label_issues`; ``corrected_label`` (argmax of f(x), eval
        mode, un-augmented), ``pred_prob`` (N, K); ``clean_label``, ``is_noisy`` when known;
        SOP's ``correction`` s_i (N, K); ``path`` (image folders: each image's file relative to
        the root, :func:`sopdeep.datasets.load_image_folder`).
    summary : dict
        Best / final test accuracy, the one set of detection metrics against the true noise mask
        (when known), ``final_issues_auroc`` (of 1 - ``label_quality``) and
        ``final_issues_precision`` / ``_recall`` / ``_flagged_fraction`` (of ``is_label_issue``),
        i.e. of what ``samples.npz`` gives a user without clean labels; wall time
        (``summary.json``); undefined values are None, so it is strict JSON.
    method_state : dict of Tensor
        The method's non-per-sample state (SOP+: its strong-view generator).
    """

    config: TrainConfig
    model: torch.nn.Module
    state: dict[str, torch.Tensor]
    history: list[dict[str, Any]]
    samples: dict[str, np.ndarray]
    summary: dict[str, Any] = field(default_factory=dict)
    method_state: dict[str, torch.Tensor] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------
# the run


def train(config: TrainConfig, *, resume: bool = False,
          callbacks: dict[str, Callable] | None = None) -> TrainResult:
    """Train a network with ``config.method`` on noisy labels; see the module docstring.

    Parameters
    ----------
    config : TrainConfig
    resume : bool, default False
        Continue from ``config.out/checkpoint.pt``; its config must agree with ``config`` except
        for paths, device, progress and a larger ``epochs`` (:func:`sopdeep.runs.saved_config`
        gives it back), and the training data must be the same.
    callbacks : dict, optional
        Hooks: ``"loss"(epoch, step, loss) -> loss`` may replace the batch loss (fault
        injection), ``"step"(epoch, step)`` after each step, ``"epoch"(epoch, row)`` after each
        epoch's checkpoint.

    Returns
    -------
    TrainResult

    Raises
    ------
    sopdeep.runs.RunError
        :class:`~sopdeep.runs.RunFolderError` (folder in use, holding another run's results, or
        nothing to resume), :class:`~sopdeep.runs.CheckpointError` (damaged checkpoint),
        :class:`~sopdeep.runs.ResumeMismatchError` (other config or data),
        :class:`~sopdeep.runs.NonFiniteLossError` (that epoch is not checkpointed).
    ValueError
        Unknown dataset, architecture or method; bad data.
    """
    t_start = time.perf_counter()
    if not isinstance(config, TrainConfig):
        # a dict (e.g. a parsed config.json) has none of TrainConfig's checks: say how to make one
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}; "
                         "build one with TrainConfig(...) or TrainConfig.from_dict(d)")
    if not str(config.out).strip():
        # "" would be the current folder: a whole run folder written among the user's files
        raise ValueError("out must name a run folder, got an empty path")
    check_names(config)
    device, env = resolve_device(config)  # torchrun: one process per device
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=cuda), runs.lock_folder(config.out, enabled=env.is_main):
            return _train(config, resume, callbacks or {}, device, env, t_start)
    finally:  # the process group this run created is destroyed at its end, and when it fails
        ddp.cleanup(env)


def _train(config: TrainConfig, resume: bool, callbacks: dict[str, Callable], device, env, t_start) -> TrainResult:
    folder = Path(config.out)
    ckpt = runs.open_run(folder, config, resume=resume, clean=env.is_main)  # writes nothing
    ds, noisy = load_data(config)
    fingerprint = runs.data_fingerprint(ds.x_train, noisy.noisy_labels)
    data = to_device(ds, noisy, device, config.normalization, config.dataset)
    run = build_run(config, data, env, device)
    history, start_epoch = [], 0
    if ckpt is not None:
        runs.check_fingerprint(ckpt, fingerprint, folder)
        history, start_epoch = runs.restore_checkpoint(
            ckpt, model=run.model, optimizer=run.optimizer, scaler=run.scaler, state=run.state,
            method=run.method, device=device, hooks=run.hooks)
    if env.is_main:  # the run starts: only now is anything written into the folder
        runs.write_config(folder, config)
    progress = _progress_bar(config, env, run.steps_per_epoch, start_epoch)
    # p(given label) at each sample's last training visit: the noise score of CE (1 - p)
    label_prob = torch.zeros(data.n, device=device)
    for epoch in range(start_epoch, config.epochs):
        t0 = time.perf_counter()
        lr, sums = train_one_epoch(config, run, data, epoch, label_prob, callbacks, progress)
        run.method.end_of_epoch(_predict(config, run, data, data.x_train, data.y_train), run.state, lr)
        row = _evaluate(config, run, data, epoch, lr, sums, label_prob, progress)
        row["epoch_time"] = time.perf_counter() - t0
        history.append(row)
        if config.checkpoint and env.is_main:
            runs.write_checkpoint(folder, epoch=epoch + 1, config=config, history=history, model=run.model,
                                  optimizer=run.optimizer, scaler=run.scaler, state=run.state,
                                  method_state=run.method.state_dict(), device=device,
                                  data_fingerprint=fingerprint, network=data.network_inputs(),
                                  hooks=run.hooks)
        if env.is_main:
            runs.write_metrics(folder, history)
        if progress is not None:
            progress.set_postfix(loss=f"{row['train_loss']:.3f}", test=_acc_text(row["test_acc"]))
        elif env.is_main:  # progress off (--no-progress): one line per epoch on stderr instead of nothing
            print(_epoch_line(config, row), file=sys.stderr, flush=True)
        if "epoch" in callbacks:
            callbacks["epoch"](epoch, row)
    if progress is not None:
        progress.close()
    return _finish(config, run, data, history, t_start)


def train_one_epoch(config: TrainConfig, run: RunState, data: TrainingData, epoch: int, label_prob: torch.Tensor,
                    callbacks: dict[str, Callable], progress=None) -> tuple[float, dict[str, torch.Tensor]]:
    """One pass over the training set: θ steps and the method's per-batch steps.

    What every run does, in order; a recipe's extras act through ``run.hooks``
    (:class:`sopdeep.hooks.StepHook`). Updates ``label_prob`` (N,) in place; returns the last
    learning rate and the epoch's sums over all ranks (``loss``, ``correct_noisy``,
    ``correct_clean``, and ``term_<name>`` per loss term).
    """
    order, draws = epoch_draws(config.seed, epoch, data.n, pad=run.pad, weak_view=run.augment != "none",
                               device=run.device)
    for hook in run.hooks:
        draws = hook.epoch_draws(epoch, draws)
    sums = _zero_sums(run.device)
    for step in range(run.steps_per_epoch):
        done = epoch * run.steps_per_epoch + step  # steps of the run before this one
        lr = _set_learning_rate(run.optimizer, config, done, run.steps_per_epoch)
        global_batch = order[run.bounds[step]:run.bounds[step + 1]]
        batch = _batch(config, run, data, ddp.shard(global_batch, run.env), draws)
        with run.autocast():
            out = run.method.batch_loss(run.net, batch, run.state)
        loss = callbacks["loss"](epoch, step, out.loss) if "loss" in callbacks else out.loss
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        for hook in run.hooks:
            hook.before_optimizer_step(epoch)
        run.scaler.step(run.optimizer)
        # fp16: the step's scale and overflow flag as device tensors (no host read); u, v skip with θ
        grad_scale, found_inf = scaler_signals(run.scaler, run.optimizer)
        run.scaler.update()
        run.method.after_backward(batch, out, run.state, lr, 1.0 if grad_scale is None else grad_scale,
                                  found_inf=found_inf)  # SOP: the u, v step
        for hook in run.hooks:
            hook.after_optimizer_step(done + 1, run.total_steps)
        _record(sums, label_prob, batch, out, loss, data, run, global_batch)
        if progress is not None:
            progress.update(1)
        if "step" in callbacks:
            callbacks["step"](epoch, step)
    ddp.sync_buffers(run.model, run.env)
    ddp.all_reduce_sum_(list(sums.values()), run.env)
    return lr, sums


def _set_learning_rate(optimizer, config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Set θ's learning rate of global step ``step`` on every parameter group (times its
    ``lr_scale``); return the schedule's value."""
    lr = learning_rate(config, step, steps_per_epoch)
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    return lr


def _batch(config: TrainConfig, run: RunState, data: TrainingData, idx: torch.Tensor, draws) -> Batch:
    """The mini-batch of rows ``idx``: raw images, their weak view (the epoch's draws of these
    rows), normalised, and the given labels."""
    raw = data.x_train.index_select(0, idx)
    weak = raw if draws is None else random_crop_flip(
        raw, pad=run.pad, padding_mode=config.crop_padding, draws={k: v[..., idx] for k, v in draws.items()})
    return Batch(indices=idx, images=data.normalize(weak), labels=data.y_train.index_select(0, idx), raw=raw,
                 normalize=data.normalize, mean=data.mean.flatten())


def _zero_sums(device) -> dict[str, torch.Tensor]:
    # on the device, read once per epoch: a step adds to them without waiting for the host
    return {"loss": torch.zeros((), device=device, dtype=torch.float64),
            "correct_noisy": torch.zeros((), device=device, dtype=torch.int64),
            "correct_clean": torch.zeros((), device=device, dtype=torch.int64)}


def _record(sums, label_prob, batch: Batch, out, loss, data: TrainingData, run: RunState, global_batch) -> None:
    """Add the step to the epoch's sums and ``label_prob`` (p(given label) at each sample's last
    visit, CE's noise score); under DDP, the rows other ranks updated are gathered."""
    bsz = batch.indices.numel()
    sums["loss"] += loss.detach().double() * bsz
    for name, value in out.terms.items():
        sums[f"term_{name}"] = sums.get(f"term_{name}", 0.0) + value.double() * bsz
    logits = out.logits.detach().float()
    label_prob.index_copy_(0, batch.indices, torch.softmax(logits, 1).gather(1, batch.labels[:, None])[:, 0])
    # one packed collective, as every rank knows the global batch
    ddp.sync_rows({**run.state, "label_prob": label_prob}, batch.indices, run.env, batch=global_batch)
    pred = logits.argmax(1)
    sums["correct_noisy"] += (pred == batch.labels).sum()
    sums["correct_clean"] += (pred == data.clean_train.index_select(0, batch.indices)).sum()


def _evaluate(config, run, data, epoch, lr, sums, label_prob, progress) -> dict[str, Any]:
    """The epoch's metrics row; raises NonFiniteLossError on a non-finite training loss."""
    n = data.n
    train_loss = float(sums["loss"]) / n
    if not math.isfinite(train_loss):
        if progress is not None:
            progress.close()
        raise _diverged(config, epoch, f"non-finite training loss ({train_loss})")
    last = epoch + 1 == config.epochs
    try:
        test_acc = (None if (epoch + 1) % config.eval_every and not last else  # eval_every: not measured
                    sum(int((logits.argmax(1) == y).sum()) for _, logits, y in
                        _predict(config, run, data, data.x_test, data.y_test, tta=_tta_of(config, last=last)))
                    / data.x_test.shape[0])
    except NonFiniteLossError:
        # the loss can stay finite while the logits overflow (--lr 1e12): the same divergence
        if progress is not None:
            progress.close()
        raise _diverged(config, epoch, "non-finite test-set predictions") from None
    scores = run.method.noise_scores(run.state, data.y_train, None)
    return {
        "epoch": epoch + 1,
        "lr": lr,
        "train_loss": train_loss,
        **{f"train_{key[5:]}": float(v) / n for key, v in sums.items() if key.startswith("term_")},
        "train_acc_noisy": int(sums["correct_noisy"]) / n,
        "train_acc_clean": int(sums["correct_clean"]) / n,
        "test_acc": test_acc,
        **_detection(config, data, 1.0 - label_prob if scores is None else scores, prefix="monitor_"),
    }


def _finish(config, run, data, history, t_start) -> TrainResult:
    """Per-sample outputs and summary, written to the run folder and returned."""
    probs = torch.cat([torch.softmax(logits, 1) for _, logits, _ in
                       _predict(config, run, data, data.x_train, data.y_train)])
    # the detection protocol: the method's own score, or None -> the network's 1 - p(given label)
    own = run.method.noise_scores(run.state, data.y_train, probs)
    scores = own if own is not None else 1.0 - probs.gather(1, data.y_train[:, None])[:, 0]
    samples: dict[str, np.ndarray] = {
        "given_label": data.y_train.cpu().numpy(),
        "noise_score": scores.float().cpu().numpy(),
        "has_method_score": np.full(data.n, own is not None),  # per sample, as every array of samples.npz
        "corrected_label": probs.argmax(1).cpu().numpy(),
        "pred_prob": probs.float().cpu().numpy(),
    }
    correction = run.method.correction(run.state, data.y_train, data.num_classes)
    if correction is not None:
        samples["correction"] = correction.float().cpu().numpy()
    # cleanlab's conventions, the number of issues estimated without the clean labels
    quality, ranked = run_label_issues(samples["given_label"], samples["pred_prob"],
                                       samples["noise_score"] if own is not None else None)
    samples["label_quality"] = quality
    samples["is_label_issue"] = np.zeros(quality.shape, dtype=bool)
    samples["is_label_issue"][ranked] = True
    if data.is_noisy is not None:
        samples["clean_label"] = data.clean_train.cpu().numpy()
        samples["is_noisy"] = data.is_noisy
    samples.update(data.sample_info)  # the dataset's own columns (image folders: each image's path)
    # (epoch, accuracy) of the epochs that measured it (eval_every > 1 leaves the others None)
    tests = [(row["epoch"], row["test_acc"]) for row in history if row.get("test_acc") is not None]
    best = max(tests, key=lambda t: t[1]) if tests else None  # the first epoch of the maximum
    last = history[-1] if history else {}
    summary: dict[str, Any] = {
        "method": config.method, "dataset": config.dataset,
        **applied_noise(config, data.realised_rate),  # the noise applied ("auto" resolved), not the setting
        "epochs": len(history),
        "best_test_acc": best[1] if best else None,
        "best_epoch": int(best[0]) if best else None,
        "final_test_acc": last.get("test_acc"),
        "final_train_acc_noisy": last.get("train_acc_noisy"),
        "final_train_acc_clean": last.get("train_acc_clean"),
        "wall_time_s": time.perf_counter() - t_start,
        "train_time_s": sum(row["epoch_time"] for row in history),
        "precision": run.precision, "threads": run.threads,  # what ran (amp="auto" depends on the device)
        "label_quality_from": (f"rank mean of {config.method}'s noise score and the network's 1 - p(given label)"
                               if own is not None else "the network's self-confidence p(given label) "
                               f"({config.method} has no per-sample noise score)"),
    }
    if data.is_noisy is not None:
        # the one detection summary: the run's own label_quality and is_label_issue (no threshold)
        summary.update({"final_issues_" + key: val for key, val in detection_metrics(
            1.0 - quality, samples["is_label_issue"], data.is_noisy).items()})
    if data.is_noisy is not None:
        summary["corrected_label_acc"] = float(np.mean(samples["corrected_label"] == samples["clean_label"]))
    summary = runs.strict_json(summary)  # undefined metrics (NaN) as None, printable as JSON
    if run.env.is_main:
        runs.write_samples(config.out, samples)
        runs.write_summary(config.out, summary)
    return TrainResult(config=config, model=run.model, history=history, samples=samples, summary=summary,
                       state={key: val.detach().cpu() for key, val in run.state.items()},
                       method_state=run.method.state_dict())


# ------------------------------------------------------------------------------------------------
# small pieces


def _diverged(config, epoch, what) -> NonFiniteLossError:
    """The one error of a diverged run: ``what`` went non-finite in ``epoch`` (0-based; None when
    not known); the last good checkpoint is kept (this epoch's is never written)."""
    where = f"in epoch {epoch + 1} " if epoch is not None else ""
    if epoch is None:
        kept = f"The last checkpoint written, if any, is kept in {Path(config.out) / runs.CHECKPOINT}"
    elif epoch and config.checkpoint:
        kept = f"The checkpoint of epoch {epoch} is kept in {Path(config.out) / runs.CHECKPOINT}"
    else:
        kept = "No checkpoint was kept"
    return NonFiniteLossError(
        f"{what} {where}of the run in {config.out}: training diverged, stopped. {kept}. Check the data, "
        "or start a new run in another out folder with a lower lr, alpha_u or alpha_v.")


def _tta_of(config, *, last: bool = False) -> str:
    """The test-time augmentation of an evaluation: ``config.tta`` on every one, or with
    ``tta_on="last_test"`` on the last epoch's test accuracy only."""
    return config.tta if config.tta_on == "every_evaluation" or last else "none"


@torch.no_grad()
def _predict(config, run: RunState, data: TrainingData, x: torch.Tensor, labels: torch.Tensor, *, tta=None):
    """Yield (indices, float32 logits, labels) over ``x`` in eval mode, un-augmented but for the
    test-time augmentation ``tta`` (None: :func:`_tta_of`).

    Non-finite logits (a diverged network) raise :class:`NonFiniteLossError`: nothing downstream
    (accuracy, probabilities, label issues) means anything on them.
    """
    run.model.eval()
    for lo in range(0, x.shape[0], config.eval_batch_size):
        idx = torch.arange(lo, min(lo + config.eval_batch_size, x.shape[0]), device=run.device)
        with run.autocast():
            logits = tta_logits(run.net, data.normalize(x[idx]), _tta_of(config) if tta is None else tta)
        if not bool(torch.isfinite(logits).all()):   # one sync per evaluation batch
            run.model.train()
            raise _diverged(config, None, "non-finite network outputs (logits)")
        yield idx, logits, labels[idx]
    run.model.train()


def tta_logits(net, images: torch.Tensor, tta: str) -> torch.Tensor:
    """float32 logits of ``images`` (B, C, H, W) under the test-time augmentation ``tta``.

    ``none``: ``f(x)``; ``flip``: ``(f(x) + f(x̄)) / 2``, x̄ the mirror image; ``flip_translate``
    (airbench's level 2): ``m(x) / 2 + (m(x↖) + m(x↘)) / 4``, m the flip mean and x↖, x↘ the image
    shifted by one pixel up-left and down-right (reflect padding).

    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2))
    >>> tta_logits(net, torch.zeros(3, 1, 3, 4), "flip_translate").shape
    torch.Size([3, 2])
    """
    def mirrored(x):  # the mean of the logits of x and of its mirror image
        return 0.5 * (net(x).float() + net(x.flip(-1)).float())

    if tta not in ("none", "flip", "flip_translate"):
        raise ValueError(f"tta must be none, flip or flip_translate, got {tta!r}")
    if tta == "none":
        return net(images).float()
    if tta == "flip":
        return mirrored(images)
    # flip_translate (airbench): half the flip view, a quarter each of x shifted by one pixel
    # up-left and down-right (reflect padding)
    h, w = images.shape[-2:]
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1), mode="reflect")
    return 0.5 * mirrored(images) + 0.25 * (mirrored(padded[..., :h, :w]) + mirrored(padded[..., 2:, 2:]))


def _detection(config, data: TrainingData, scores: torch.Tensor | None, *, prefix: str) -> dict[str, float]:
    """Per-epoch monitor: a noise score against the true noise mask at ``config.issue_threshold``
    (empty when unknown)."""
    if scores is None or data.is_noisy is None:
        return {}
    s = scores.detach().float().cpu().numpy()
    return {prefix + key: val for key, val in
            detection_metrics(s, s > config.issue_threshold, data.is_noisy).items()}


def _epoch_line(config, row: dict[str, Any]) -> str:
    """``epoch 3/40  loss 0.812  train acc 0.640 (given labels)  test acc 0.801  12.3 s``."""
    return (f"epoch {row['epoch']}/{config.epochs}  loss {row['train_loss']:.4f}  train acc "
            f"{row['train_acc_noisy']:.3f} (given labels)  test acc {_acc_text(row['test_acc'])}  "
            f"{row['epoch_time']:.1f} s")


def _acc_text(acc: float | None) -> str:
    """``0.801``, or ``-`` for an epoch that did not measure it (``eval_every``)."""
    return "-" if acc is None else f"{acc:.3f}"


def _progress_bar(config, env, steps_per_epoch: int, start_epoch: int):
    if not (config.progress and env.is_main):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=config.epochs * steps_per_epoch, initial=start_epoch * steps_per_epoch,
                desc=f"{config.method} {config.dataset}", unit="step", dynamic_ncols=True)
