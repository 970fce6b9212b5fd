"""The one-line failure path of both command lines (``sop-train``, ``python -m figures``).

After its arguments are parsed a command prints every failure as one line ``PROG: error: ...``
(:func:`fail`) and returns a non-zero status; the traceback is shown only on request
(``--debug``, or the environment variable ``SOP_DEBUG``: :func:`debug_from_env`). An output
closed early (``sop-train --list-presets | head -1``) ends the command quietly
(:func:`quiet_broken_pipe`).

>>> one_line(KeyError("lr"))
"missing key 'lr'"
>>> one_line("two\\n  lines", limit=6)
'two...'
"""

from __future__ import annotations

import functools
import os
import signal
import sys

__all__ = ["DEBUG_ENV", "EXIT_BROKEN_PIPE", "debug_from_env", "exception_chain", "fail", "one_line",
           "quiet_broken_pipe"]

DEBUG_ENV = "SOP_DEBUG"
_ON = ("1", "true", "yes", "on")
_OFF = ("", "0", "false", "no", "off")
# 128 + SIGPIPE: the status a shell reports for a writer whose reader went away (as `yes | head`)
EXIT_BROKEN_PIPE = 128 + getattr(signal, "SIGPIPE", 13)


def debug_from_env(environ=None):
    """Whether ``SOP_DEBUG`` asks for tracebacks.

    ``1``, ``true``, ``yes``, ``on`` (any case, surrounding spaces ignored) are on; ``0``,
    ``false``, ``no``, ``off`` and unset or empty are off. Any other value is on: the variable was
    set, and a typo must not hide the traceback that was asked for.

    >>> [debug_from_env({"SOP_DEBUG": v}) for v in ("1", "TRUE", " on ", "false", "Off", "0", "")]
    [True, True, True, False, False, False, False]
    """
    value = (os.environ if environ is None else environ).get(DEBUG_ENV, "").strip().lower()
    return value in _ON or value not in _OFF


def one_line(what, limit=None):
    """``what`` (a message, or an exception: its message, else its type's name) as one line.

    Runs of whitespace, newlines included, become one space; a ``KeyError``'s bare key reads
    ``missing key ...``; with ``limit`` the line is cut to at most ``limit`` characters.
    """
    if isinstance(what, BaseException):
        text = str(what) or type(what).__name__
        if isinstance(what, KeyError):
            text = f"missing key {text}"
    else:
        text = str(what)
    text = " ".join(text.split())
    if limit is not None and len(text) > limit:
        text = text[:limit - 3] + "..."
    return text


def exception_chain(exc):
    """Yield ``exc`` and every exception it was raised from or while handling (no repeats)."""
    seen = set()
    todo = [exc]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [e.__cause__, e.__context__]


def fail(prog, message, *, kind="error", limit=None):
    """Print ``prog: kind: message`` (``message`` made :func:`one_line`) as one line on stderr."""
    print(f"{prog}: {kind}: {one_line(message, limit)}", file=sys.stderr, flush=True)


def quiet_broken_pipe(main):
    """Wrap a command's ``main`` so that a closed output (``BrokenPipeError``) ends it quietly.

    The wrapped function returns :data:`EXIT_BROKEN_PIPE` instead of raising; the closed streams
    are pointed at ``os.devnull`` so that the interpreter's final flush does not report the same
    error again ("Exception ignored ... BrokenPipeError").
    """
    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except BrokenPipeError:
            _silence_closed_streams()
            return EXIT_BROKEN_PIPE
    return wrapper


def _silence_closed_streams():
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        try:
            stream.flush()
            continue                        # still open: keep it
        except (OSError, ValueError):
            pass
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass                            # no file descriptor (a test's stand-in): nothing to flush
