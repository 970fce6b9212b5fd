"""sopcommon.cli: the one failure path of sop-train and python -m figures: SOP_DEBUG parsed once,
one line per failure, a closed output ends the command quietly."""

import io
import subprocess
import sys
from pathlib import Path

import pytest

from sopcommon.cli import EXIT_BROKEN_PIPE, debug_from_env, exception_chain, fail, one_line, quiet_broken_pipe

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("value, on", [
    ("1", True), ("true", True), ("TRUE", True), ("Yes", True), (" on ", True),
    ("0", False), ("false", False), ("False", False), ("no", False), ("OFF", False), ("", False), ("  ", False),
    ("2", True),     # set to something that is not an "off" spelling: the traceback was asked for
])
def test_sop_debug_spellings(value, on):
    assert debug_from_env({"SOP_DEBUG": value}) is on


def test_sop_debug_unset_is_off(monkeypatch):
    monkeypatch.delenv("SOP_DEBUG", raising=False)
    assert debug_from_env() is False


def test_fail_prints_one_line(capsys):
    fail("prog", "two\nlines  and\tspaces")
    fail("prog", ValueError("x" * 50), kind="interrupted", limit=10)
    assert capsys.readouterr().err.splitlines() == ["prog: error: two lines and spaces",
                                                    "prog: interrupted: xxxxxxx..."]


def test_one_line_of_an_exception_and_its_chain():
    assert one_line(RuntimeError()) == "RuntimeError"
    assert one_line(KeyError("lr")) == "missing key 'lr'"
    try:
        try:
            raise OSError(28, "No space left on device")
        except OSError as low:
            raise RuntimeError("write failed") from low
    except RuntimeError as exc:
        assert [type(e).__name__ for e in exception_chain(exc)] == ["RuntimeError", "OSError"]


class ClosedPipe(io.StringIO):
    """stdout whose reader went away (`... | head` after head exited)."""

    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")


def test_a_broken_pipe_is_a_quiet_exit(monkeypatch, capsys):
    @quiet_broken_pipe
    def main():
        print("line")
        return 0

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main() == EXIT_BROKEN_PIPE
    monkeypatch.undo()
    assert capsys.readouterr().err == ""


def test_sop_train_list_presets_into_a_closed_pipe_is_quiet(monkeypatch, capsys):
    from sopdeep.cli import main

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["--list-presets"]) == EXIT_BROKEN_PIPE
    monkeypatch.undo()
    assert capsys.readouterr().err == ""


def test_figures_into_a_closed_stderr_is_quiet(tmp_path, monkeypatch):
    from figures.cli import main

    monkeypatch.setattr(sys, "stderr", ClosedPipe())         # its log and error lines go to stderr
    assert main(["fig2", "--redraw", "--out", str(tmp_path)]) == EXIT_BROKEN_PIPE


def test_sop_train_into_a_closed_pipe_subprocess_has_no_traceback():
    # a real pipe whose reader is closed before the command writes: BrokenPipeError on the write
    proc = subprocess.Popen([sys.executable, "-m", "sopdeep", "--list-presets"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == EXIT_BROKEN_PIPE, err
    assert err == ""


@pytest.mark.parametrize("value", ["off", "false", "No"])
def test_sop_train_debug_off_spellings_keep_the_one_line(tmp_path, monkeypatch, capsys, value):
    from sopdeep.cli import EXIT_USAGE, main

    monkeypatch.setenv("SOP_DEBUG", value)
    assert main(["--dataset", "cifar10", "--out", str(tmp_path / "o")]) == EXIT_USAGE   # no --data-root
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("sop-train: error: "), err
