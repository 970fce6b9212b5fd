"""Runs you can look at: ``curves.png`` in every run folder after each epoch, ``sop-train report`` of
several runs side by side, and the same scalars in TensorBoard (when installed)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from sopdeep.cli import main
from sopdeep.config import TrainConfig
from sopdeep.curves import CURVES, PANELS, RUN_PANELS, plot_run, plot_runs, write_report
from sopdeep.runs import METRICS_JSONL, write_metrics
from sopdeep.training import train

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ALL_TITLES = [p[1] for p in PANELS]
# the panels without known noise: no clean-label accuracy, no detection AUROC
NO_NOISE_TITLES = ["test accuracy", "train accuracy, given labels", "learning rate"]


def _config(out, **kw):
    base = dict(dataset="synthetic", arch="cnn", width=8, epochs=2, method="sop", batch_size=32, lr=0.05,
                schedule="constant", noise="sym", noise_rate=0.4, device="cpu", progress=False, out=str(out))
    base.update(kw)
    return TrainConfig(**base)


def _picture(path):
    """(width, height, number of distinct grey levels) of a PNG file."""
    from PIL import Image

    with Image.open(path) as im:
        grey = np.asarray(im.convert("L"))
    return grey.shape[1], grey.shape[0], len(np.unique(grey))


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """A SOP run and a CE run of 2 epochs; what the SOP run's folder held after epoch 1."""
    root = tmp_path_factory.mktemp("runs")
    seen = {}

    def after_epoch(epoch, row):
        if epoch == 0:
            path = root / "sop_run" / CURVES
            seen["bytes"] = path.read_bytes() if path.is_file() else None
            seen["size"] = _picture(path) if path.is_file() else None

    train(_config(root / "sop_run"), callbacks={"epoch": after_epoch})
    train(_config(root / "ce_run", method="ce"))
    return root / "sop_run", root / "ce_run", seen


def _rows(folder):
    return [json.loads(line) for line in (folder / METRICS_JSONL).read_text().splitlines()]


def test_a_run_folder_holds_its_curves_after_the_first_epoch_and_after_the_last(two_runs):
    sop, _, seen = two_runs
    assert seen["bytes"] is not None and seen["bytes"].startswith(PNG_SIGNATURE)
    width, height, levels = seen["size"]
    # three panels in a row at 110 dpi (about 980 x 320 pixels), and drawn: not one flat colour
    # (text, axes and curves in many grey levels)
    assert width > 800 and height > 250 and levels > 20
    assert len(seen["bytes"]) > 20_000
    final = (sop / CURVES).read_bytes()
    assert final.startswith(PNG_SIGNATURE) and final != seen["bytes"]   # redrawn with epoch 2


@pytest.mark.parametrize("redraw_after_s", [3600.0, 0.0])
def test_a_middle_epoch_redraws_the_curves_only_when_the_drawing_is_old(tmp_path, monkeypatch, redraw_after_s):
    import sopdeep.curves

    monkeypatch.setattr(sopdeep.curves, "REDRAW_AFTER_S", redraw_after_s)
    seen = []
    run = tmp_path / "run"
    train(_config(run, epochs=3), callbacks={"epoch": lambda epoch, row: seen.append((run / CURVES).read_bytes())})
    assert (seen[1] == seen[0]) == (redraw_after_s > 0)   # epoch 2: kept while fresh, else redrawn
    assert seen[2] != seen[1]                             # the last epoch is always drawn


def test_the_report_draws_one_panel_per_metric_and_one_line_per_run(two_runs, tmp_path):
    sop, ce, _ = two_runs
    out = tmp_path / "report.png"
    fig = write_report([sop, ce], out)
    assert out.read_bytes().startswith(PNG_SIGNATURE)
    assert [ax.get_title() for ax in fig.axes] == ALL_TITLES        # sym noise: every panel
    labels = ["sop: sop_run", "ce: ce_run"]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == labels
    for (column, *_), ax in zip(PANELS, fig.axes):
        assert [line.get_label() for line in ax.get_lines()] == labels
        for line, folder in zip(ax.get_lines(), (sop, ce)):
            # each line is the run's own metrics.jsonl column, read here independently
            rows = _rows(folder)
            assert list(line.get_xdata()) == [row["epoch"] for row in rows]
            assert list(line.get_ydata()) == [row[column] for row in rows]


def test_the_picture_of_one_run_has_its_accuracies_in_one_panel(two_runs):
    sop, _, _ = two_runs
    rows = _rows(sop)
    fig = plot_run(rows)
    assert [ax.get_title() for ax in fig.axes] == [p[0] for p in RUN_PANELS]
    accuracy = fig.axes[0]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == \
        ["test", "train, given labels", "train, clean labels"]
    for line, column in zip(accuracy.get_lines(), ("test_acc", "train_acc_noisy", "train_acc_clean")):
        assert list(line.get_ydata()) == [row[column] for row in rows]
    # without known noise: no clean-label line, no AUROC panel
    plain = [{k: v for k, v in row.items() if not k.startswith("monitor_")} for row in rows]
    fig = plot_run(plain)
    assert [ax.get_title() for ax in fig.axes] == ["accuracy", "learning rate"]
    assert len(fig.axes[0].get_lines()) == 2


def test_panels_follow_what_the_runs_know(tmp_path):
    rows = [{"epoch": e, "lr": 0.1, "test_acc": 0.5, "train_acc_noisy": 0.4, "train_acc_clean": 0.4}
            for e in (1, 2, 3)]
    # no noise: the trainer writes no monitor_* and the clean labels are the given ones
    assert [ax.get_title() for ax in plot_runs({"a": rows}).axes] == NO_NOISE_TITLES
    noisy = [dict(r, monitor_auroc=a) for r, a in zip(rows, (None, 0.7, float("nan")))]
    fig = plot_runs({"none": rows, "sym": noisy})
    assert [ax.get_title() for ax in fig.axes] == ALL_TITLES
    auroc = fig.axes[ALL_TITLES.index("noise detection AUROC")]
    # the run without noise has no AUROC line; undefined values are left out and the rest joined (a
    # test accuracy of every 5th epoch, eval_every, is a line, not dots lost between gaps)
    assert [line.get_label() for line in auroc.get_lines()] == ["sym"]
    assert list(auroc.get_lines()[0].get_xdata()) == [2] and list(auroc.get_lines()[0].get_ydata()) == [0.7]
    sparse = [dict(r, test_acc=a) for r, a in zip(rows, (None, 0.6, 0.7))]
    test = plot_runs({"sparse": sparse}).axes[0].get_lines()[0]
    assert list(test.get_xdata()) == [2, 3] and list(test.get_ydata()) == [0.6, 0.7]
    with pytest.raises(ValueError, match="at least one run"):
        plot_runs({})


def test_sop_train_report_writes_the_picture_and_prints_its_path(two_runs, tmp_path, capsys):
    sop, ce, _ = two_runs
    out = tmp_path / "sub" / "report.pdf"   # its folder is created; the format from the suffix
    assert main(["report", str(sop), str(ce), "--out", str(out), "--title", "two runs"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert out.read_bytes().startswith(b"%PDF")


def _one_error_line(capsys, *needles):
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("sop-train report: error: "), err
    for needle in needles:
        assert needle in err, err


@pytest.mark.parametrize("case", ["no runs", "absent", "not a run", "damaged", "suffix"])
def test_report_refuses_what_is_not_a_run_with_one_line(two_runs, tmp_path, capsys, case):
    sop, _, _ = two_runs
    out = tmp_path / "r.png"
    if case == "no runs":
        runs, needles = [], ["at least one run folder"]
    elif case == "absent":
        runs, needles = [str(tmp_path / "nowhere")], ["nowhere is not a run folder: no such folder"]
    elif case == "not a run":
        (tmp_path / "plain").mkdir()
        runs, needles = [str(sop), str(tmp_path / "plain")], ["plain is not a run folder", METRICS_JSONL]
    elif case == "damaged":
        bad = tmp_path / "bad"
        bad.mkdir()
        (bad / METRICS_JSONL).write_text('{"epoch": 1, "test_acc": 0.5}\n{"epoch": 2, "test_')
        runs, needles = [str(bad)], [str(bad / METRICS_JSONL), "line 2"]
    else:
        runs, needles, out = [str(sop)], ["out must end in .png, .pdf, .svg"], tmp_path / "r.jpg"
    assert main(["report", *runs, "--out", str(out)]) == 2
    _one_error_line(capsys, *needles)
    assert not out.exists()


def test_report_to_an_unwritable_place_is_one_line(two_runs, tmp_path, capsys):
    sop, _, _ = two_runs
    (tmp_path / "a_file").write_text("")
    out = tmp_path / "a_file" / "r.png"   # its folder is a file (a read-only folder means nothing to root)
    assert main(["report", str(sop), "--out", str(out)]) == 1
    _one_error_line(capsys, f"cannot write --out {out}")


def test_a_missing_matplotlib_warns_and_the_metrics_are_still_written(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)   # `import matplotlib` now raises ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    rows = [{"epoch": 1, "lr": 0.1, "test_acc": 0.5, "train_acc_noisy": 0.4, "train_acc_clean": 0.4}]
    with pytest.warns(RuntimeWarning, match=r"curves.png not drawn \(ModuleNotFoundError"):
        write_metrics(tmp_path, rows)
    assert [json.loads(line) for line in (tmp_path / METRICS_JSONL).read_text().splitlines()] == rows
    assert not (tmp_path / CURVES).exists()


# -- TensorBoard -------------------------------------------------------------------------------


def test_tensorboard_without_the_package_is_refused_before_the_run_starts(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)   # as if tensorboard were absent
    with pytest.raises(ValueError, match=r"tensorboard=True needs the tensorboard package .*pip install"):
        train(_config(tmp_path / "run", tensorboard=True))
    assert not (tmp_path / "run" / "config.json").exists()   # refused before anything was written


def test_sop_train_refuses_tensorboard_without_the_package_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    out = tmp_path / "run"
    assert main(["--dataset", "synthetic", "--device", "cpu", "--out", str(out), "--set", "tensorboard=true"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("sop-train: error: tensorboard=True needs the tensorboard"), err
    assert not out.exists()


def test_tensorboard_event_files_hold_the_scalars_of_every_epoch(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed: pip install 'sop[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    train(_config(run, tensorboard=True, epochs=3))
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    rows = _rows(run)
    tags = [tag for column, _, _, tag in PANELS]
    assert sorted(events.Tags()["scalars"]) == sorted(tags)
    for column, _, _, tag in PANELS:
        logged = events.Scalars(tag)
        assert [e.step for e in logged] == [row["epoch"] for row in rows]
        # TensorBoard stores float32: agreement to its rounding (relative 2**-24, and 1e-12 near 0)
        assert np.allclose([e.value for e in logged], [row[column] for row in rows], rtol=1e-6, atol=1e-12)
