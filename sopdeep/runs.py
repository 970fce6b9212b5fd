"""Run folders: every file :func:`sopdeep.training.train` writes, and :func:`read_run` to read them back.

A run folder holds ``config.json`` (the :class:`~sopdeep.config.TrainConfig`), ``metrics.csv`` and
``metrics.jsonl`` (one row per epoch), ``checkpoint.pt`` (everything a resume needs),
``samples.npz`` (per-sample outputs), ``summary.json`` and ``curves.png`` (the metrics drawn after
every epoch, :mod:`sopdeep.curves`; ``tensorboard/`` too with ``tensorboard=True``);
:func:`load_model` rebuilds the trained network from ``config.json`` and ``checkpoint.pt``. Every file is written atomically
(:func:`sopcommon.atomic_path`): a kill leaves the previous version or the new one, never a
truncated file. JSON files are strict: undefined metrics (NaN) are written as ``null``.

A folder belongs to one run: :func:`lock_folder` holds an exclusive ``fcntl.flock`` on its
``.lock`` file for the whole run, :func:`open_run` refuses a folder that holds another run's
results and writes nothing (the trainer writes ``config.json`` once the data are loaded and the
network is built), and stale temporary files of killed runs are removed.

A checkpoint file is a header (:data:`_MAGIC`, the SHA-256 of the payload) followed by the
``torch.save`` payload, loaded with ``weights_only=True`` only (tensors, state dicts, numbers and
strings: no code in a file can run). A damaged, truncated or empty file is refused. The payload
records a fingerprint of the training images and noisy labels (:func:`data_fingerprint`); a
resume on different data is refused.

Errors: every problem with a run folder or a resume raises a :class:`RunError` subclass whose
message names the file and says what to do.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> write_summary(folder, {"best_test_acc": 0.9, "det_precision": float("nan")})
>>> json.loads((folder / SUMMARY).read_text())
{'best_test_acc': 0.9, 'det_precision': None}
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sopcommon import atomic_path, atomic_savez, atomic_write_bytes, remove_stale_temporaries
from sopcommon import lock_folder as common_lock_folder
from sopcommon.cli import one_line
from sopcommon.files import DataFileError, read_json, read_npz
from sopdeep.config import TrainConfig
from sopdeep.curves import CURVES, check_tensorboard, update_run  # imports matplotlib only when it draws
from sopdeep.models import build_model

__all__ = ["RunRecord", "read_run", "read_history", "read_samples", "saved_config", "load_model", "lock_folder",
           "open_run", "data_fingerprint",
           "check_fingerprint", "write_config", "write_metrics", "write_samples", "write_summary",
           "strict_json", "write_checkpoint", "load_checkpoint", "restore_checkpoint",
           "RunError", "RunFolderError", "RunFileError", "CheckpointError", "ResumeMismatchError", "NonFiniteLossError",
           "CONFIG", "METRICS_CSV", "METRICS_JSONL", "CHECKPOINT", "SAMPLES", "SUMMARY", "LOCK"]

CONFIG, METRICS_CSV, METRICS_JSONL = "config.json", "metrics.csv", "metrics.jsonl"
CHECKPOINT, SAMPLES, SUMMARY, LOCK = "checkpoint.pt", "samples.npz", "summary.json", ".lock"
#: files that mean a folder holds a run's results (config.json alone does not)
RESULTS = (CHECKPOINT, METRICS_CSV, METRICS_JSONL, SAMPLES, SUMMARY)

# keys that may differ between the saved config and the one passed with resume=True
# (epochs: a resume may extend a run on purpose; eval_every only decides which epochs measure the
# test set, never what is trained)
_RESUME_FREE_KEYS = ("progress", "device", "out", "data_root", "cache_path", "cifar_n_path", "epochs", "threads",
                     "tensorboard", "eval_every")
_MAGIC = b"SOPDEEP-CHECKPOINT-1\n"  # then 64 hex digits of SHA-256, a newline, the payload


class RunError(Exception):
    """A run could not start or continue; the message names the file and what to do."""


class RunFolderError(RunError):
    """The run folder is in use by another run, holds another run's results, or has nothing to resume."""


class CheckpointError(RunError):
    """A checkpoint file is empty, damaged, or not a sopdeep checkpoint."""


class RunFileError(RunError, DataFileError):
    """A file of a run folder read back (config, metrics, samples, summary) is damaged or incomplete."""


class ResumeMismatchError(RunError, ValueError):
    """The configuration or the training data differ from those the checkpoint was made with."""


class NonFiniteLossError(RunError, FloatingPointError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class RunRecord:
    """A finished run read back from its folder by :func:`read_run`.

    Attributes
    ----------
    config : TrainConfig
    history : list of dict
        One row per epoch (``metrics.jsonl``); undefined metrics are ``nan``.
    samples : dict of ndarray
        Per-sample outputs (``samples.npz``), e.g. ``noise_score`` of shape (N,).
    summary : dict
        ``summary.json``; undefined values are None.
    """

    config: TrainConfig
    history: list[dict[str, Any]]
    samples: dict[str, np.ndarray]
    summary: dict[str, Any]


def read_run(folder) -> RunRecord:
    """Read the config, metric history, per-sample outputs and summary of a finished run."""
    folder = Path(folder)
    missing = [name for name in (CONFIG, METRICS_JSONL, SAMPLES, SUMMARY) if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} is not a finished run folder: {', '.join(missing)} missing")
    config = _read_config(folder / CONFIG)
    history = read_history(folder)
    samples = read_samples(folder)
    summary = _as_run_file(read_json, folder / SUMMARY, what="run summary")
    if not isinstance(summary, dict):
        raise RunFileError(folder / SUMMARY, "damaged run summary: not a JSON object")
    return RunRecord(config=config, history=history, samples=samples, summary=summary)


def read_samples(folder, keys=()) -> dict[str, np.ndarray]:
    """The per-sample outputs of ``folder/samples.npz`` (no pickles), each with one row per training
    image; :class:`RunFileError` naming the file when it is missing, damaged, lacks one of ``keys``
    or holds arrays of different lengths."""
    path = Path(folder) / SAMPLES
    samples = _as_run_file(read_npz, path, keys=keys, what="run's per-sample outputs")
    lengths = {key: a.shape[0] if a.ndim else None for key, a in samples.items()}
    if not samples or len(set(lengths.values())) != 1 or None in lengths.values():
        # every per-sample array has one row per training image
        raise RunFileError(path, f"damaged run outputs: arrays of lengths {lengths}; "
                                 "delete the run folder and train again")
    if next(iter(lengths.values())) == 0:
        raise RunFileError(path, "empty run outputs: no samples; delete the run folder and train again")
    return samples


def _as_run_file(reader, path: Path, **kwargs):
    # the shared readers' DataFileError, as the RunError family the trainer and CLI catch
    try:
        return reader(path, **kwargs)
    except RunFileError:
        raise
    except DataFileError as exc:
        raise RunFileError(exc.path, exc.problem) from exc


def _read_config(path: Path) -> TrainConfig:
    # one reader of config.json: damaged, non-UTF-8 or not a TrainConfig -> RunFileError naming it
    data = _as_run_file(read_json, path, what="run configuration")
    if not isinstance(data, dict):
        raise RunFileError(path, "damaged run configuration: not a JSON object")
    try:
        return TrainConfig.from_dict(data)
    except (ValueError, TypeError) as exc:
        raise RunFileError(path, f"not a run configuration ({one_line(str(exc), limit=200)})") from exc


def read_history(folder) -> list[dict[str, Any]]:
    """The per-epoch metric rows of ``folder/metrics.jsonl`` so far (null read back as NaN); also of
    an unfinished run. :class:`RunFileError` naming the file and the line when one is damaged."""
    path = Path(folder) / METRICS_JSONL
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
    except FileNotFoundError as exc:
        raise RunFileError(path, "no such metric history") from exc
    except UnicodeDecodeError as exc:
        raise RunFileError(path, f"damaged metric history: not UTF-8 text (byte {exc.start})") from exc
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise RunFileError(path, f"damaged metric history: line {number} is not JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise RunFileError(path, f"damaged metric history: line {number} is not a JSON object")
        rows.append({k: float("nan") if v is None else v for k, v in row.items()})
    return rows


def saved_config(folder) -> TrainConfig:
    """The TrainConfig of the run in ``folder``: its ``config.json``, else the copy in its checkpoint.

    ``train(saved_config("runs/x").replace(epochs=200), resume=True)`` extends a run.
    :class:`RunFolderError` naming the file when the folder holds neither, or only a damaged one.
    """
    folder = Path(folder)
    config_path, ckpt_path = folder / CONFIG, folder / CHECKPOINT
    problem = f"{folder} holds no saved run (no {CONFIG}, no {CHECKPOINT}): check the out folder."
    if config_path.is_file():
        try:
            return _read_config(config_path)
        except RunFileError as exc:  # damaged, not UTF-8, not JSON or not a TrainConfig
            problem = f"{config_path} is damaged or not a run configuration ({exc.problem}); fix or delete that file."
    if ckpt_path.is_file():
        return TrainConfig.from_dict(json.loads(load_checkpoint(ckpt_path)["config"]))
    raise RunFolderError(problem)


@contextmanager
def lock_folder(folder, *, enabled: bool = True):
    """Hold an exclusive lock on ``folder`` (its ``.lock`` file; the folder is created) for the block.

    :func:`sopcommon.lock_folder` on :data:`LOCK`; raises :class:`RunFolderError` at once when
    another process holds it, or when the folder or its lock file cannot be created.
    """
    if not enabled:
        yield
        return
    folder = Path(folder)
    with ExitStack() as stack:
        try:  # only the taking of the lock: errors of the block itself pass through unchanged
            stack.enter_context(common_lock_folder(folder, lock_file=LOCK, locked_error=_locked))
        except OSError as exc:
            raise RunFolderError(f"cannot use {folder} as a run folder: {exc.strerror}; "
                                 "choose another out folder.") from None
        yield


def _locked(folder: Path, lock: Path) -> RunFolderError:
    return RunFolderError(f"{folder} is in use by another run (it holds the lock {lock}); "
                          "wait for it to finish or choose another out folder.")


def open_run(folder, config: TrainConfig, *, resume: bool, clean: bool = True) -> dict[str, Any] | None:
    """Check that ``config`` may run in ``folder``; return the checkpoint to resume from, or None.

    Writes nothing; with ``clean`` (call it holding :func:`lock_folder`) stale temporary files of
    killed runs (``.<name>.*.tmp``) are removed. Without ``resume`` a folder holding results
    raises :class:`RunFolderError`; with it, a missing checkpoint does too, and a checkpoint made
    with another configuration (other than paths, device, progress, or fewer epochs) raises
    :class:`ResumeMismatchError`. ``config.tensorboard`` where the tensorboard package cannot be
    imported raises ``ValueError`` (:func:`sopdeep.curves.check_tensorboard`).
    """
    folder = Path(folder)
    if config.tensorboard:  # asked for and absent: refused before anything is written or loaded
        check_tensorboard()
    if clean:  # only the run files' own temporaries: the folder may hold the user's files too
        remove_stale_temporaries(folder, (CONFIG, CURVES, *RESULTS))
    path = folder / CHECKPOINT
    if not resume:
        found = [name for name in RESULTS if (folder / name).exists()]
        if found:
            hint = ("pass resume=True (--resume) to continue that run, or " if path.exists() else "")
            raise RunFolderError(f"{folder} holds another run's results ({', '.join(found)}); {hint}"
                                 "choose another out folder (nothing was overwritten).")
        return None
    if not path.exists():
        raise RunFolderError(f"cannot resume: {path} does not exist. Check the out folder, "
                             "or start a new run without resume (--resume).")
    ckpt = load_checkpoint(path)
    saved = TrainConfig.from_dict(json.loads(ckpt["config"]))
    given = config.to_dict()
    diff = {k: (v, given.get(k)) for k, v in saved.to_dict().items()
            if k not in _RESUME_FREE_KEYS and given.get(k) != v}
    if diff:
        raise ResumeMismatchError(f"config differs from the checkpoint's in {diff} (saved, given) for {path}; "
                                  "resume with the saved config (sopdeep.runs.saved_config) or start a new run "
                                  "in another out folder.")
    if config.epochs < int(ckpt["epoch"]):
        raise ResumeMismatchError(f"epochs={config.epochs} is fewer than the {ckpt['epoch']} epochs already "
                                  f"done in {path}; resume with epochs >= {ckpt['epoch']}.")
    return ckpt


def data_fingerprint(images: np.ndarray, labels: np.ndarray) -> str:
    """SHA-256 (hex) of the training images (uint8) and the given labels (int64), shapes included."""
    images = np.ascontiguousarray(images)
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    h = hashlib.sha256(f"{images.dtype}{images.shape}{labels.shape}".encode())
    h.update(memoryview(images).cast("B"))
    h.update(memoryview(labels).cast("B"))
    return h.hexdigest()


def check_fingerprint(ckpt: dict[str, Any], fingerprint: str, folder) -> None:
    """:class:`ResumeMismatchError` unless the checkpoint was made on data with ``fingerprint``."""
    if ckpt["data_fingerprint"] != fingerprint:
        raise ResumeMismatchError(
            f"the training images or labels differ from those {Path(folder) / CHECKPOINT} was made with "
            "(data_root, noise, noise_seed, train_subset or the data files changed); resume with the same "
            "data, or start a new run in another out folder.")


def strict_json(obj: Any) -> Any:
    """Non-finite floats to None (JSON ``null``), recursively: Python would write ``NaN``.

    >>> strict_json({"precision": float("nan"), "acc": [0.5, float("inf")]})
    {'precision': None, 'acc': [0.5, None]}
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    return obj


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(strict_json(obj), indent=2, sort_keys=True, allow_nan=False).encode())


def write_config(folder, config: TrainConfig) -> None:
    """``config.json``: the run's TrainConfig."""
    atomic_write_bytes(Path(folder) / CONFIG, config.to_json().encode())


def write_metrics(folder, history: list[dict[str, Any]]) -> None:
    """``metrics.csv`` and ``metrics.jsonl`` rewritten from the whole history (a resumed run never
    duplicates rows), then ``curves.png`` redrawn from it and, when the run's ``config.json`` asks
    for TensorBoard, the last row logged (:func:`sopdeep.curves.update_run`: a picture that cannot
    be drawn only warns)."""
    if not history:
        return
    keys = list(history[0])
    for row in history[1:]:
        keys += [k for k in row if k not in keys]
    with atomic_path(Path(folder) / METRICS_CSV) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
    lines = [json.dumps(strict_json(row), allow_nan=False) + "\n" for row in history]
    atomic_write_bytes(Path(folder) / METRICS_JSONL, "".join(lines).encode())
    update_run(folder, history)


def write_samples(folder, samples: dict[str, np.ndarray]) -> None:
    """``samples.npz``: the per-sample outputs (uncompressed)."""
    atomic_savez(Path(folder) / SAMPLES, samples)


def write_summary(folder, summary: dict[str, Any]) -> None:
    """``summary.json``, strict JSON."""
    _write_json(Path(folder) / SUMMARY, summary)


def write_checkpoint(folder, *, epoch: int, config: TrainConfig, history, model, optimizer, scaler,
                     state: dict[str, torch.Tensor], method_state: dict[str, torch.Tensor],
                     device: torch.device, data_fingerprint: str, network: dict[str, Any] | None = None,
                     hooks=()) -> None:
    """``checkpoint.pt``: model, optimiser, scaler, per-sample and method state, RNG states, config,
    history, the data fingerprint and the number of epochs done, with its SHA-256; the state of
    each step hook that has one (:class:`sopdeep.hooks.StepHook`, by name: the lookahead's slow copy).

    ``network`` (:meth:`sopdeep.training.TrainingData.network_inputs`: ``num_classes``,
    ``in_channels``, ``image_size``, ``mean``, ``std``) is what :func:`load_model` rebuilds the
    network from; it is stored as JSON text, which ``weights_only`` loading accepts.
    """
    payload = {
        "epoch": epoch,
        "data_fingerprint": data_fingerprint,
        "config": config.to_json(),
        "history": json.dumps(history),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler.is_enabled() else {},
        "state": {key: val.detach().cpu() for key, val in state.items()},
        "method": method_state,
        "rng_cpu": torch.get_rng_state(),
    }
    if network is not None:
        payload["network"] = json.dumps(network)
    for hook in hooks:
        hook_state = hook.state_dict()
        if hook_state:
            payload[hook.name] = hook_state  # "lookahead": the key of checkpoints written before hooks
    if device.type == "cuda":
        payload["rng_cuda"] = torch.cuda.get_rng_state(device)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    body = buffer.getvalue()
    atomic_write_bytes(Path(folder) / CHECKPOINT,
                       _MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n" + body)


def load_checkpoint(path) -> dict[str, Any]:
    """Load a checkpoint after checking its SHA-256; :class:`CheckpointError` when it is empty,
    damaged or not a sopdeep checkpoint. ``torch.load(weights_only=True)`` only."""
    path = Path(path)
    blob = path.read_bytes()
    what = "delete it to start the run again, or restore a good copy"
    if not blob:
        raise CheckpointError(f"{path} is empty (0 bytes): {what}.")
    head = len(_MAGIC) + 65
    if not blob.startswith(_MAGIC):
        raise CheckpointError(f"{path} is not a sopdeep checkpoint of this version (no checksum header): {what}.")
    digest, body = blob[len(_MAGIC):head - 1].decode("ascii", "replace"), blob[head:]
    if hashlib.sha256(body).hexdigest() != digest:
        raise CheckpointError(f"{path} is damaged (its SHA-256 does not match; truncated or altered): {what}.")
    try:
        return torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
    except Exception as exc:  # a payload that hashes right but does not load: written by another tool
        raise CheckpointError(f"{path} could not be loaded ({exc}): {what}.") from None


def restore_checkpoint(ckpt: dict[str, Any], *, model, optimizer, scaler, state, method,
                       device: torch.device, hooks=()) -> tuple[list[dict[str, Any]], int]:
    """Load ``ckpt`` into the run's objects (in place); return (history, epochs done)."""
    model.load_state_dict(ckpt["model"])
    for hook in hooks:
        if hook.state_dict():  # a hook with state (the lookahead's slow copy) needs the checkpoint's
            try:
                hook.load_state_dict(ckpt.get(hook.name, {}))
            except ValueError as exc:
                raise CheckpointError(str(exc)) from None
    optimizer.load_state_dict(ckpt["optimizer"])
    if scaler.is_enabled() and ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])
    for key in state:
        state[key].copy_(ckpt["state"][key].to(device))
    if ckpt.get("method"):
        method.load_state_dict(ckpt["method"])
    torch.set_rng_state(ckpt["rng_cpu"])
    if device.type == "cuda" and "rng_cuda" in ckpt:
        torch.cuda.set_rng_state(ckpt["rng_cuda"], device)
    return json.loads(ckpt["history"]), int(ckpt["epoch"])


class _Standardize(torch.nn.Module):
    """(x - mean) / std per channel, x in pixel units (B, C, H, W): the run's input standardisation."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x):
        # the formula of sopdeep.training.TrainingData.normalize, so the outputs agree bit for bit
        return (x.float() - self.mean) / self.std


def load_model(folder, *, pixels: bool = False, device="cpu") -> torch.nn.Module:
    """The trained network of the run in ``folder``, in eval mode, with the weights of its last checkpoint.

    Rebuilt from ``config.json`` (:func:`saved_config`: architecture, width, depth) and
    ``checkpoint.pt`` (the weights, the class count and the image shape it was trained for); no
    data are read.

    Parameters
    ----------
    folder : str or Path
        A run folder written by :func:`sopdeep.training.train` with ``checkpoint=True`` (the default).
    pixels : bool, default False
        False: the network itself, fed as the run fed it: float images (B, C, H, W) standardised
        per channel, ``(x - mean) / std`` with the run's statistics
        (:meth:`sopdeep.training.TrainingData.normalize`). True: that standardisation first, so the
        module takes images in pixel units, uint8 or float in [0, 255], (B, C, H, W).
    device : str or torch.device, default "cpu"

    Returns
    -------
    torch.nn.Module
        In eval mode; maps images to logits (B, K). The run's final predictions (``samples.npz``:
        ``pred_prob``) are ``softmax(load_model(folder, pixels=True)(x_train))`` when the run used
        ``tta="none"`` (``"flip"`` also averages the logits of the mirror images) and fp32
        (``amp="off"``; bf16 / fp16 runs predicted in that precision).

    Raises
    ------
    ValueError
        One line naming the file: no such folder, no saved configuration, no checkpoint (the run
        had ``checkpoint=False`` or no epoch finished), a damaged checkpoint, one written before
        checkpoints recorded the network's inputs, or weights that do not fit the architecture.

    Examples
    --------
    ::

        net = load_model("runs/x", pixels=True)
        logits = net(torch.from_numpy(images_nhwc_uint8).permute(0, 3, 1, 2))
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"cannot load a model from {folder}: no such run folder")
    path = folder / CHECKPOINT
    try:
        config = saved_config(folder)
        if not path.is_file():
            raise RunFolderError(f"{path} does not exist (the run had checkpoint=false, or stopped before its "
                                 "first epoch ended): train it with checkpoint=true")
        ckpt = load_checkpoint(path)
    except (RunError, OSError, ValueError) as exc:
        raise ValueError(f"cannot load a model from {folder}: {one_line(str(exc), limit=300)}") from None
    if "network" not in ckpt:
        raise ValueError(f"cannot load a model from {folder}: {path} was written before checkpoints recorded the "
                         "network's inputs; build it with sopdeep.training.make_model and load_state_dict(load_checkpoint"
                         "(path)['model'])")
    net = json.loads(ckpt["network"])
    # the width / depth rule of sopdeep.training.setup.make_model (0: the architecture's default)
    options = {key: getattr(config, key) for key in ("width", "depth") if getattr(config, key)}
    try:
        model = build_model(config.arch, net["num_classes"], in_channels=net["in_channels"],
                            image_size=tuple(net["image_size"]), **options)
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError, ValueError) as exc:
        raise ValueError(f"cannot load a model from {folder}: the weights of {path} do not fit arch={config.arch!r} "
                         f"of {folder / CONFIG} ({one_line(str(exc), limit=200)})") from None
    if pixels:
        model = torch.nn.Sequential(_Standardize(net["mean"], net["std"]), model)
    return model.to(device).eval()
