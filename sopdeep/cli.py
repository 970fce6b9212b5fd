"""Command line: ``sop-train`` / ``python -m sopdeep``.

Example::

    sop-train --dataset cifar10 --data-root ../shared/data --noise sym --noise-rate 0.4 \\
        --method sop --arch preact18 --epochs 120 --out runs/x [--resume] [--set key=value ...]

Precedence: defaults < ``--preset`` < named flags < ``--set key=value`` (values parsed as JSON,
e.g. ``--set milestones=[40,80]``). Every key of :class:`sopdeep.config.TrainConfig` can be set.

``sop-train report RUN [RUN ...] --out FILE.png`` draws runs side by side from their metrics files
(:func:`sopdeep.curves.write_report`; one panel per metric, one line per run); a folder that is not a
run, no run given or an unwritable ``--out`` is one error line.

``--resume`` alone is enough: ``sop-train --out RUN --resume`` continues RUN with the
configuration saved there (``RUN/config.json``, else the checkpoint's copy); flags given with it
override the saved values, e.g. ``--set epochs=60`` extends the run on purpose.

Failures. After the command line is parsed every failure prints one line to stderr,
``sop-train: error: <what went wrong and what to do>``, never a traceback (``--debug`` or the
environment variable ``SOP_DEBUG=1`` re-raises the exception to show it). Exit status:

* 0: the run finished; its summary is printed to stdout as strict JSON (undefined metrics are
  ``null``, never a bare ``NaN``);
* 2 (:data:`EXIT_USAGE`): the command line or the configuration it names was refused before
  training started: a bad flag or ``--set`` value (argparse's usage line + one error line), a
  ``--resume`` folder with no saved run, ``--device cuda`` without CUDA, no ``--data-root``;
* 1 (:data:`EXIT_FAILURE`): the run failed: missing or damaged data, a damaged checkpoint, an
  unwritable or full disk, a non-finite loss, a run folder used by another run, ...;
* 130 (:data:`EXIT_INTERRUPTED`): Ctrl-C; the line says what was kept and the exact command that
  resumes the run;
* 141 (:data:`sopcommon.cli.EXIT_BROKEN_PIPE`): the output was closed early
  (``sop-train --list-presets | head -1``): a quiet exit, no traceback.
"""

from __future__ import annotations

import argparse
import datetime
import errno
import json
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from sopcommon.cli import debug_from_env, exception_chain, fail, one_line, quiet_broken_pipe
from sopdeep.config import TrainConfig
from sopdeep.presets import PRESETS, REFERENCE_ONLY, list_presets, preset_rows
from sopdeep.runs import RunError, RunFolderError, saved_config, strict_json

__all__ = ["main", "report_main", "build_parser", "build_report_parser", "config_from_args", "describe_failure",
           "EXIT_FAILURE", "EXIT_USAGE", "EXIT_INTERRUPTED"]

PROG = "sop-train"
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell's convention
CONFIG_NAME = "config.json"

# named flags: (flag, config key, type)
_FLAGS = (
    ("--dataset", "dataset", str), ("--data-root", "data_root", str), ("--noise", "noise", str),
    ("--noise-rate", "noise_rate", float), ("--noise-seed", "noise_seed", int),
    ("--method", "method", str), ("--arch", "arch", str), ("--epochs", "epochs", int),
    ("--batch-size", "batch_size", int), ("--lr", "lr", float), ("--seed", "seed", int),
    ("--device", "device", str), ("--out", "out", str), ("--threads", "threads", int),
    ("--image-size", "image_size", int),
)


class UsageError(Exception):
    """The command line was refused before training started (exit status 2)."""


def build_parser() -> argparse.ArgumentParser:
    """The parser; its help lists every setting with its type, allowed values and default, read
    from the declarations (:mod:`sopdeep.options`), each method's options under its own heading."""
    from sopdeep.config import common_fields
    from sopdeep.options import describe_option

    declared = {f.name: f for f in common_fields()}
    p = argparse.ArgumentParser(
        prog=PROG, description="Train a network on noisy labels with CE, SOP, SOP+ or a baseline. "
                               "(sop-train report RUN [RUN ...] --out FILE.png draws runs side by side.)",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_settings_help())
    for flag, key, typ in _FLAGS:
        p.add_argument(flag, dest=key, type=typ, default=None, metavar=key.upper(),
                       help=describe_option(declared[key]).replace("%", "%%"))
    p.add_argument("--preset", default=None, help="named override set (--list-presets shows them)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="any setting below, value as JSON or a string (repeatable)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in OUT with its saved configuration (flags given override it)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--list-presets", action="store_true", help="print the presets as a table and exit")
    p.add_argument("--json", action="store_true", help="with --list-presets: one JSON document instead of the table")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--debug", action="store_true",
                   help="show the full traceback of a failure (also: environment SOP_DEBUG=1)")
    return p


def _settings_help() -> str:
    """The epilog: every --set key, the common ones first, then each method's own."""
    from sopdeep.config import common_fields
    from sopdeep.methods import METHODS, option_fields
    from sopdeep.options import describe_option

    lines = ["settings (--set KEY=VALUE), common to every method:"]
    lines += [f"  {f.name}: {describe_option(f)}" for f in common_fields()]
    listed: dict[str, set[str]] = {}
    for name, cls in METHODS.items():
        own = option_fields(name)
        names = {f.name for f in own}
        # a method extending another's options (SOP+ of SOP) lists only what it adds
        base = next((m for m, seen in listed.items() if seen and seen < names), None)
        lines.append("")
        if base is not None:
            lines.append(f"method {name}: {cls.summary}; the options of {base}, and:")
            own = tuple(f for f in own if f.name not in listed[base])
        else:
            lines.append(f"method {name}: {cls.summary}" + ("; its options:" if own else "; no options"))
        lines += [f"  {f.name}: {describe_option(f)}" for f in own]
        listed[name] = names
    lines.append("")
    lines.append("Exit status: 0 done, 1 run failed, 2 bad command line or configuration, 130 interrupted. "
                 "Failures print one line; --debug (or SOP_DEBUG=1) shows the traceback.")
    return "\n".join(lines)


def config_from_args(args: argparse.Namespace, base: TrainConfig | None = None) -> TrainConfig:
    """The configuration the command line asks for, on top of ``base`` (default: the defaults;
    ``--resume``: the run's saved configuration). Raises ``ValueError`` naming a bad key."""
    config = TrainConfig() if base is None else base
    if args.preset is not None:
        if args.preset not in PRESETS:
            import difflib

            close = difflib.get_close_matches(args.preset, sorted(PRESETS), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"unknown preset {args.preset!r}{hint} (--list-presets shows all {len(PRESETS)})")
        config = config.replace(**PRESETS[args.preset])
    named = {key: getattr(args, key) for _, key, _ in _FLAGS if getattr(args, key) is not None}
    if args.no_progress:
        named["progress"] = False
    config = config.replace(**named)
    return TrainConfig.from_overrides(args.overrides, base=config)


def _resume_config(args: argparse.Namespace) -> TrainConfig:
    """The saved configuration of the run ``--resume`` continues, with the given flags on top."""
    from sopdeep.runs import CHECKPOINT as CHECKPOINT_NAME

    folder = Path(config_from_args(args).out)
    if not folder.is_dir():
        raise UsageError(f"--resume: run folder {folder} does not exist; check --out "
                         "(or drop --resume to start a new run there)")
    try:
        saved = saved_config(folder)
    except RunFolderError as exc:
        raise UsageError(f"--resume: {_one_line(exc)} (or drop --resume to start a new run)") from exc
    if not (folder / CHECKPOINT_NAME).is_file():
        raise UsageError(
            f"--resume: {folder} has a saved configuration but no {CHECKPOINT_NAME} to resume from "
            "(the run stopped before its first checkpoint, or ran with checkpoint=false); start it "
            "again without --resume in another --out")
    try:
        return config_from_args(args, base=saved.replace(out=str(folder)))
    except ValueError as exc:
        raise UsageError(f"--resume: {_one_line(exc)}") from exc


def _preflight(config: TrainConfig) -> None:
    """Refuse, before anything is written, what cannot run on this machine or without data."""
    from sopdeep.datasets import dataset_spec

    if dataset_spec(config.dataset).needs_root and not config.data_root:
        raise UsageError(f"dataset {config.dataset!r} needs --data-root (a local folder or .npz "
                         "file; nothing is downloaded)")
    if not str(config.out).strip():   # "" is the current folder: a run folder among the user's files
        raise UsageError("--out is empty: name a run folder (e.g. --out runs/first)")
    out = Path(config.out)
    for folder in (out, *out.parents):
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"--out {out}: {folder} is a file, not a folder; choose another --out")
    if config.tensorboard:
        from sopdeep.curves import check_tensorboard

        try:
            check_tensorboard()
        except ValueError as exc:
            raise UsageError(_one_line(exc)) from None
    if config.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA device is visible"
            raise UsageError(f"--device cuda asked, but CUDA is not available ({why}); use "
                             "--device cpu (or auto)")


# ------------------------------------------------------------------------------------------------
# failures -> one line


# flattening and the chain of causes: the figures CLI's too (sopcommon.cli)
_one_line = one_line
_chain = exception_chain


def _torch_serialization_call(exc: BaseException) -> str | None:
    """``"load"`` or ``"save"`` when ``exc`` was raised inside ``torch.load`` / ``torch.save``."""
    import traceback

    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename).parts[-2:] == ("torch", "serialization.py") and frame.name in ("load", "save"):
            return frame.name
    return None


def _free_space(folder: Path) -> str:
    for p in (folder, *folder.parents):
        try:
            return f"{shutil.disk_usage(p).free / 2**20:.0f} MiB free there"
        except OSError:
            continue
    return "free space unknown"


def _resume_hint(config: TrainConfig) -> str:
    from sopdeep.runs import CHECKPOINT as CHECKPOINT_NAME

    if config.checkpoint and (Path(config.out) / CHECKPOINT_NAME).is_file():
        return f"; then resume with: {_resume_command(config)}"
    return ""


def describe_failure(exc: BaseException, config: TrainConfig, *, resume: bool = False) -> str:
    """One line naming what went wrong in a run of ``config`` and what to do.

    Written against exception types and errnos (never a module's internals): full disk
    (``ENOSPC`` anywhere in the chain of causes, or torch's bare write error), permissions, missing
    files, unreadable checkpoints, a held run-folder lock, out of memory; messages of this
    package's own errors (``ValueError``, ``sopdeep`` exception types, ``OSError`` without errno)
    are already one clear line and are kept.

    >>> describe_failure(OSError(28, "No space left on device", "/data/run/checkpoint.pt"),
    ...                  TrainConfig(out="/data/run"))
    'no space left on device writing /data/run/checkpoint.pt: free some space or choose another --out'
    """
    from sopdeep.runs import CHECKPOINT as CHECKPOINT_NAME

    out = Path(config.out)
    ckpt = out / CHECKPOINT_NAME
    chain = list(_chain(exc))
    text = " | ".join(_one_line(e) for e in chain)

    # full disk: an OSError(ENOSPC) anywhere in the chain, or its message
    for e in chain:
        if (isinstance(e, OSError) and e.errno == errno.ENOSPC) or "No space left" in str(e):
            where = getattr(e, "filename", None) or out
            return (f"no space left on device writing {where}: free some space or choose another "
                    f"--out{_resume_hint(config)}")
    # torch.save to a path reports a failed write only as "[enforce fail ...] unexpected pos"
    torch_call = _torch_serialization_call(exc)
    if isinstance(exc, RuntimeError) and (torch_call == "save" or any(s in text for s in (
            "PytorchStreamWriter", "unexpected pos", "file write failed", "iostream error"))):
        return (f"writing a file into {out} failed ({_one_line(exc)}): most likely the disk is full "
                f"({_free_space(out)}) or the folder is not writable; fix that{_resume_hint(config)}")
    if isinstance(exc, BrokenPipeError):
        return f"output closed early (broken pipe); the run's files are in {out}"
    if isinstance(exc, PermissionError):
        return (f"permission denied: {exc.filename or out}: make it writable/readable, or choose "
                f"another --out / --data-root")
    if isinstance(exc, BlockingIOError) or (isinstance(exc, OSError) and exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK)):
        return (f"run folder {out} is locked by another running sop-train: wait for it to finish, "
                "or choose another --out")
    # a damaged checkpoint (torch's reader, the restricted unpickler, an empty or cut file)
    import pickle
    import zipfile

    reading_ckpt = resume and ckpt.is_file()
    if reading_ckpt and (torch_call == "load" or "PytorchStreamReader" in text
                         or isinstance(exc, (pickle.UnpicklingError, EOFError, zipfile.BadZipFile))):
        return (f"cannot read checkpoint {ckpt}: it is damaged or truncated ({type(exc).__name__}: "
                f"{_one_line(exc)[:200]}); restore it from a copy, or start a new run in another --out")
    if isinstance(exc, OSError) and exc.errno is not None:
        name = f": {exc.filename}" if exc.filename else ""
        standard = os.strerror(exc.errno)
        what = standard.lower() if exc.strerror in (None, standard) else _one_line(exc.strerror)
        if isinstance(exc, (NotADirectoryError, FileExistsError, IsADirectoryError)) or (
                exc.filename and Path(str(exc.filename)).resolve().is_relative_to(out.resolve())):
            return f"cannot write the run folder ({what}{name}): choose another --out"
        return f"{what}{name}: check the path (--data-root, cache_path, cifar_n_path)"
    # torch's CUDA message says "out of memory"; its CPU allocator "DefaultCPUAllocator: can't
    # allocate memory: you tried to allocate N bytes"
    if isinstance(exc, MemoryError) or any(s in text.lower() for s in ("out of memory", "can't allocate memory")):
        return (f"out of memory on {config.device} ({_one_line(exc)[:160]}): lower batch_size / "
                "eval_batch_size (--set eval_batch_size=256) or use a smaller --arch")
    if isinstance(exc, ImportError):
        return f"missing package: {_one_line(exc)}: install it (pip install ...) and run again"
    own = isinstance(exc, (ValueError, FloatingPointError, OSError)) or \
        type(exc).__module__.split(".")[0] in ("sopdeep", "sopcommon")
    if own:
        message = _one_line(exc)
        from sopdeep.datasets.arrays import EmptyDatasetError

        if isinstance(exc, EmptyDatasetError) and config.data_root and config.data_root not in message:
            message += f" (read from {config.data_root})"   # the loader knew the file, the check does not
        if config.data_root and config.data_root in message and "--data-root" not in message:
            message += "; check --data-root"
        return message
    return (f"unexpected {type(exc).__name__}: {_one_line(exc)[:300]} (rerun with --debug for the "
            "traceback and report it)")


def _resume_command(config: TrainConfig) -> str:
    """The exact command that resumes this run: ``--resume`` plus the keys whose value differs
    from the configuration saved in the run folder (so nothing depends on memory)."""
    cmd = [PROG, "--out", config.out, "--resume"]
    try:
        saved = saved_config(config.out).to_dict()
    except (OSError, ValueError, RunError):
        saved = {}
    for key, value in config.to_dict().items():
        if key != "out" and saved.get(key) != value:
            cmd += ["--set", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    return shlex.join(cmd)


def _interrupted(config: TrainConfig, argv: list[str]) -> str:
    from sopdeep.runs import CHECKPOINT as CHECKPOINT_NAME

    ckpt = Path(config.out) / CHECKPOINT_NAME
    if config.checkpoint and ckpt.is_file():
        when = datetime.datetime.fromtimestamp(ckpt.stat().st_mtime).strftime("%H:%M:%S")
        return (f"kept the last checkpoint {ckpt} (written {when}) and the metrics so "
                f"far; resume with: {_resume_command(config)}")
    why = "checkpoint=false" if not config.checkpoint else "no epoch had finished"
    return (f"nothing kept to resume from ({why}); start again with: "
            f"{shlex.join([PROG, *argv])}")


def _say(kind: str, message: str) -> None:
    fail(PROG, message, kind=kind)


_debug_env = debug_from_env  # SOP_DEBUG: 1/true/yes/on, 0/false/no/off/empty (any case)


# ------------------------------------------------------------------------------------------------


def build_report_parser() -> argparse.ArgumentParser:
    """The parser of ``sop-train report``."""
    p = argparse.ArgumentParser(
        prog=f"{PROG} report", description="Draw training runs side by side from their metrics files "
        "(one panel per metric: test accuracy, train accuracy on the given and the clean labels, "
        "noise detection AUROC, learning rate; one line per run).")
    p.add_argument("runs", nargs="*", metavar="RUN", help="run folders (the --out of sop-train runs)")
    p.add_argument("--out", required=True, metavar="FILE", help="the picture to write: .png, .pdf or .svg")
    p.add_argument("--title", default="", help="title of the picture")
    p.add_argument("--debug", action="store_true", help="show the full traceback of a failure")
    return p


def report_main(argv: list[str]) -> int:
    """``sop-train report``: 0 and the picture's path on stdout; one error line and 2 for runs that
    cannot be drawn (none given, not a run folder, damaged metrics, a bad --out name), 1 when
    --out cannot be written."""
    from sopdeep.curves import write_report

    args = build_report_parser().parse_args(argv)
    try:
        write_report(args.runs, args.out, title=args.title)
    except (ValueError, OSError) as exc:   # RunFileError (damaged metrics) is a ValueError
        if args.debug or _debug_env():
            raise
        if isinstance(exc, OSError):
            why = exc.strerror or _one_line(exc)
            fail(f"{PROG} report", f"cannot write --out {args.out}: {why}; choose another --out")
            return EXIT_FAILURE
        fail(f"{PROG} report", _one_line(exc))
        return EXIT_USAGE
    print(args.out)
    return 0


@quiet_broken_pipe  # `sop-train --list-presets | head`: a quiet exit, not a traceback
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["report"]:  # the one subcommand; everything else is a training run's flags
        return report_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or _debug_env()
    if args.list_presets:
        if args.json:  # the machine form: every row of the table, overrides included
            print(json.dumps({"presets": preset_rows(), "reference_only": REFERENCE_ONLY}, indent=1))
        else:
            print(list_presets())
        return 0
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(_one_line(exc))  # argparse's form: usage line + one error line, exit 2
    try:
        if args.resume:
            config = _resume_config(args)
        if args.print_config:
            print(config.to_json())
            return 0
        _preflight(config)
        from sopdeep.training import train

        result = train(config, resume=args.resume)
        print(json.dumps(strict_json(result.summary), indent=2, sort_keys=True, allow_nan=False))
        return 0
    except UsageError as exc:
        if debug:
            raise
        _say("error", _one_line(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        if debug:
            raise
        _say("interrupted", _interrupted(config, argv))
        return EXIT_INTERRUPTED
    except Exception as exc:
        if debug:
            raise
        _say("error", describe_failure(exc, config, resume=args.resume))
        return EXIT_FAILURE

if __name__ == "__main__":
    sys.exit(main())
