"""Cached deep runs behind the bridge figures: read a run folder, train one only when needed.

A run folder is an ordinary ``sopdeep`` output folder (``config.json``, ``metrics.jsonl``,
``samples.npz``, ``summary.json``, ``checkpoint.pt``). A folder that already holds its
``summary.json`` is reused as is (a rerun only redraws); one with a checkpoint but no summary is
resumed from the checkpoint. Point ``runs_dir`` at your own (e.g. GPU) runs to reuse them.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

__all__ = ["read_run_folder", "ensure_runs", "load_run_model", "run_data", "FAILED"]


def read_run_folder(folder):
    """Read a finished run folder through :func:`sopdeep.runs.read_run`.

    Returns
    -------
    dict
        ``config`` (dict of config.json), ``history`` (list of per-epoch dicts of metrics.jsonl),
        ``samples`` (dict of arrays of samples.npz), ``summary`` (dict of summary.json).

    Raises
    ------
    FileNotFoundError
        If the folder is not a finished run (e.g. no summary.json yet).
    """
    from sopdeep.runs import read_run

    record = read_run(folder)
    return {"config": record.config.to_dict(), "history": record.history, "samples": record.samples,
            "summary": record.summary}


def _train_one(config_json: str, threads: int) -> str:
    import torch

    from sopdeep.config import TrainConfig
    from sopdeep.training import train

    if threads:
        torch.set_num_threads(threads)
    from sopdeep.training import NonFiniteLossError

    config = TrainConfig.from_dict(json.loads(config_json))
    out = Path(config.out)
    if not _done(out):
        try:
            train(config, resume=(out / "checkpoint.pt").exists())
        except NonFiniteLossError as err:  # a measured outcome (e.g. too large an alpha): cached
            (out / FAILED).write_text(json.dumps({"error": str(err)}))
    return config.out


FAILED = "failed.json"


def _done(folder):
    return (folder / "summary.json").exists() or (folder / FAILED).exists()


def _read_partial(folder):
    """An unfinished run: its config and the epochs of metrics.jsonl so far (no samples/summary)."""
    folder = Path(folder)
    if not (folder / "metrics.jsonl").exists():
        return None
    from sopdeep.runs import read_history, saved_config

    return {"config": saved_config(folder).to_dict(), "history": read_history(folder),
            "samples": None, "summary": None, "partial": True}


def ensure_runs(configs, *, n_jobs=1, threads=1, progress=True, train=True):
    """Train every config whose ``out`` folder lacks ``summary.json`` (resuming from a checkpoint).

    Parameters
    ----------
    configs : list of sopdeep.config.TrainConfig
    n_jobs : int, default 1
        Runs trained in parallel (separate processes); -1: one per CPU core.
    threads : int, default 1
        torch CPU threads per run (0 = torch's default).
    progress : bool, default True
        A tqdm bar over the runs.
    train : bool, default True
        False: train nothing; an unfinished run is read as far as it got (``partial=True``, no
        samples or summary), a run never started gives None.

    Returns
    -------
    list of dict or None
        :func:`read_run_folder` of each config's folder, in order; None for a run stopped by a
        non-finite loss (its folder holds ``failed.json`` with the error, so it is not retried).
    """
    todo = [c for c in configs if not _done(Path(c.out))]
    if not train:
        return [read_run_folder(c.out) if (Path(c.out) / "summary.json").exists() else _read_partial(c.out)
                for c in configs]
    if todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="deep runs", disable=not progress)
        if n_jobs == -1:  # joblib's convention, as the phase grids
            n_jobs = os.cpu_count() or 1
        if n_jobs > 1 and len(todo) > 1:
            with ProcessPoolExecutor(max_workers=min(n_jobs, len(todo))) as pool:
                for _ in pool.map(_train_one, [c.to_json() for c in todo], [threads] * len(todo)):
                    bar.update(1)
        else:
            for c in todo:
                _train_one(c.to_json(), threads)
                bar.update(1)
        bar.close()
    return [None if (Path(c.out) / FAILED).exists() else read_run_folder(c.out) for c in configs]


def run_data(config, data=None):
    """The training images (normalised as the trainer does, float32 NCHW), the noisy labels, the
    clean labels, the noise mask and the number of classes of a run's config (same subset and
    noise as the trainer: :func:`sopdeep.training.training_data`, or ``data`` when given).
    """
    from sopdeep.training import training_data

    data = training_data(config) if data is None else data
    is_noisy = np.zeros(data.n, bool) if data.is_noisy is None else np.asarray(data.is_noisy, dtype=bool)
    return (data.normalize(data.x_train), data.y_train.numpy(), data.clean_train.numpy(), is_noisy,
            data.num_classes)


def load_run_model(config, *, trained=True, data=None):
    """The network of a run: at initialisation (:func:`sopdeep.training.make_model`, the run's
    seed, exactly as the trainer builds it) or trained (the state dict of the folder's
    ``checkpoint.pt``), in eval mode. ``data``: the run's :func:`sopdeep.training.training_data`
    (loaded when None; only its shapes are used)."""
    from sopdeep.runs import load_checkpoint
    from sopdeep.training import make_model, training_data

    data = training_data(config) if data is None else data
    model = make_model(config, data.num_classes, data.x_train.shape[1], tuple(data.x_train.shape[2:]))
    if trained:
        model.load_state_dict(load_checkpoint(Path(config.out) / "checkpoint.pt")["model"])
    return model.eval()
