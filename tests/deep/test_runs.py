"""Run folders: one run per folder (lock, no overwrite, nothing written before the run starts),
stale temporaries removed, checkpoint integrity, safe resume (checkpoint required, same config
but more epochs allowed, same data), read_run / saved_config, strict-JSON summary."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from sopdeep import runs
from sopdeep.config import TrainConfig
from sopdeep.runs import (CheckpointError, NonFiniteLossError, ResumeMismatchError, RunError, RunFolderError,
                          load_checkpoint, read_run, saved_config)
from sopdeep.training import train

REPO = Path(__file__).resolve().parents[2]


def _tiny(tmp_path, name="run", **kw):
    base = dict(dataset="synthetic", arch="mlp", width=16, epochs=1, batch_size=64, lr=0.05,
                schedule="constant", noise="sym", noise_rate=0.4, device="cpu", progress=False,
                out=str(tmp_path / name))
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 1-epoch run with a checkpoint (copied by the tests that change it)."""
    tmp = tmp_path_factory.mktemp("finished")
    cfg = _tiny(tmp)
    res = train(cfg)
    return cfg, res


def _copy(finished, tmp_path, name="copy"):
    cfg, _ = finished
    shutil.copytree(cfg.out, tmp_path / name)
    return cfg.replace(out=str(tmp_path / name))


# -- a folder belongs to one run ----------------------------------------------------------------


def test_read_run_gives_back_what_train_returned(finished):
    cfg, res = finished
    rec = read_run(cfg.out)
    assert rec.config == cfg and rec.summary == res.summary
    assert json.dumps(rec.history) == json.dumps(res.history)  # NaN-aware exact comparison
    for key, value in res.samples.items():
        assert np.array_equal(rec.samples[key], value), key
    assert saved_config(cfg.out) == cfg


def test_a_finished_run_without_checkpoint_is_never_replaced(tmp_path):
    cfg = _tiny(tmp_path, checkpoint=False)
    train(cfg)
    before = {p.name: p.read_bytes() for p in Path(cfg.out).iterdir()}
    with pytest.raises(RunFolderError, match="holds another run's results.*another out folder"):
        train(cfg.replace(seed=1))
    assert {p.name: p.read_bytes() for p in Path(cfg.out).iterdir()} == before


def test_a_failing_run_does_not_touch_the_finished_runs_config(tmp_path):
    cfg = _tiny(tmp_path, dataset="npz", data_root=str(_npz(tmp_path / "a.npz", seed=0)))
    train(cfg)
    before = {p.name: p.read_bytes() for p in Path(cfg.out).iterdir()}
    # data_root may differ on resume (a moved copy), so this run gets as far as loading the data
    with pytest.raises((OSError, ValueError)):
        train(cfg.replace(data_root=str(tmp_path / "missing.npz")), resume=True)
    assert {p.name: p.read_bytes() for p in Path(cfg.out).iterdir()} == before


def test_a_second_concurrent_run_into_the_same_folder_fails_at_once(tmp_path):
    cfg = _tiny(tmp_path, epochs=1)
    release = tmp_path / "release"
    script = textwrap.dedent(f"""
        import json, sys, time
        from pathlib import Path
        sys.path.insert(0, {str(REPO)!r})
        from sopdeep.config import TrainConfig
        from sopdeep.training import train

        def step(epoch, i):
            Path({str(tmp_path / "started")!r}).touch()
            while not Path({str(release)!r}).exists():
                time.sleep(0.05)

        train(TrainConfig.from_dict(json.loads({cfg.to_json()!r})), callbacks={{"step": step}})
    """)
    first = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "started").exists():
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        t0 = time.monotonic()
        with pytest.raises(RunFolderError, match="in use by another run"):
            train(cfg)
        assert time.monotonic() - t0 < 10  # refused before loading data or building anything
    finally:
        release.touch()
        first.wait(timeout=120)
    assert first.returncode == 0
    assert read_run(cfg.out).config == cfg  # the first run's results, whole


def test_stale_temporaries_of_killed_runs_are_removed(finished, tmp_path):
    cfg = _copy(finished, tmp_path)
    stale = [Path(cfg.out) / ".samples.npz.k1ll3d.tmp", Path(cfg.out) / ".checkpoint.pt.x9.tmp"]
    for path in stale:
        path.write_bytes(b"half")
    other = Path(cfg.out) / ".notes.tmp"
    other.write_text("not ours")
    train(cfg, resume=True)
    assert not any(path.exists() for path in stale) and other.exists()


# -- resume is safe -----------------------------------------------------------------------------


def test_resume_without_a_checkpoint_is_refused(tmp_path):
    cfg = _tiny(tmp_path, name="mistyped")
    with pytest.raises(RunFolderError, match="cannot resume: .*checkpoint.pt does not exist"):
        train(cfg, resume=True)
    assert not any(p.name != ".lock" for p in Path(cfg.out).iterdir())  # nothing started


def test_resume_may_extend_epochs_with_the_saved_config(finished, tmp_path):
    cfg = _copy(finished, tmp_path)
    res = train(saved_config(cfg.out).replace(epochs=2, out=cfg.out), resume=True)
    assert [row["epoch"] for row in res.history] == [1, 2]
    assert saved_config(cfg.out).epochs == 2
    with pytest.raises(ResumeMismatchError, match="fewer than the 2 epochs"):
        train(cfg.replace(epochs=1), resume=True)
    with pytest.raises(ResumeMismatchError, match="config differs"):
        train(cfg.replace(epochs=2, lr=0.1), resume=True)


def _corrupt(path: Path, how: str, weight: torch.Tensor) -> None:
    blob = bytearray(path.read_bytes())
    if how == "empty":
        blob = bytearray()
    elif how == "truncated":
        blob = blob[: len(blob) // 2]
    else:  # flip a mantissa byte of one weight: the file still unzips and loads without checks
        raw = weight.numpy().tobytes()
        at = bytes(blob).find(raw)
        assert at > 0
        blob[at] ^= 0x01
    path.write_bytes(bytes(blob))


@pytest.mark.parametrize("how", ["weight", "truncated", "empty"])
def test_a_damaged_checkpoint_is_refused_naming_the_file(finished, tmp_path, how):
    cfg = _copy(finished, tmp_path)
    path = Path(cfg.out) / "checkpoint.pt"
    model = load_checkpoint(path)["model"]
    weight = model[next(key for key in model if key.endswith("weight"))]
    _corrupt(path, how, weight)
    with pytest.raises(CheckpointError, match=str(path)):
        train(cfg.replace(epochs=2), resume=True)


def _npz(path: Path, seed: int) -> Path:
    from sopdeep.datasets import make_synthetic, save_npz

    save_npz(make_synthetic(seed=seed), path)
    return path


def test_resume_on_other_data_is_refused_and_a_moved_copy_allowed(tmp_path):
    data = _npz(tmp_path / "a.npz", seed=0)
    cfg = _tiny(tmp_path, dataset="npz", data_root=str(data))
    train(cfg)
    other = _npz(tmp_path / "b.npz", seed=1)
    with pytest.raises(ResumeMismatchError, match="training images or labels differ"):
        train(cfg.replace(epochs=2, data_root=str(other)), resume=True)
    moved = tmp_path / "moved.npz"
    shutil.copy(data, moved)
    assert len(train(cfg.replace(epochs=2, data_root=str(moved)), resume=True).history) == 2


# -- errors and the summary ---------------------------------------------------------------------


def test_non_finite_loss_says_what_was_kept_and_what_to_do(tmp_path):
    cfg = _tiny(tmp_path, epochs=2)

    def inject(epoch, step, loss):
        return loss * float("nan") if epoch == 1 else loss

    with pytest.raises(NonFiniteLossError) as info:
        train(cfg, callbacks={"loss": inject})
    message = str(info.value)
    assert isinstance(info.value, RunError) and isinstance(info.value, FloatingPointError)
    assert str(Path(cfg.out) / "checkpoint.pt") in message and "another out folder" in message


def test_summary_is_strict_json_when_a_metric_is_undefined(tmp_path):
    # issue_threshold 1: nothing is flagged, so detection precision is undefined (NaN)
    res = train(_tiny(tmp_path, issue_threshold=1.0))
    assert math.isnan(res.history[-1]["monitor_precision"])  # the monitor's precision is undefined
    json.dumps(res.summary, allow_nan=False)

    def refuse(name):
        raise AssertionError(f"non-strict JSON constant {name} in metrics.jsonl")

    folder = Path(res.config.out)
    rows = [json.loads(line, parse_constant=refuse) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["monitor_precision"] is None  # written as null
    json.loads((folder / "summary.json").read_text(), parse_constant=refuse)


def test_every_run_exception_is_one_class_family():
    for cls in (RunFolderError, CheckpointError, ResumeMismatchError, NonFiniteLossError):
        assert issubclass(cls, RunError)
    assert runs.NonFiniteLossError is __import__("sopdeep.training").training.NonFiniteLossError
