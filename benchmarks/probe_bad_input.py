"""Bad-input probe (issue 18): feeds a few hundred bad inputs to both command lines, the figures
command line and both Python APIs, and classifies each outcome.

* ``clear``: refused by name: a ValueError-family (or FileNotFoundError) exception with a one-line
  message naming the argument or file; for a command line, a non-zero exit whose error is one
  ``prog: error:`` line without a traceback;
* ``traceback``: an internal error surfaced instead (another exception type, a message that does not
  name what is wrong, several lines, a traceback on stderr);
* ``crash``: the process died (a signal, MemoryError, a timeout);
* ``silent``: accepted: no error although the input is bad;
* ``lost``: a result written before the call was changed or removed.

Not a test (the suite does not run it). Run it from the repository root (about a minute on 2 cores)::

    .venv/bin/python benchmarks/probe_bad_input.py            # this tree
    git worktree add /tmp/orig 2a7833a && cd /tmp/orig && \\
        PYTHONPATH=/tmp/orig /work/main/.venv/bin/python /work/main/benchmarks/probe_bad_input.py

It adapts to the module names of the tree it runs in (``sopdeep.data`` / ``sopdeep.datasets``,
``sopdeep.trainer`` / ``sopdeep.train``, now ``sopdeep.training``). ``--verbose`` prints every case.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

OUTCOMES = ("clear", "traceback", "crash", "silent", "lost")
RESULTS: list[tuple[str, str, str, str]] = []   # (group, case, outcome, detail)
ROOT = Path.cwd()


def _snapshot(paths):
    out = {}
    for p in paths:
        p = Path(p)
        files = [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else []
        for f in files:
            out[str(f)] = f.read_bytes()
    return out


def _record(group, case, outcome, detail, protect_before=None, protect=()):
    if protect_before is not None and _snapshot(protect) != protect_before:
        outcome, detail = "lost", "an earlier result changed: " + detail
    RESULTS.append((group, case, outcome, " ".join(str(detail).split())[:160]))


def api(group, case, fn, *, name, protect=(), named=(ValueError, FileNotFoundError)):
    """Call ``fn``; clear when it raises a ValueError-family / FileNotFoundError (or one of ``named``)
    naming ``name``."""
    before = _snapshot(protect)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = fn()
    except MemoryError as exc:
        _record(group, case, "crash", f"MemoryError {exc}", before, protect)
        return
    except named as exc:
        text = str(exc)
        ok = "\n" not in text.strip() and (name is None or name.lower() in text.lower())
        _record(group, case, "clear" if ok else "traceback", f"{type(exc).__name__}: {text}", before, protect)
        return
    except Exception as exc:   # noqa: BLE001 - the probe classifies whatever comes
        _record(group, case, "traceback", f"{type(exc).__name__}: {exc}", before, protect)
        return
    _record(group, case, "silent", f"returned {str(result)[:80]}", before, protect)


def _classify_cli(rc, err, *, name=None):
    lines = [line for line in err.strip().splitlines() if line.strip()]
    if rc == 0:
        return "silent", "exit 0"
    if rc is None or rc < 0 or rc in (-9, 137, 139):
        return "crash", f"killed ({rc})"
    errors = [line for line in lines if ": error:" in line or ": interrupted:" in line]
    one = len(errors) == 1 and "Traceback" not in err and (len(lines) == 1 or lines[0].startswith("usage:"))
    named = name is None or name.lower() in err.lower()
    return ("clear" if one and named else "traceback"), (errors[-1] if errors else (lines[-1] if lines else "no message"))


def cli(group, case, main, argv, *, name=None, protect=(), env=None):
    """Run a command line's ``main(argv)`` in this process; classify its exit and stderr."""
    before = _snapshot(protect)
    err = io.StringIO()
    old_env = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                rc = main(argv)
            except SystemExit as exc:
                rc = exc.code if isinstance(exc.code, int) else 1
            except MemoryError:
                rc = None
            except Exception as exc:   # noqa: BLE001 - an exception out of main is a traceback
                import traceback

                traceback.print_exc(file=err)
                rc = 1
    finally:
        for k, v in old_env.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    outcome, detail = _classify_cli(rc, err.getvalue(), name=name)
    _record(group, case, outcome, detail, before, protect)


def subproc(group, case, argv, *, name=None, protect=(), env=None, shell=False, timeout=120):
    before = _snapshot(protect)
    try:
        proc = subprocess.run(argv, shell=shell, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                              env={**os.environ, **(env or {})})
        rc, err = proc.returncode, proc.stderr
    except subprocess.TimeoutExpired:
        rc, err = None, "timeout"
    outcome, detail = _classify_cli(rc, err, name=name)
    if shell and rc == 0:   # a pipe: quiet is right when stderr is empty
        outcome, detail = ("clear", "quiet") if not err.strip() else ("traceback", err.strip().splitlines()[-1])
    _record(group, case, outcome, detail, before, protect)


# ------------------------------------------------------------------------------------------------
# what the tree calls things


def _imports():
    m = {}
    from sopdeep import TrainConfig, train
    from sopdeep.datasets.cifar import load_cifar10
    from sopdeep.datasets.cifar10_jpeg import decode_cifar10_jpeg, load_cifar10_jpeg
    from sopdeep.datasets.image_folder import load_image_folder
    from sopdeep.datasets.npz import load_npz

    m.update(train=train, TrainConfig=TrainConfig, load_cifar10=load_cifar10, load_cifar10_jpeg=load_cifar10_jpeg,
             decode=decode_cifar10_jpeg, load_image_folder=load_image_folder, load_npz=load_npz)
    return m


def _tiny(TrainConfig, out, **kw):
    base = dict(dataset="synthetic", arch="mlp", width=16, epochs=1, batch_size=64, lr=0.05, schedule="constant",
                noise="sym", noise_rate=0.4, device="cpu", progress=False, out=str(out))
    base.update(kw)
    return TrainConfig(**base)


# ------------------------------------------------------------------------------------------------
# the cases


def figure_tables(tmp):
    from figures.cli import main
    from figures.registry import FIGURES

    committed = ROOT / "results" / "figures"
    csv_kinds = ["empty", "header only", "truncated", "garbage row", "bad number", "missing column",
                 "other figure", "not utf-8", "binary"]
    for name, other in (("fig3", "fig4"), ("fig4", "fig3"), ("fig_memorisation", "fig3")):
        fig = FIGURES[name]
        good = (committed / fig.DATA_FILE).read_bytes()
        lines = good.decode().splitlines(keepends=True)
        for kind in csv_kinds:
            data = {
                "empty": b"", "header only": lines[0].encode(), "truncated": good[: len(good) // 2 + 7],
                "garbage row": (lines[0] + lines[1] + "1,2,x\n" + "".join(lines[2:])).encode(),
                "bad number": (lines[0] + ",".join(f if i != 2 else "abc" for i, f in enumerate(lines[1].split(",")))
                               + "".join(lines[2:])).encode(),
                "missing column": "\n".join(",".join(f for i, f in enumerate(r.rstrip("\n").split(",")) if i != 2)
                                            for r in lines).encode(),
                "other figure": (committed / FIGURES[other].DATA_FILE).read_bytes(),
                "not utf-8": b"\xff\xfe" + good[:50], "binary": bytes(range(256)),
            }[kind]
            out = tmp / f"fig-{name}-{kind.replace(' ', '_')}"
            out.mkdir()
            (out / fig.DATA_FILE).write_bytes(data)
            (out / f"{fig.NAME}.png").write_bytes(b"published before")
            cli("figures table", f"{name}: {kind}", main, [name, "--redraw", "--out", str(out), "--no-progress"],
                name=fig.DATA_FILE, protect=[out / f"{fig.NAME}.png"])
    for name in ("fig2", "fig_bridge_alpha", "fig_bridge_jacobian", "fig_bridge_linearized"):
        fig = FIGURES[name]
        good = (committed / fig.DATA_FILE).read_bytes()
        with np.load(committed / fig.DATA_FILE) as z:
            arrays = {k: z[k] for k in z.files}
        variants = {"empty": b"", "truncated": good[: len(good) // 2], "csv": b"a,b\n1,2\n", "missing key": None,
                    "empty arrays": None}
        for kind, data in variants.items():
            out = tmp / f"fig-{name}-{kind.replace(' ', '_')}"
            out.mkdir()
            if kind == "missing key":
                np.savez(out / fig.DATA_FILE, **{k: v for k, v in list(arrays.items())[1:]})
            elif kind == "empty arrays":
                np.savez(out / fig.DATA_FILE, **{k: (v[:0] if v.ndim else v) for k, v in arrays.items()})
            else:
                (out / fig.DATA_FILE).write_bytes(data)
            cli("figures table", f"{name}: {kind}", main, [name, "--redraw", "--out", str(out), "--no-progress"],
                name=fig.DATA_FILE)


def figure_args(tmp):
    import figures.cli as fcli

    seen = {}
    real_run = fcli.run
    fcli.run = lambda args, where=None: seen.__setitem__("n_jobs", args.n_jobs)
    try:
        for jobs in ("10000", "1000000", str(2**40)):
            seen.clear()
            before = os.getcwd()
            cli("figures args", f"--jobs {jobs}", fcli.main, ["fig3", "--quick", "--jobs", jobs, "--out", str(tmp / "j")])
            if RESULTS[-1][2] == "silent" and seen.get("n_jobs") is not None and seen["n_jobs"] <= (os.cpu_count() or 1):
                RESULTS[-1] = (*RESULTS[-1][:2], "clear", f"capped at {seen['n_jobs']}")
            os.chdir(before)
    finally:
        fcli.run = real_run
    for argv, name in ((["fig3", "--jobs", "0"], "--jobs"), (["fig3", "--jobs", "-7"], "--jobs"),
                       (["fig3", "--jobs", "x"], "--jobs"), (["nofig"], "nofig"), (["fig3", "--solver", "x"], "solver"),
                       (["fig3", "--redraw", "--out", str(tmp / "nothing")], "fig3_data.csv"),
                       (["fig3", "--out", str(ROOT / "README.md")], "README.md")):
        cli("figures args", " ".join(argv), fcli.main, argv, name=name)
    cwd = os.getcwd()
    empty = tmp / "empty-out-cwd"
    empty.mkdir()
    os.chdir(empty)
    try:   # --out "": with the real run this would write into the current folder; redraw keeps it cheap
        cli("figures args", '--out ""', fcli.main, ["fig3", "--redraw", "--out", ""], name="--out")
    finally:
        os.chdir(cwd)


def run_phase_jobs():
    import joblib

    import soptheory.phase as phase

    seen = []
    real = joblib.Parallel

    class Recording(real):
        def __init__(self, n_jobs=None, **kw):
            seen.append(n_jobs)
            super().__init__(n_jobs=1, **kw)

    joblib.Parallel = Recording
    try:
        grid = {"N": [10], "p": [12], "r": [1], "k": [1], "lam": [0.1]}
        for n_jobs in (10_000, 10**7, 0, -3, 2.5, "4"):
            seen.clear()
            api("run_phase", f"n_jobs={n_jobs!r}", lambda: phase.run_phase(grid, trials=1, n_jobs=n_jobs, progress=False),
                name="n_jobs")
            if RESULTS[-1][2] == "silent" and seen and all(isinstance(n, int) and n <= (os.cpu_count() or 1) for n in seen):
                RESULTS[-1] = (*RESULTS[-1][:2], "clear", f"capped at {seen}")
    finally:
        joblib.Parallel = real


def phase_tables(tmp):
    from soptheory.phase import load_table

    for kind, text in (("empty", ""), ("header only", "a,b\n"), ("ragged", "a,b\n1,2\n3\n"),
                       ("not utf-8", None), ("missing", "absent")):
        path = tmp / f"phase-{kind.replace(' ', '_')}.csv"
        if text is None:
            path.write_bytes(b"\xff\xfe\x00\x01")
        elif text != "absent":
            path.write_text(text)
        api("phase.load_table", kind, lambda: _use_table(load_table(path)), name=path.name)


def _use_table(table):
    # what a reader does first: the first value of its first column
    return next(iter(table.values()))[0]


def run_files(tmp, m):
    from sopdeep import runs
    from sopdeep.label_issues import from_run

    base = tmp / "finished"
    m["train"](_tiny(m["TrainConfig"], base))
    damage = [
        ("samples.npz", b""), ("samples.npz", b"PK\x03\x04 not a zip"), ("samples.npz", "cut"),
        ("samples.npz", "ragged"), ("samples.npz", "empty arrays"),
        ("config.json", b"{\"dataset\": "), ("config.json", b"\xff\xfe\x00"), ("config.json", b"[1, 2]"),
        ("config.json", b"{\"no_such_key\": 1}"), ("config.json", b""),
        ("metrics.jsonl", b"{\"epoch\": 1}\n{\"epoch\": 2, \n"), ("metrics.jsonl", b"\x80\x81\n"),
        ("metrics.jsonl", b"[1]\n"),
        ("summary.json", b"\xff\xd8\xff"), ("summary.json", b"{\"best\": 0.9"), ("summary.json", b"\"text\""),
    ]
    for i, (name, data) in enumerate(damage):
        folder = tmp / f"run-damage-{i}"
        shutil.copytree(base, folder)
        target = folder / name
        if data == "cut":
            raw = target.read_bytes()
            data = raw[: len(raw) // 2]
        elif data in ("ragged", "empty arrays"):
            with np.load(target) as z:
                arrays = {k: z[k] for k in z.files}
            if data == "ragged":
                arrays["given_label"] = arrays["given_label"][:-1]
            else:
                arrays = {k: v[:0] for k, v in arrays.items()}
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            data = buf.getvalue()
        target.write_bytes(data)
        label = f"{name}: {data[:12]!r}"
        keep = [folder / n for n in ("checkpoint.pt", "metrics.csv")]
        api("run files", f"read_run {label}", lambda: runs.read_run(folder), name=name, protect=keep)
        if name == "samples.npz":   # the only file from_run reads
            api("run files", f"from_run {label}", lambda: _use_from_run(from_run(folder)), name=name, protect=keep)


def _use_from_run(d):
    return float(np.mean(d["label_quality"]))


def impossible_data(tmp, m):
    rng = np.random.default_rng(0)

    def npz(path, n_train, n_test, k=2, shape=(4, 4, 3)):
        np.savez(path, x_train=rng.integers(0, 255, (n_train, *shape), dtype=np.uint8), y_train=np.arange(n_train) % k,
                 x_test=rng.integers(0, 255, (n_test, *shape), dtype=np.uint8), y_test=np.arange(n_test) % k)
        return path

    for n_train, n_test in ((0, 4), (6, 0), (2, 0), (0, 2)):
        path = npz(tmp / f"user-{n_train}-{n_test}.npz", n_train, n_test)
        api("impossible data", f"load_npz {n_train} train / {n_test} test", lambda: _use_ds(m["load_npz"](path)),
            name="images")
    # a CIFAR batch asking for a huge array
    for how in ("reconstruct", "ndarray", "ndarray2d"):
        root = tmp / f"cifar-huge-{how}"
        (root / "cifar-10-batches-py").mkdir(parents=True)
        (root / "cifar-10-batches-py" / "data_batch_1").write_bytes(pickle.dumps({"data": _Huge(how), "labels": [0]},
                                                                                 protocol=2))
        api("impossible data", f"cifar10 pickle {how} 1e13", lambda: m["load_cifar10"](root), name="data_batch_1")
    # decompression bomb (Pillow's guard lowered so the file stays small)
    from PIL import Image

    folder = tmp / "bomb"
    for split in ("train", "test"):
        for cls in ("a", "b"):
            (folder / split / cls).mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(folder / split / cls / "ok.png")
    Image.new("RGB", (64, 64)).save(folder / "train" / "a" / "bomb.png")
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = 1000
    try:
        api("impossible data", "imagefolder decompression bomb", lambda: m["load_image_folder"](folder, image_size=8),
            name="bomb.png")
    finally:
        Image.MAX_IMAGE_PIXELS = old
    # decoded JPEG cache: 30 other images / another shape in its place
    src = tmp / "jpeg-src"
    src.mkdir()
    np.savez(src / "cifar10_jpeg.npz", y_train=np.arange(4) % 10, y_test=np.arange(2) % 10)
    (src / "decode.py").write_text("import sys, numpy as np\nnp.savez(sys.argv[1], x_train=np.zeros((4, 32, 32, 3), "
                                   "np.uint8), y_train=np.arange(4) % 10, x_test=np.zeros((2, 32, 32, 3), np.uint8), "
                                   "y_test=np.arange(2) % 10)\n")
    cache = tmp / "jpeg-cache" / "c.npz"
    m["load_cifar10_jpeg"](src, cache)
    for label, (n, shape) in (("30 other images", (30, (32, 32, 3))), ("8x8 images", (4, (8, 8, 3)))):
        npz(cache, n, 3, k=10, shape=shape)
        api("jpeg cache", label, lambda: m["load_cifar10_jpeg"](src, cache), name="c.npz")
    for label, script, name in (("decoder ImportError", "raise ModuleNotFoundError(\"No module named 'PIL'\")", "PIL"),
                                ("decoder exit 3", "import sys; sys.exit(3)", "exit code 3"),
                                ("decoder two-line stderr", "import sys; print('a\\nb', file=sys.stderr); sys.exit(1)",
                                 "decode.py")):
        (src / "decode.py").write_text(script + "\n")
        api("jpeg decode", label, lambda: _one_line_required(lambda: m["decode"](src, tmp / "never.npz")), name=name)


def _one_line_required(fn):
    try:
        return fn()
    except RuntimeError as exc:
        if "\n" in str(exc).strip():
            raise TypeError(f"multi-line: {exc}") from exc
        raise ValueError(str(exc)) from exc


def _use_ds(ds):
    return ds.x_train.shape[0] / ds.x_test.shape[0]   # what an accuracy computes


class _Huge:
    def __init__(self, how):
        self.how = how

    def __reduce__(self):
        if self.how == "reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:
                from numpy.core.multiarray import _reconstruct
            return (_reconstruct, (np.ndarray, (10**13,), b"b"))
        if self.how == "ndarray":
            return (np.ndarray, ((10**13,),))
        return (np.ndarray, ((10**7, 10**7), np.float64))


def configs(tmp, m):
    train, TrainConfig = m["train"], m["TrainConfig"]
    api("config", "train(dict)", lambda: train({"dataset": "synthetic", "out": str(tmp / "d")}), name="TrainConfig")
    api("config", "train(None)", lambda: train(None), name="TrainConfig")
    api("config", "train(str)", lambda: train("config.json"), name="TrainConfig")
    cwd = os.getcwd()
    empty = tmp / "train-empty-out"
    empty.mkdir()
    os.chdir(empty)
    try:
        for out in ("", " "):
            api("config", f"train(out={out!r})", lambda: train(_tiny(TrainConfig, out)), name="out")
            if any(empty.iterdir()):
                RESULTS[-1] = (*RESULTS[-1][:2], "lost", "files written into the current folder")
                for p in empty.iterdir():
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
    finally:
        os.chdir(cwd)
    for key, value in (("seed", -1), ("seed", 2**64), ("seed", 2**32), ("noise_seed", -5), ("noise_seed", 2**70),
                       ("seed", 1.5), ("seed", "0"), ("epochs", 0), ("epochs", -1), ("batch_size", 0),
                       ("eval_batch_size", 0), ("eval_batch_size", -1), ("lr", float("nan")), ("lr", -1.0),
                       ("noise_rate", 1.5), ("width", -3), ("depth", -1), ("num_workers_nonexistent", 1)):
        api("config", f"TrainConfig({key}={value!r})",
            lambda: train(_tiny(TrainConfig, tmp / f"cfg-{key}-{abs(hash(str(value)))}", **{key: value})), name=key)
    for method in ("ce", "sop"):
        folder = tmp / f"diverge-{method}"
        # the run's own divergence error (a FloatingPointError) saying what to do is the clear answer
        api("divergence", f"lr=1e12 method={method}", lambda: train(_tiny(TrainConfig, folder, lr=1e12, method=method)),
            name="lower", named=(ValueError, FloatingPointError))


def train_cli(tmp, m):
    from sopdeep.cli import main

    base = ["--dataset", "synthetic", "--arch", "mlp", "--epochs", "1", "--device", "cpu", "--no-progress"]
    out = str(tmp / "cli-run")
    cases = [
        (["--seed", "-1"], "seed"), (["--seed", str(2**64)], "seed"), (["--seed", "abc"], "seed"),
        (["--epochs", "0"], "epochs"), (["--epochs", "-2"], "epochs"), (["--lr", "nan"], "lr"), (["--lr", "-1"], "lr"),
        (["--batch-size", "0"], "batch"), (["--noise-rate", "2"], "noise"), (["--noise-rate", "-0.1"], "noise"),
        (["--dataset", "nope"], "nope"), (["--method", "nope"], "nope"), (["--arch", "nope"], "nope"),
        (["--set", "no_such_key=1"], "no_such_key"), (["--set", "eval_batch_size=0"], "eval_batch_size"),
        (["--set", "width=-4"], "width"), (["--set", "seed"], "seed"), (["--set", "noise_seed=-1"], "noise_seed"),
        (["--device", "tpu"], "device"), (["--resume"], "resume"),
    ]
    for extra, name in cases:
        cli("sop-train", " ".join(extra), main, base + ["--out", out + "-" + str(abs(hash(tuple(extra))))] + extra, name=name)
    rng = np.random.default_rng(1)
    for label, arrays, name in (
            ("npz no test images", dict(x_train=rng.integers(0, 255, (6, 4, 4, 3), dtype=np.uint8), y_train=np.arange(6) % 2,
                                        x_test=np.zeros((0, 4, 4, 3), np.uint8), y_test=np.zeros(0, np.int64)), "test images"),
            ("npz no training images", dict(x_train=np.zeros((0, 4, 4, 3), np.uint8), y_train=np.zeros(0, np.int64),
                                            x_test=rng.integers(0, 255, (4, 4, 4, 3), dtype=np.uint8),
                                            y_test=np.arange(4) % 2), "training images"),
            ("npz float images", dict(x_train=np.zeros((4, 4, 4, 3)), y_train=np.arange(4) % 2,
                                      x_test=np.zeros((2, 4, 4, 3)), y_test=np.arange(2) % 2), "x_train"),
            ("npz missing key", dict(x_train=np.zeros((4, 4, 4, 3), np.uint8)), "y_train")):
        path = tmp / (label.replace(" ", "_") + ".npz")
        np.savez(path, **arrays)
        cli("sop-train", label, main, ["--dataset", "npz", "--data-root", str(path), "--arch", "mlp", "--epochs", "1",
                                       "--device", "cpu", "--no-progress", "--out", str(tmp / ("o-" + path.stem))],
            name=name)
    garbage = tmp / "garbage.npz"
    garbage.write_bytes(b"not an npz at all")
    cli("sop-train", "npz garbage", main, ["--dataset", "npz", "--data-root", str(garbage), "--out", str(tmp / "og"),
                                           "--device", "cpu", "--no-progress"], name="garbage.npz")
    cli("sop-train", "npz missing file", main, ["--dataset", "npz", "--data-root", str(tmp / "absent.npz"),
                                                "--out", str(tmp / "oa"), "--device", "cpu"], name="absent.npz")
    cli("sop-train", "cifar10 without --data-root", main, ["--dataset", "cifar10", "--out", str(tmp / "oc")],
        name="data-root")
    cwd = os.getcwd()
    here = tmp / "cli-empty-out"
    here.mkdir()
    os.chdir(here)
    try:
        cli("sop-train", '--out ""', main, base + ["--out", ""], name="--out")
        if any(here.iterdir()):
            RESULTS[-1] = (*RESULTS[-1][:2], "lost", "a run folder written into the current folder")
    finally:
        os.chdir(cwd)
    cli("sop-train", "--lr 1e12", main, base + ["--method", "ce", "--lr", "1e12", "--out", str(tmp / "cli-lr")],
        name="lower")
    # a finished run is not overwritten by a second run into the same folder
    finished = tmp / "cli-finished"
    cli("sop-train", "first run (setup)", main, base + ["--out", str(finished)])
    RESULTS.pop()
    cli("sop-train", "second run into a finished folder", main, base + ["--out", str(finished)], name=str(finished),
        protect=[finished])


def failures(m):
    from sopdeep.cli import describe_failure

    config = m["TrainConfig"](out="/tmp/probe-run")
    for label, exc in (
            ("CPU allocator", RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't "
                                           "allocate memory: you tried to allocate 80000000000 bytes.")),
            ("CUDA OOM", RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")),
            ("MemoryError", MemoryError()),
            ("chained CPU allocator", _chained())):
        message = describe_failure(exc, config)
        ok = message.startswith("out of memory") and "\n" not in message
        RESULTS.append(("out of memory", label, "clear" if ok else "traceback", message[:160]))


def _chained():
    try:
        raise RuntimeError("evaluation failed") from RuntimeError("DefaultCPUAllocator: can't allocate memory")
    except RuntimeError as exc:
        return exc


def theory():
    import soptheory as st

    J = np.random.default_rng(0).standard_normal((6, 8))
    y, th, s, nu = np.ones(6), np.zeros(8), np.zeros(6), np.zeros(6)
    cases = [
        ("kkt vector lam", lambda: st.kkt_residuals(J, y, [0.1, 0.2], th, s), "lam"),
        ("kkt matrix lam", lambda: st.kkt_residuals(J, y, np.ones((2, 2)), th, s), "lam"),
        ("kkt lam 0", lambda: st.kkt_residuals(J, y, 0.0, th, s), "lam"),
        ("kkt lam nan", lambda: st.kkt_residuals(J, y, float("nan"), th, s), "lam"),
        ("kkt theta short", lambda: st.kkt_residuals(J, y, 0.1, th[:3], s), "theta"),
        ("kkt nu short", lambda: st.kkt_residuals(J, y, 0.1, th, s, nu[:2]), "nu"),
        ("gap vector lam", lambda: st.duality_gap(J, y, [0.1, 0.2], th, s, nu), "lam"),
        ("gap s 2-D", lambda: st.duality_gap(J, y, 0.1, th, np.zeros((2, 6)), nu), "s"),
        ("primal empty", lambda: st.primal_objective([], [], 0.1), "theta"),
        ("primal negative lam", lambda: st.primal_objective(th, s, -1.0), "lam"),
        ("primal string", lambda: st.primal_objective("abc", s, 0.1), "theta"),
        ("primal leading mismatch", lambda: st.primal_objective(np.zeros((3, 8)), np.zeros((4, 6)), 0.1), "theta"),
        ("dual nu short", lambda: st.dual_objective(J, y, nu[:3]), "nu"),
        ("dual empty", lambda: st.dual_objective(np.zeros((0, 0)), [], []), "J"),
        ("dual y wrong length", lambda: st.dual_objective(J, np.ones(5), np.ones(5)), "y"),
        ("certificate nu short", lambda: st.convex_certificate(J, y, 0.1, th, s, nu[:3]), "nu"),
        ("coherence empty", lambda: st.coherence(np.zeros((0, 3))), "J"),
        ("coherence 1-D", lambda: st.coherence(np.ones(3)), "J"),
        ("rank empty", lambda: st.numerical_rank(np.zeros((0, 0))), "J"),
        ("rank string", lambda: st.numerical_rank("abc"), "J"),
        ("rank complex", lambda: st.numerical_rank(np.ones((2, 2)) * 1j), "J"),
        ("recovery condition vector k", lambda: st.recovery_condition_holds(J, [1, 2], 2), "k"),
        ("recovery_error shapes", lambda: st.recovery_error(np.zeros(3), np.ones(4)), "estimate"),
        ("recovery_error empty", lambda: st.recovery_error([], []), "estimate"),
        ("recovery_error zero truth", lambda: st.recovery_error(np.ones(3), np.zeros(3)), "truth"),
        ("relative_difference shapes", lambda: st.relative_difference(np.zeros(3), np.zeros(4)), "a"),
        ("relative_difference empty", lambda: st.relative_difference([], []), "a"),
        ("relative_difference string", lambda: st.relative_difference("ab", [1.0, 2.0]), "a"),
        ("gradient_descent empty J", lambda: st.gradient_descent(np.zeros((0, 3)), [], alpha=1.0), "J"),
        ("gradient_descent y length", lambda: st.gradient_descent(J, np.ones(5), alpha=1.0), "y"),
        ("gradient_descent nan y", lambda: st.gradient_descent(J, np.full(6, np.nan), alpha=1.0), "y"),
        ("gradient_descent alpha 0", lambda: st.gradient_descent(J, y, alpha=0.0), "alpha"),
        ("flow_limit y length", lambda: st.flow_limit(J, np.ones(5), alpha=1.0), "y"),
        ("flow_limit alpha -1", lambda: st.flow_limit(J, y, alpha=-1.0), "alpha"),
        ("solve_convex lam 0", lambda: st.solve_convex(J, y, 0.0), "lam"),
        ("solve_convex y length", lambda: st.solve_convex(J, np.ones(5), 0.1), "y"),
        ("solve_convex_batched y shape", lambda: st.solve_convex_batched(J, np.ones(5), 0.1), "y"),
        ("solve_convex_batched lam nan", lambda: st.solve_convex_batched(J, y, float("nan")), "lam"),
        ("gram_factor empty", lambda: st.gram_factor(np.zeros((0, 0))), "J"),
        ("make_problem N -1", lambda: st.make_problem(N=-1, p=3, r=1, k=1), "N"),
        ("make_problem r > min(N, p)", lambda: st.make_problem(N=5, p=3, r=10, k=1), "r"),
        ("make_problem k > N", lambda: st.make_problem(N=5, p=8, r=1, k=9), "k"),
        ("make_problem seed -1", lambda: st.make_problem(N=5, p=8, r=1, k=1, random_state=-1), "random_state"),
        ("hessian_h u length", lambda: st.hessian_h(J, y, th, np.zeros(3), np.zeros(6)), "u"),
        ("objective_h empty", lambda: st.objective_h(np.zeros((0, 0)), [], [], [], []), "J"),
        ("classify u length", lambda: st.classify_critical_point(J, y, th, np.zeros(3), np.zeros(6)), "u"),
    ]
    for label, fn, name in cases:
        api("soptheory API", label, fn, name=name)


def subprocesses(tmp):
    py = sys.executable
    subproc("subprocess", "sop-train --list-presets | head -1", f"{py} -m sopdeep --list-presets | head -1", shell=True)
    subproc("subprocess", "SOP_DEBUG=false with a bad dataset", [py, "-m", "sopdeep", "--dataset", "nope"],
            env={"SOP_DEBUG": "false"}, name="nope")
    subproc("subprocess", "sop-train --seed 18446744073709551616", [py, "-m", "sopdeep", "--seed", str(2**64),
                                                                     "--out", str(tmp / "sp-seed")], name="seed")
    subproc("subprocess", "figures --jobs 0", [py, "-m", "figures", "fig3", "--jobs", "0"], name="--jobs")
    out = tmp / "sp-fig"
    out.mkdir()
    (out / "fig3_data.csv").write_text("N,p\n")
    subproc("subprocess", "figures fig3 header-only table", [py, "-m", "figures", "fig3", "--redraw", "--out", str(out)],
            name="fig3_data.csv")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--verbose", action="store_true", help="print every case")
    ap.add_argument("--json", help="also write the cases to this JSON file")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))   # figures/ is not installed: the tree's own
    import matplotlib

    matplotlib.use("Agg")
    m = _imports()
    with tempfile.TemporaryDirectory(prefix="probe-bad-input-") as tmp:
        tmp = Path(tmp)
        for step in (lambda: figure_tables(tmp), lambda: figure_args(tmp), run_phase_jobs, lambda: phase_tables(tmp),
                     lambda: run_files(tmp, m), lambda: impossible_data(tmp, m), lambda: configs(tmp, m),
                     lambda: train_cli(tmp, m), lambda: failures(m), theory, lambda: subprocesses(tmp)):
            step()
    counts = Counter(outcome for _, _, outcome, _ in RESULTS)
    by_group: dict[str, Counter] = {}
    for group, case, outcome, detail in RESULTS:
        by_group.setdefault(group, Counter())[outcome] += 1
        if args.verbose or outcome != "clear":
            print(f"{outcome:9s} [{group}] {case}: {detail}")
    print()
    for group, c in by_group.items():
        print(f"{group:18s} " + " ".join(f"{o}={c[o]}" for o in OUTCOMES if c[o]))
    print(f"TOTAL {len(RESULTS)} cases: " + ", ".join(f"{o} {counts[o]}" for o in OUTCOMES))
    if args.json:
        Path(args.json).write_text(json.dumps([dict(zip(("group", "case", "outcome", "detail"), r)) for r in RESULTS],
                                              indent=1))


if __name__ == "__main__":
    main()
