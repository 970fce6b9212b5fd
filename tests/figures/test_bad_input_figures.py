"""Figure data tables read back are checked (issue 18): a truncated, empty, garbage, column-less or
other figure's table is one named error line, exit 1, and the published figures stay as they were;
``--jobs`` is capped at the cores, an empty ``--out`` refused."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from figures.cli import main
from figures.registry import FIGURES
from sopcommon.files import DataFileError
from soptheory.phase import load_table

COMMITTED = Path(__file__).resolve().parents[2] / "results" / "figures"


def _damage(kind, good: bytes, other: bytes) -> bytes:
    lines = good.decode().splitlines(keepends=True)
    return {
        "empty": b"",
        "header only": lines[0].encode(),
        "truncated": good[: len(good) // 2 + 7],                  # cut inside a row
        "garbage row": (lines[0] + lines[1] + "1,2,x\n" + "".join(lines[2:])).encode(),
        "bad number": (lines[0] + ",".join(f if i != 2 else "abc" for i, f in enumerate(lines[1].split(",")))
                       + "".join(lines[2:])).encode(),         # column 2 (r, or seed) is read
        "missing column": "\n".join(",".join(f for i, f in enumerate(r.rstrip("\n").split(",")) if i != 2)
                                    for r in lines).encode(),
        "other figure": other,
        "not utf-8": b"\xff\xfe" + good[:50],
        "binary": bytes(range(256)),
    }[kind]


KINDS = ["empty", "header only", "truncated", "garbage row", "bad number", "missing column", "other figure",
         "not utf-8", "binary"]


@pytest.mark.parametrize("name,other", [("fig3", "fig4"), ("fig4", "fig3"), ("fig_memorisation", "fig3")])
@pytest.mark.parametrize("kind", KINDS)
def test_damaged_table_is_one_named_line_and_touches_nothing(tmp_path, capsys, name, other, kind):
    fig = FIGURES[name]
    data = tmp_path / fig.DATA_FILE
    good = (COMMITTED / fig.DATA_FILE).read_bytes()
    data.write_bytes(_damage(kind, good, (COMMITTED / FIGURES[other].DATA_FILE).read_bytes()))
    png = tmp_path / f"{fig.NAME}.png"
    png.write_bytes(b"the figure published before")          # an earlier result
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert main([name, "--redraw", "--out", str(tmp_path), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("figures: error: ") and fig.DATA_FILE in err[0], err
    assert "Traceback" not in err[0]
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if not p.name.startswith(".")}
    assert after == before


@pytest.mark.parametrize("name", ["fig2", "fig_bridge_alpha", "fig_bridge_jacobian", "fig_bridge_linearized"])
@pytest.mark.parametrize("kind", ["empty", "truncated", "not an npz", "missing key"])
def test_damaged_npz_data_is_one_named_line(tmp_path, capsys, name, kind):
    fig = FIGURES[name]
    data = tmp_path / fig.DATA_FILE
    good = (COMMITTED / fig.DATA_FILE).read_bytes()
    if kind == "missing key":
        with np.load(COMMITTED / fig.DATA_FILE) as z:
            arrays = {k: z[k] for k in list(z.files)[1:]}
        np.savez(data, **arrays)
    else:
        data.write_bytes({"empty": b"", "truncated": good[: len(good) // 2], "not an npz": b"a,b\n1,2\n"}[kind])
    args = [name, "--redraw", "--out", str(tmp_path), "--no-progress"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fig.DATA_FILE in err[0], err
    assert not (tmp_path / f"{fig.NAME}.png").exists()


def test_load_table_names_the_file_and_the_column(tmp_path):
    path = tmp_path / "t.csv"
    for text, match in [("", "empty"), ("a,b\n", "empty"), ("a,b\n1,2\n3\n", "row 3 has 1 fields"),
                        ("a,b\n1,x\n", "column b is not a number"), ("a\n1\n", "missing column")]:
        path.write_text(text)
        with pytest.raises(DataFileError, match=match) as info:
            load_table(path, {"a": "int", "b": "number"})
        assert str(path) in str(info.value)
    with pytest.raises(DataFileError, match="no such"):
        load_table(tmp_path / "absent.csv")


@pytest.mark.parametrize("jobs", ["10000", str((os.cpu_count() or 1) + 1), str(2**40)])
def test_jobs_is_capped_at_the_cores(tmp_path, capsys, monkeypatch, jobs):
    import figures.cli as cli

    seen = {}
    monkeypatch.setattr(cli, "run", lambda args, where=None: seen.setdefault("n_jobs", args.n_jobs))
    assert main(["fig3", "--quick", "--jobs", jobs, "--out", str(tmp_path)]) == 0
    assert seen["n_jobs"] == (os.cpu_count() or 1)
    assert "capped at" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["fig3", "--jobs", "0"], ["fig3", "--jobs", "-5"], ["fig3", "--out", ""],
                                  ["fig3", "--out", "  "]])
def test_bad_jobs_and_empty_out_are_refused(tmp_path, capsys, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2 and list(tmp_path.iterdir()) == []
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("figures: error:")


def test_run_phase_caps_workers(monkeypatch):
    import soptheory.phase as phase
    from soptheory._validation import check_jobs

    assert check_jobs(10**6, cores=4) == 4 and check_jobs(10**6, n_tasks=2, cores=4) == 2
    assert check_jobs(-1, cores=3) == 3
    for bad in (0, -2, 1.5, "4", True):
        with pytest.raises(ValueError, match="n_jobs"):
            phase.run_phase({"N": [10], "p": [12], "r": [1], "k": [1], "lam": [0.1]}, trials=1, n_jobs=bad)


def test_a_damaged_data_file_is_described_in_one_line_without_a_class_name(tmp_path):
    from figures.cli import describe

    line = describe(DataFileError(tmp_path / "fig4_data.csv", "damaged data file: no rows"))
    assert "fig4_data.csv" in line and "damaged data file" in line and "DataFileError" not in line
    assert "\n" not in line
