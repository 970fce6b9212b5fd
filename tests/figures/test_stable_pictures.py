"""The pictures come back byte for byte: a drawing is deterministic (twice in one process, and in
another process), and a rerun keeps the published png and pdf when they carry the stamp of the
drawing it would make (same data, same drawing code), whatever the matplotlib version would draw.

Figure 3 is drawn from its committed data file (no computation: seconds).
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import figures.output
from figures import fig_recovery_error as fig3
from figures.cli import main
from figures.output import drawing_stamp, keep_pictures, picture_stamp
from figures.style import stamped

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "results" / "figures" / fig3.DATA_FILE
PICTURES = [f"{fig3.NAME}.png", f"{fig3.NAME}.pdf"]


def _draw(out, stamp="0" * 64):
    with stamped(stamp):
        fig3.plot(DATA, out)
    return {name: (out / name).read_bytes() for name in PICTURES}


def test_a_figure_drawn_twice_has_the_same_bytes_in_one_process_and_in_another(tmp_path):
    first, second = _draw(tmp_path / "a"), _draw(tmp_path / "b")
    assert first == second
    # another process: no state of the first drawing (font caches, counters) carries over
    code = ("import sys; from pathlib import Path; from figures import fig_recovery_error as f; "
            "from figures.style import stamped\n"
            f"with stamped({'0' * 64!r}): f.plot(Path(sys.argv[1]), Path(sys.argv[2]))")
    subprocess.run([sys.executable, "-c", code, str(DATA), str(tmp_path / "c")], cwd=ROOT, check=True)
    assert {name: (tmp_path / "c" / name).read_bytes() for name in PICTURES} == first
    # no creation date, producer or software version in either file
    pdf, png = first[f"{fig3.NAME}.pdf"], first[f"{fig3.NAME}.png"]
    assert b"CreationDate" not in pdf and b"Matplotlib" not in pdf and b"Software" not in png


def test_the_stamp_written_is_the_stamp_read_and_unstamped_files_have_none(tmp_path):
    stamp = drawing_stamp(fig3, DATA)
    _draw(tmp_path, stamp)
    assert [picture_stamp(tmp_path / name) for name in PICTURES] == [stamp, stamp]
    fig3.plot(DATA, tmp_path / "plain")        # outside stamped(): no stamp
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (tmp_path / "text.pdf").write_text("not a pdf")
    for path in [tmp_path / "plain" / PICTURES[0], tmp_path / "plain" / PICTURES[1], tmp_path / "bad.png",
                 tmp_path / "text.pdf", tmp_path / "absent.png"]:
        assert picture_stamp(path) is None


def test_the_stamp_follows_the_data_and_the_drawing_code(tmp_path, monkeypatch):
    stamp = drawing_stamp(fig3, DATA)
    moved = tmp_path / "data.csv"
    moved.write_bytes(DATA.read_bytes().replace(b"\n", b"\n", 1) + b"\n")   # one more byte
    assert drawing_stamp(fig3, moved) != stamp
    # the figure's module edited: its source file differs
    source = tmp_path / "fig_recovery_error.py"
    source.write_text(Path(fig3.__file__).read_text() + "\n# edited\n")
    monkeypatch.setattr(fig3, "__file__", str(source))
    assert drawing_stamp(fig3, DATA) != stamp


def _published(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    shutil.copyfile(DATA, out / fig3.DATA_FILE)
    assert main([fig3.NAME, "--redraw", "--out", str(out)]) == 0
    return out


def test_a_rerun_keeps_stamped_pictures_and_redraws_when_the_data_change(tmp_path, monkeypatch, capsys):
    out = _published(tmp_path)
    before = {name: (out / name).read_bytes() for name in PICTURES}
    assert picture_stamp(out / PICTURES[0]) == drawing_stamp(fig3, out / fig3.DATA_FILE)

    def other_matplotlib(data_path, out_dir):   # would draw other bytes: must not be called
        raise AssertionError("an unchanged figure was drawn again")

    monkeypatch.setattr(fig3, "plot", other_matplotlib)
    capsys.readouterr()
    assert main([fig3.NAME, "--redraw", "--out", str(out)]) == 0
    assert "kept fig3.png, fig3.pdf" in capsys.readouterr().err
    assert {name: (out / name).read_bytes() for name in PICTURES} == before
    # new data: the stamp no longer matches and the figure is drawn
    monkeypatch.undo()
    (out / fig3.DATA_FILE).write_bytes((out / fig3.DATA_FILE).read_bytes() + b"\n")
    calls = []

    def redraw(data_path, out_dir):
        calls.append(data_path)
        for name in PICTURES:
            (Path(out_dir) / name).write_bytes(b"redrawn")
        return [Path(out_dir) / name for name in PICTURES]

    monkeypatch.setattr(fig3, "plot", redraw)
    assert main([fig3.NAME, "--redraw", "--out", str(out)]) == 0
    assert len(calls) == 1 and (out / PICTURES[0]).read_bytes() == b"redrawn"


@pytest.mark.parametrize("damaged", PICTURES)
def test_a_missing_or_unstamped_picture_redraws_both(tmp_path, damaged):
    out = _published(tmp_path)
    stamp = picture_stamp(out / PICTURES[0])
    (out / damaged).write_bytes(b"replaced by hand")
    stage = tmp_path / "stage"
    stage.mkdir()
    assert keep_pictures(fig3, out, stage, stamp) == [] and not list(stage.iterdir())
    assert figures.output.picture_stamp(out / damaged) is None
