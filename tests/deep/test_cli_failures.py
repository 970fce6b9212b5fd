"""sop-train: after parsing, every failure is one line ``sop-train: error: ...`` with a non-zero
exit status (2 usage/config, 1 run failure, 130 Ctrl-C); ``--debug`` / ``SOP_DEBUG=1`` shows the
traceback; ``--resume`` alone reuses the saved configuration.

Runs use the synthetic dataset and the MLP for one epoch (well under a second in-process).
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sopdeep.cli import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE, UsageError, describe_failure, main
from sopdeep.config import TrainConfig

FAST = ["--dataset", "synthetic", "--arch", "mlp", "--epochs", "1", "--no-progress"]
REPO = Path(__file__).resolve().parents[2]


def one_error_line(capsys, kind="error") -> str:
    """The single stderr line of a failure (asserting there is exactly one, and no traceback); the
    per-epoch progress lines of a run without a progress bar (``epoch i/n ...``) are not failures."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("epoch ")]
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"sop-train: {kind}: "), err
    return lines[0]


def finished_run(tmp_path, capsys, *extra) -> Path:
    out = tmp_path / "run"
    assert main(FAST + ["--out", str(out), *extra]) == 0
    capsys.readouterr()
    return out


def strict_json(text):
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")
    return json.loads(text, parse_constant=refuse)


# -- data ------------------------------------------------------------------------------------------


def test_missing_data_root_is_one_line_naming_the_path(tmp_path, capsys):
    root = tmp_path / "nope"
    rc = main(["--dataset", "cifar10", "--data-root", str(root), "--out", str(tmp_path / "o"), "--no-progress"])
    line = one_error_line(capsys)
    assert rc == EXIT_FAILURE and str(root) in line and "--data-root" in line


def test_no_data_root_is_a_usage_error_and_writes_nothing(tmp_path, capsys):
    rc = main(["--dataset", "cifar10", "--out", str(tmp_path / "o"), "--no-progress"])
    assert rc == EXIT_USAGE and "needs --data-root" in one_error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_truncated_npz_names_the_file(tmp_path, capsys):
    from sopdeep.datasets import make_synthetic, save_npz

    good, bad = tmp_path / "good.npz", tmp_path / "bad.npz"
    save_npz(make_synthetic(n_train=16, n_test=8), good)
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    rc = main(["--dataset", "npz", "--data-root", str(bad), "--arch", "mlp", "--epochs", "1",
               "--no-progress", "--out", str(tmp_path / "o")])
    line = one_error_line(capsys)
    assert rc == EXIT_FAILURE and str(bad) in line and "npz" in line


def test_damaged_cifar10_batch_names_the_file(tmp_path, capsys):
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    (base / "data_batch_1").write_bytes(b"\x80\x02}q\x00(X")  # a pickle cut after 7 bytes
    rc = main(["--dataset", "cifar10", "--data-root", str(tmp_path), "--no-progress",
               "--out", str(tmp_path / "o")])
    assert rc == EXIT_FAILURE and "data_batch_1" in one_error_line(capsys)


# -- command line values ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [["--set", "epochs=abc"], ["--set", "nope=1"], ["--set", "epochs"],
                                 ["--set", "lr=NaN"], ["--preset", "nope"], ["--epochs", "x"]])
def test_bad_values_keep_argparse_form(bad, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(FAST + ["--out", str(tmp_path / "o"), *bad])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert info.value.code == EXIT_USAGE and "Traceback" not in err
    assert lines[0].startswith("usage: sop-train") and lines[-1].startswith("sop-train: error: ")
    assert len([line for line in lines if line.startswith("sop-train: error")]) == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_asked_without_cuda(tmp_path, capsys):
    rc = main(FAST + ["--device", "cuda", "--out", str(tmp_path / "o")])
    line = one_error_line(capsys)
    assert rc == EXIT_USAGE and "CUDA is not available" in line and "--device cpu" in line
    assert not (tmp_path / "o").exists()


# -- run folder and disk ---------------------------------------------------------------------------


@pytest.mark.parametrize("under", ["", "run"])
def test_out_is_or_is_under_a_regular_file(under, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    rc = main(FAST + ["--out", str(tmp_path / "file" / under)])
    line = one_error_line(capsys)
    assert rc == EXIT_USAGE and f"{tmp_path / 'file'} is a file, not a folder" in line
    assert (tmp_path / "file").read_text() == "x"


def test_os_errors_name_the_path_and_keep_a_custom_reason():
    config = TrainConfig(out="/r/run")
    assert describe_failure(NotADirectoryError(errno.ENOTDIR, "Not a directory", "/r/run/x"), config) == \
        "cannot write the run folder (not a directory: /r/run/x): choose another --out"
    line = describe_failure(FileExistsError(errno.EEXIST, "holds another run's results", "/r/run"), config)
    assert "holds another run's results: /r/run" in line
    assert describe_failure(FileNotFoundError(errno.ENOENT, "No such file or directory", "/d/x.npz"),
                            config).startswith("no such file or directory: /d/x.npz: check the path")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores file permissions")
def test_out_in_a_read_only_folder(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        rc = main(FAST + ["--out", str(locked / "run")])
    finally:
        locked.chmod(0o700)
    line = one_error_line(capsys)
    assert rc == EXIT_FAILURE and "permission denied" in line and str(locked / "run") in line


def _raise(exc):
    def fail(*args, **kwargs):
        raise exc
    return fail


def _torch_enforce_error():
    """What torch.save(obj, path) raises when the disk fills: no errno, no path."""
    return RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")


def _wrapped_enospc():
    try:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    except OSError:
        try:
            raise _torch_enforce_error()
        except RuntimeError as exc:
            return exc  # __context__ = the OSError


@pytest.mark.parametrize("error", [
    OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "RUN/checkpoint.pt.tmp"),
    _wrapped_enospc(),
], ids=["oserror", "runtimeerror-with-context"])
def test_full_disk_says_no_space_left_and_names_the_path(error, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch, "save", _raise(error))
    out = tmp_path / "run"
    rc = main(FAST + ["--out", str(out)])
    line = one_error_line(capsys)
    assert rc == EXIT_FAILURE and "no space left on device" in line
    assert ("RUN/checkpoint.pt.tmp" if isinstance(error, OSError) else str(out)) in line


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_real_torch_write_failure_names_the_folder_and_the_likely_cause(tmp_path, capsys, monkeypatch):
    real_save = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, path, *a, **k: real_save(obj, "/dev/full"))
    out = tmp_path / "run"
    rc = main(FAST + ["--out", str(out)])
    line = one_error_line(capsys)
    assert rc == EXIT_FAILURE and str(out) in line and "disk is full" in line and "MiB free" in line


def test_permission_error_names_the_path(tmp_path, capsys, monkeypatch):
    target = str(tmp_path / "run" / "checkpoint.pt")
    monkeypatch.setattr(torch, "save", _raise(PermissionError(errno.EACCES, "Permission denied", target)))
    rc = main(FAST + ["--out", str(tmp_path / "run")])
    line = one_error_line(capsys)
    assert rc == EXIT_FAILURE and "permission denied" in line and target in line


def test_run_folder_lock_held(tmp_path, capsys, monkeypatch):
    import sopdeep.training

    monkeypatch.setattr(sopdeep.training, "train",
                        _raise(BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")))
    rc = main(FAST + ["--out", str(tmp_path / "run")])
    line = one_error_line(capsys)
    assert rc == EXIT_FAILURE and "locked by another" in line and str(tmp_path / "run") in line


def test_finished_run_is_not_overwritten_without_resume(tmp_path, capsys):
    out = finished_run(tmp_path, capsys)
    before = (out / "checkpoint.pt").read_bytes()
    rc = main(FAST + ["--out", str(out)])
    line = one_error_line(capsys)
    assert rc == EXIT_FAILURE and "--resume" in line
    assert (out / "checkpoint.pt").read_bytes() == before


# -- training --------------------------------------------------------------------------------------


def test_non_finite_loss(tmp_path, capsys):
    rc = main(FAST + ["--lr", "1e30", "--out", str(tmp_path / "run")])
    line = one_error_line(capsys)
    assert rc == EXIT_FAILURE and "non-finite" in line and "lr" in line


def test_summary_is_strict_json_with_null_for_undefined(tmp_path, capsys, monkeypatch):
    import sopdeep.training

    class Result:
        summary = {"best_test_acc": 0.5, "final_det_precision": float("nan"), "x": float("inf")}

    monkeypatch.setattr(sopdeep.training, "train", lambda config, resume=False: Result())
    assert main(FAST + ["--out", str(tmp_path / "run")]) == 0
    summary = strict_json(capsys.readouterr().out)
    assert summary == {"best_test_acc": 0.5, "final_det_precision": None, "x": None}


def test_real_summary_is_strict_json(tmp_path, capsys):
    assert main(FAST + ["--out", str(tmp_path / "run")]) == 0
    assert strict_json(capsys.readouterr().out)["epochs"] == 1


# -- Ctrl-C ----------------------------------------------------------------------------------------


def test_ctrl_c_before_any_checkpoint(tmp_path, capsys, monkeypatch):
    import sopdeep.training

    monkeypatch.setattr(sopdeep.training, "train", _raise(KeyboardInterrupt()))
    argv = FAST + ["--out", str(tmp_path / "run")]
    rc = main(argv)
    line = one_error_line(capsys, kind="interrupted")
    assert rc == EXIT_INTERRUPTED and "nothing kept" in line
    assert line.endswith(shlex.join(["sop-train", *argv]))


def test_ctrl_c_after_an_epoch_keeps_the_checkpoint_and_prints_the_resume_command(tmp_path, capsys, monkeypatch):
    import sopdeep.training

    real_train = sopdeep.training.train

    def ctrl_c_after_first_epoch(config, resume=False):
        def epoch_done(epoch, row):
            raise KeyboardInterrupt
        return real_train(config, resume=resume, callbacks={"epoch": epoch_done})

    out = tmp_path / "run"
    monkeypatch.setattr(sopdeep.training, "train", ctrl_c_after_first_epoch)
    rc = main(FAST[:-3] + ["--epochs", "2", "--no-progress", "--out", str(out)])
    line = one_error_line(capsys, kind="interrupted")
    assert rc == EXIT_INTERRUPTED and f"kept the last checkpoint {out / 'checkpoint.pt'}" in line
    command = line.split("resume with: ", 1)[1]
    assert command == shlex.join(["sop-train", "--out", str(out), "--resume"])
    monkeypatch.setattr(sopdeep.training, "train", real_train)
    assert main(shlex.split(command)[1:] + ["--no-progress"]) == 0  # the printed command resumes
    assert strict_json(capsys.readouterr().out)["epochs"] == 2


# -- --debug ---------------------------------------------------------------------------------------


def test_debug_flag_and_env_reraise(tmp_path, capsys, monkeypatch):
    argv = ["--dataset", "cifar10", "--data-root", str(tmp_path / "nope"), "--no-progress",
            "--out", str(tmp_path / "o")]
    with pytest.raises(FileNotFoundError):
        main(argv + ["--debug"])
    monkeypatch.setenv("SOP_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        main(argv)
    with pytest.raises(UsageError, match="needs --data-root"):
        main(["--dataset", "cifar10", "--out", str(tmp_path / "o")])
    monkeypatch.setenv("SOP_DEBUG", "0")
    assert main(argv) == EXIT_FAILURE


def test_unexpected_errors_are_one_line_pointing_to_debug():
    line = describe_failure(TypeError("bad\noperand"), TrainConfig())
    assert "\n" not in line and "unexpected TypeError: bad operand" in line and "--debug" in line


# -- --resume --------------------------------------------------------------------------------------


def test_resume_alone_reuses_the_saved_configuration(tmp_path, capsys):
    out = finished_run(tmp_path, capsys, "--method", "ce", "--lr", "0.05", "--seed", "3")
    assert main(["--out", str(out), "--resume", "--print-config"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert (config["method"], config["lr"], config["seed"], config["dataset"]) == ("ce", 0.05, 3, "synthetic")
    assert main(["--out", str(out), "--resume", "--no-progress"]) == 0
    assert strict_json(capsys.readouterr().out)["method"] == "ce"


def test_resume_flags_override_the_saved_configuration(tmp_path, capsys):
    out = finished_run(tmp_path, capsys, "--method", "ce")
    assert main(["--out", str(out), "--resume", "--set", "epochs=3", "--print-config"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert (config["epochs"], config["method"]) == (3, "ce")


def test_resume_can_extend_epochs(tmp_path, capsys):
    out = finished_run(tmp_path, capsys)
    assert main(["--out", str(out), "--resume", "--set", "epochs=2", "--no-progress"]) == 0
    assert strict_json(capsys.readouterr().out)["epochs"] == 2


def test_resume_reads_the_checkpoint_when_config_json_is_damaged(tmp_path, capsys):
    out = finished_run(tmp_path, capsys, "--method", "ce")
    (out / "config.json").write_text("")
    assert main(["--out", str(out), "--resume", "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["method"] == "ce"


@pytest.mark.parametrize("setup, expected", [
    (None, "does not exist"),
    (lambda d: d.mkdir(), "holds no saved run"),
    (lambda d: (d.mkdir(), (d / "config.json").write_text(TrainConfig(dataset="synthetic").to_json())),
     "no checkpoint.pt to resume from"),
    (lambda d: (d.mkdir(), (d / "config.json").write_text("{")), "config.json is damaged"),
], ids=["missing", "empty", "config-only", "damaged-config"])
def test_resume_without_a_saved_run_is_a_usage_error(setup, expected, tmp_path, capsys):
    folder = tmp_path / "run"
    if setup:
        setup(folder)
    rc = main(["--out", str(folder), "--resume"])
    line = one_error_line(capsys)
    assert rc == EXIT_USAGE and expected in line and str(folder) in line


@pytest.mark.parametrize("damage", [lambda b: b[: len(b) // 3], lambda b: b[:5000], lambda b: b""],
                         ids=["truncated", "truncated-in-header", "empty"])  # RuntimeError, OSError(22), EOFError
def test_resume_from_a_damaged_checkpoint_names_it(damage, tmp_path, capsys):
    out = finished_run(tmp_path, capsys)
    ckpt = out / "checkpoint.pt"
    ckpt.write_bytes(damage(ckpt.read_bytes()))
    rc = main(["--out", str(out), "--resume", "--no-progress"])
    line = one_error_line(capsys)
    assert rc == EXIT_FAILURE and str(ckpt) in line and ("damaged" in line or "empty" in line)


# -- through a real process: no traceback ----------------------------------------------------------


def _sop_train(args, tmp_path, **env):
    environ = {k: v for k, v in os.environ.items() if k != "SOP_DEBUG"}
    environ.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", **env)
    return subprocess.run([sys.executable, "-m", "sopdeep", *args], cwd=tmp_path, env=environ,
                          capture_output=True, text=True, timeout=300)


def test_subprocess_failure_is_one_line_and_debug_shows_the_traceback(tmp_path):
    args = ["--dataset", "npz", "--data-root", str(tmp_path / "missing.npz"), "--no-progress", "--out", "o"]
    plain = _sop_train(args, tmp_path)
    assert plain.returncode == EXIT_FAILURE and plain.stdout == ""
    assert plain.stderr.count("\n") == 1 and plain.stderr.startswith("sop-train: error: ")
    assert "missing.npz" in plain.stderr
    debug = _sop_train(args, tmp_path, SOP_DEBUG="1")
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "FileNotFoundError" in debug.stderr


def test_subprocess_resume_without_saved_run(tmp_path):
    done = _sop_train(["--out", "never", "--resume"], tmp_path)
    assert done.returncode == EXIT_USAGE and done.stderr.count("\n") == 1
    assert "never does not exist" in done.stderr and "Traceback" not in done.stderr


def test_no_progress_prints_one_line_per_epoch(tmp_path, capsys):
    import re

    args = ["--dataset", "synthetic", "--arch", "mlp", "--epochs", "2", "--no-progress", "--out", str(tmp_path / "r")]
    assert main(args) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("epoch ")]
    pattern = r"epoch {}/2  loss \d+\.\d{{4}}  train acc \d\.\d{{3}} \(given labels\)  test acc \d\.\d{{3}}  \d+\.\d s"
    assert [bool(re.fullmatch(pattern.format(e), line)) for e, line in zip((1, 2), lines)] == [True, True], lines
