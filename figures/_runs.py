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

__all__ = ["_read_run", "ensure_runs", "load_run_model", "run_data"]


def _read_run(folder):
    """Read a finished run folder.

    Returns
    -------
    dict
        ``config`` (dict of config.json), ``history`` (list of per-epoch dicts of metrics.jsonl),
        ``samples`` (dict of arrays of samples.npz), ``summary`` (dict of summary.json).

    Raises
    ------
    FileNotFoundError
        If the folder has no summary.json (the run has not finished).
    """
    folder = Path(folder)
    if not (folder / "summary.json").exists():
        raise FileNotFoundError(f"{folder} has no summary.json: the run has not finished")
    history = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
    with np.load(folder / "samples.npz") as z:
        samples = {key: z[key] for key in z.files}
    return {"config": json.loads((folder / "config.json").read_text()), "history": history,
            "samples": samples, "summary": json.loads((folder / "summary.json").read_text())}


def _train_one(config_json: str, threads: int) -> str:
    import torch

    from sopdeep.config import TrainConfig
    from sopdeep.trainer import train

    if threads:
        torch.set_num_threads(threads)
    from sopdeep.trainer import NonFiniteLossError

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
    history = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return {"config": json.loads((folder / "config.json").read_text()), "history": history,
            "samples": None, "summary": None, "partial": True}


def ensure_runs(configs, *, jobs=1, threads=1, progress=True, train=True):
    """Train every config whose ``out`` folder lacks ``summary.json`` (resuming from a checkpoint).

    Parameters
    ----------
    configs : list of sopdeep.config.TrainConfig
    jobs : int, default 1
        Runs trained in parallel (separate processes).
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
        :func:`_read_run` of each config's folder, in order; None for a run stopped by a
        non-finite loss (its folder holds ``failed.json`` with the error, so it is not retried).
    """
    todo = [c for c in configs if not _done(Path(c.out))]
    if not train:
        return [_read_run(c.out) if (Path(c.out) / "summary.json").exists() else _read_partial(c.out)
                for c in configs]
    if todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="deep runs", disable=not progress)
        if jobs > 1 and len(todo) > 1:
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                for _ in pool.map(_train_one, [c.to_json() for c in todo], [threads] * len(todo)):
                    bar.update(1)
        else:
            for c in todo:
                _train_one(c.to_json(), threads)
                bar.update(1)
        bar.close()
    return [None if (Path(c.out) / FAILED).exists() else _read_run(c.out) for c in configs]


def run_data(config):
    """The training images (normalised as the trainer does, float32 NCHW), the noisy labels, the
    clean labels and the noise mask of a run's config (same subset and noise as the trainer).
    """
    import torch

    from sopdeep.trainer import _to_device_data, load_data

    ds, noisy = load_data(config)
    data = _to_device_data(ds, noisy, torch.device("cpu"))
    x = (data.x_train.float() - data.mean) / data.std
    return x, data.y_train.numpy(), data.clean_train.numpy(), np.asarray(noisy.is_noisy, dtype=bool), data.num_classes


def load_run_model(config, *, trained=True):
    """The network of a run: at initialisation (rebuilt with the run's seed exactly as the trainer
    builds it) or trained (the state dict of the folder's ``checkpoint.pt``), in eval mode."""
    import torch

    from sopdeep.checkpoint import load_checkpoint
    from sopdeep.models import build_model

    ds_shape = {"fashion-mnist": (1, 28), "synthetic": (1, 8)}.get(config.dataset, (3, 32))
    options = {key: getattr(config, key) for key in ("width", "depth") if getattr(config, key)}
    num_classes = 4 if config.dataset == "synthetic" else 10
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build_model(config.arch, num_classes, in_channels=ds_shape[0], image_size=ds_shape[1], **options)
    if trained:
        model.load_state_dict(load_checkpoint(Path(config.out) / "checkpoint.pt")["model"])
    return model.eval()


def env_threads():
    """Threads per run from ``OMP_NUM_THREADS`` (default 1)."""
    return int(os.environ.get("OMP_NUM_THREADS", "1") or 1)


def save_figure(fig, out_dir, name):
    """Write ``fig`` as ``out_dir/name.png`` and ``.pdf`` (150 dpi), close it, return the paths."""
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    fig.tight_layout()
    for p in paths:
        fig.savefig(p, dpi=150)
    plt.close(fig)
    return paths


def figure_parser(doc, *, data_dir, extra_settings=False):
    """The command line shared by the bridge figures (--out, --quick, --data-dir, --runs-dir,
    --cache-dir, --n-samples, --plot-only; with ``extra_settings`` also --settings and
    --train-settings)."""
    import argparse

    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--out", default="results/figures")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--data-dir", default=data_dir)
    p.add_argument("--runs-dir", default="runs/figures")
    p.add_argument("--cache-dir", default="/work/cache", help="where the decoded CIFAR-10 npz is kept")
    p.add_argument("--n-samples", type=int, default=1000, help="samples of the two-class subset")
    p.add_argument("--plot-only", action="store_true")
    if extra_settings:
        p.add_argument("--settings", default="fashion-mnist,cifar10n-worst")
        p.add_argument("--train-settings", default="fashion-mnist,cifar10n-worst",
                       help="settings whose runs are trained to the end (others: read as far as they got)")
    return p


def run_figure(compute, plot, data_file, args):
    """compute (unless ``--plot-only``) then plot, from the parsed ``figure_parser`` arguments;
    returns the data path. Options a compute does not take are ignored by it."""
    data = Path(args.out) / data_file
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if not args.plot_only:
        extra = {}
        if getattr(args, "settings", None):
            extra = {"settings": tuple(args.settings.split(",")),
                     "train_settings": tuple(args.train_settings.split(","))}
        compute(data, quick=args.quick, data_dir=args.data_dir, runs_dir=args.runs_dir, cache_dir=args.cache_dir,
                n_samples=args.n_samples, jobs=getattr(args, "jobs", 1), **extra)
    print(*plot(data, args.out), sep="\n")
    return data
