"""The grid runner (sopdeep.grid, sop-grid): cells and their configs, reuse, resume, adoption, the
three executors giving the same numbers, the table beside the paper's numbers, one-line failures.

Training happens only on tiny synthetic grids (the ``smoke`` preset: 256 images of 8x8, a CNN of
width 8, 2 epochs, one CPU thread so that every executor computes bit for bit the same run).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sopdeep import grid
from sopdeep.grid import cli as grid_cli
from sopdeep.grid import table as grid_table
from sopdeep.config import TrainConfig
from sopdeep.methods import METHODS
from sopdeep.paper_numbers import PAPER, TABLE_COLUMNS, TABLE_ROWS
from sopdeep.presets import PRESETS
from sopdeep.runs import CHECKPOINT, SUMMARY, read_history, write_config
from sopdeep.training import train

ROOT = Path(__file__).resolve().parents[2]
PAPER_TEXT = ROOT.parent / "shared" / "paper" / "000_dcf36a7a91ab9a23.txt"
# one thread: the in-process run, spawned processes and Dask workers then sum in the same order
TINY = dict(settings="sym40", methods="ce,sop", seeds=1, overrides=dict(threads=1))


def _smoke_cells(**kwargs):
    return grid.grid_cells("smoke", **{**TINY, **kwargs})


def _accuracies(rows):
    return {(c.setting, c.method, c.seed): (r["final_test_acc"], r["best_test_acc"]) for c, r in rows.items()}


@pytest.fixture(scope="module")
def in_process(tmp_path_factory):
    """The tiny grid trained in this process (torch's thread count restored afterwards)."""
    threads = torch.get_num_threads()
    out = tmp_path_factory.mktemp("grid") / "in_process"
    lines = []
    rows = grid.run_grid(_smoke_cells(), out, title="smoke: test", command="sop-grid smoke", log=lines.append)
    torch.set_num_threads(threads)
    return out, rows, lines


# ------------------------------------------------------------------------------------------------
# cells and configs (no training)


def _dry_run(capsys, *args):
    code = grid_cli.main([*args, "--dry-run"])
    captured = capsys.readouterr()
    return code, [json.loads(line) for line in captured.out.splitlines()], captured.err


def test_table1_fast_dry_run_lists_every_cell_with_its_config(capsys, tmp_path):
    code, cells, err = _dry_run(capsys, "table1", "--scale", "fast", "--seeds", "2", "--data-dir", "data",
                                "--cache-dir", "cache", "--out", str(tmp_path))
    assert code == 0 and len(cells) == 2 * 4 * 6 * 2 and "96 cells" in err
    assert {(c["dataset"], c["setting"], c["method"], c["seed"]) for c in cells} == {
        (ds, f"sym{p}", m, s) for ds in ("cifar10", "cifar100") for p in (20, 40, 60, 80)
        for m in ("ce", "forward", "gce", "sl", "elr", "sop") for s in (0, 1)}
    for c in cells:
        if c["method"] not in METHODS:   # a method of Table 1 not registered yet: listed, not runnable
            assert c["status"].startswith("unavailable") and c["folder"] is None
            continue
        assert c["status"] == "new"
        config = TrainConfig.from_dict(c["config"])
        rate = int(c["setting"][3:]) / 100
        assert (config.noise, config.noise_rate, config.seed, config.noise_seed) == ("sym", rate, c["seed"], c["seed"])
        assert config.dataset == {"cifar10": "cifar10-jpeg", "cifar100": "cifar100-png"}[c["dataset"]]
        assert (config.arch, config.epochs, config.batch_size) == ("fast", grid.FAST_EPOCHS, 1024)
        assert config.data_root == str(Path("data") / config.dataset) and config.cache_path.startswith("cache")
        assert Path(c["folder"]).parent == tmp_path / c["dataset"] / c["setting"] / c["method"]
        assert c["paper"] == PAPER[("table1", c["dataset"], c["setting"], c["method"])].mean
    assert len({c["folder"] for c in cells}) == len(cells)  # every cell its own folder


def test_paper_scale_cells_are_table_a1s_presets_with_the_cells_method(capsys):
    code, cells, _ = _dry_run(capsys, "table1", "--scale", "paper", "--data-dir", "/data", "--methods", "sop,ce,elr")
    assert code == 0 and len(cells) == 2 * 4 * 3
    for c in cells:
        config = TrainConfig.from_dict(c["config"])
        preset = TrainConfig(**PRESETS[f"table1-{c['dataset']}-{c['setting']}"])
        # the same network, optimiser, schedule, data and noise as Table A.1's column
        for key in ("arch", "epochs", "lr", "milestones", "weight_decay", "train_subset", "dataset", "noise_rate"):
            assert getattr(config, key) == getattr(preset, key)
        if c["method"] == "sop":
            assert config.options == preset.options   # SOP's own cell: its preset exactly
        if c["method"] == "elr":   # ELR's published CIFAR-100 options; CIFAR-10's are its defaults
            assert (config.options.elr_beta, config.options.elr_lambda) == \
                ((0.9, 7.0) if c["dataset"] == "cifar100" else (0.7, 3.0))


def test_the_full_scale_preset_keys_the_committed_runs_of_the_old_script():
    spec = importlib.util.spec_from_file_location("cifar10_full_scale", ROOT / "experiments" / "cifar10_full_scale.py")
    exp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(exp)
    args = exp.build_parser().parse_args(["--data-dir", "d", "--out", "o", "--epochs", "25", "--methods", "ce,sop,sop+"])
    cells = {grid.config_key(grid.cell_config(c, "x")): c
             for c in grid.grid_cells("cifar10-full-scale", data_dir="elsewhere", seeds=2)}
    for setting, seed, method, config in exp.run_configs(args):
        cell = cells[grid.config_key(config)]  # the same run: a grid adopts those folders (--runs)
        assert (cell.method, cell.seed) == (method, seed) and cell.setting.startswith(setting)


def test_config_keys_ignore_paths_and_devices_but_not_settings():
    base = TrainConfig(dataset="synthetic", method="ce", epochs=2)
    assert grid.config_key(base) == grid.config_key(base.replace(out="a", device="cpu", progress=False, threads=1))
    assert grid.config_key(base) != grid.config_key(base.replace(lr=0.03))
    assert grid.config_key(base) != grid.config_key(base.replace(epochs=3))
    assert grid.same_config(base, base.replace(lr=0.03)) == {"lr": (0.02, 0.03)}



# ------------------------------------------------------------------------------------------------
# the paper's numbers


@pytest.mark.skipif(not PAPER_TEXT.is_file(), reason=f"the paper's text {PAPER_TEXT} is absent")
def test_every_transcribed_row_is_the_papers_row():
    text = " ".join(PAPER_TEXT.read_text().split())
    for table, rows in TABLE_ROWS.items():
        for _, label, numbers in rows:
            assert f"{label} {numbers}" in text, (table, label)


def test_a_few_published_numbers_read_in_the_paper():
    # read by eye in the ICML version's Tables 1, 2 and 4
    assert PAPER[("table1", "cifar100", "sym80", "sop")][:2] == (30.20, 0.63)
    assert PAPER[("table1", "cifar10", "sym60", "forward")][:2] == (74.96, 0.65)
    assert PAPER[("table2", "cifar100", "asym40", "sop+")][:2] == (78.0, None)
    assert PAPER[("table4", "cifar10n", "worst", "sop+")][:2] == (93.24, 0.21)
    assert PAPER[("table4", "cifar100n", "noisy", "ce")][:2] == (55.50, 0.66)
    assert ("table2", "cifar10", "asym40", "mixup") not in PAPER   # printed as "-"
    assert sum(1 for k in PAPER if k[0] == "table1") == 6 * len(TABLE_COLUMNS["table1"])


# ------------------------------------------------------------------------------------------------
# running


def test_the_grid_writes_its_table_from_the_runs_summaries(in_process):
    out, rows, lines = in_process
    assert len(rows) == 2 and sum(": start" in line for line in lines) == 2
    with open(out / "table.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [(r["method"], r["source"]) for r in table] == [("ce", "trained"), ("sop", "trained")]
    for r in table:
        summary = json.loads((Path(r["folder"]) / SUMMARY).read_text())
        assert float(r["final_test_acc"]) == summary["final_test_acc"] and int(r["epochs"]) == 2
        assert r["host"] and r["command"] == "sop-grid smoke"
    md = (out / "table.md").read_text()
    for r in table:   # one seed: the mean is the run's accuracy in %
        assert f"{100 * float(r['final_test_acc']):.2f} (n=1)" in md
    assert "`sop-grid smoke`" in md and (out / "table.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_second_run_trains_nothing(in_process):
    out, rows, _ = in_process
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob(CHECKPOINT)}
    lines = []
    again = grid.run_grid(_smoke_cells(), out, log=lines.append)
    assert _accuracies(again) == _accuracies(rows) and {r["source"] for r in again.values()} == {"reused"}
    assert not any(": start" in line for line in lines)
    assert {p: p.stat().st_mtime_ns for p in out.rglob(CHECKPOINT)} == mtimes


def test_table_only_writes_the_cells_done_and_trains_nothing(in_process, tmp_path):
    out, rows, _ = in_process
    done = next(iter(rows))
    lines = []
    table = grid.run_grid(_smoke_cells(), tmp_path, runs=[out / done.dataset / done.setting / done.method],
                          log=lines.append, train=False)
    assert list(table) == [done] and table[done]["final_test_acc"] == rows[done]["final_test_acc"]
    assert not list(tmp_path.rglob(CHECKPOINT))[1:]   # the adopted cell's folder alone: nothing trained
    assert "table only" in lines[-1]
    csv_rows = (tmp_path / grid.TABLE_CSV).read_text().splitlines()
    assert len(csv_rows) == 2   # the header and the one cell done


def test_a_killed_cell_resumes_to_the_uninterrupted_result(in_process, tmp_path):
    _, rows, _ = in_process
    cell = next(c for c in _smoke_cells() if c.method == "sop")
    config = grid.cell_config(cell, tmp_path)

    def kill(epoch, row):
        raise KeyboardInterrupt  # as Ctrl-C after the first epoch's checkpoint

    threads = torch.get_num_threads()
    with pytest.raises(KeyboardInterrupt):
        train(config, callbacks={"epoch": kill})
    assert grid.cell_status(config) == "partial"
    lines = []
    resumed = grid.run_grid([cell], tmp_path, log=lines.append)
    torch.set_num_threads(threads)
    assert any(": resume" in line for line in lines) and resumed[cell]["source"] == "resumed"
    assert len(read_history(config.out)) == 2
    # on the CPU a resumed run is bit-identical to an uninterrupted one
    assert resumed[cell]["final_test_acc"] == rows[cell]["final_test_acc"]


def test_local_processes_give_the_in_process_numbers(in_process, tmp_path):
    _, rows, _ = in_process
    assert _accuracies(grid.run_grid(_smoke_cells(), tmp_path, jobs=2, log=lambda line: None)) == _accuracies(rows)


def test_dask_gives_the_in_process_numbers(in_process, tmp_path):
    distributed = pytest.importorskip("distributed")
    _, rows, _ = in_process
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster:
        got = grid.run_grid(_smoke_cells(), tmp_path, dask=cluster.scheduler_address, log=lambda line: None)
    assert _accuracies(got) == _accuracies(rows)
    assert {json.loads((Path(r["folder"]) / grid.GRID_FILE).read_text())["host"] for r in got.values()}


def test_a_run_started_elsewhere_is_adopted_not_retrained(in_process, tmp_path):
    out, rows, _ = in_process
    lines = []
    adopted = grid.run_grid(_smoke_cells(), tmp_path / "new", runs=[out], log=lines.append)
    assert _accuracies(adopted) == _accuracies(rows) and {r["source"] for r in adopted.values()} == {"adopted"}
    assert sum(": adopted" in line for line in lines) == 2 and not any(": start" in line for line in lines)


def test_a_run_of_an_older_version_under_another_key_is_found(in_process, tmp_path):
    """An older sopdeep's config lacked a setting added since: its folder has another key, and its
    saved config reads back equal to the cell's (the new setting at its default)."""
    import shutil

    out, rows, _ = in_process
    cell = next(c for c in rows if c.method == "ce")
    old = tmp_path / cell.dataset / cell.setting / cell.method / f"seed{cell.seed}-00000000"
    shutil.copytree(rows[cell]["folder"], old)
    lines = []
    again = grid.run_grid([cell], tmp_path, log=lines.append)
    assert again[cell]["folder"] == str(old) and again[cell]["source"] == "reused"
    assert not any(": start" in line for line in lines)


def test_a_folder_of_another_config_is_refused_and_kept(tmp_path, capsys):
    cell = _smoke_cells()[0]
    config = grid.cell_config(cell, tmp_path)
    Path(config.out).mkdir(parents=True)
    write_config(config.out, config.replace(lr=0.07))   # another run in the cell's folder
    before = (Path(config.out) / "config.json").read_bytes()
    with pytest.raises(grid.GridError, match="another configuration"):
        grid.cell_status(config)
    code = grid_cli.main(["smoke", "--settings", "sym40", "--methods", "ce,sop", "--set", "threads=1",
                          "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "another configuration" in err and "\n" not in err and "Traceback" not in err
    assert (Path(config.out) / "config.json").read_bytes() == before


def test_ctrl_c_keeps_the_finished_cells_and_exits_130(tmp_path, capsys, monkeypatch):
    real = grid.run_cell
    calls = []

    def interrupt_second(config):
        calls.append(config)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(config)

    monkeypatch.setattr(grid, "run_cell", interrupt_second)
    threads = torch.get_num_threads()
    code = grid_cli.main(["smoke", "--settings", "sym40", "--set", "threads=1", "--out", str(tmp_path)])
    torch.set_num_threads(threads)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 130 and err[-1].startswith("sop-grid: interrupted: ") and str(tmp_path) in err[-1]
    with open(tmp_path / "table.csv", newline="") as f:
        assert [r["method"] for r in csv.DictReader(f)] == ["ce"]


def test_a_failed_cell_is_one_line_and_the_others_still_run(tmp_path, capsys, monkeypatch):
    real = grid.run_cell

    def ce_fails(config):
        if config["method"] == "ce":
            raise ValueError("diverged\nsecond line")
        return real(config)

    monkeypatch.setattr(grid, "run_cell", ce_fails)
    threads = torch.get_num_threads()
    code = grid_cli.main(["smoke", "--settings", "sym40", "--set", "threads=1", "--out", str(tmp_path)])
    torch.set_num_threads(threads)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err[-1].startswith("sop-grid: error: 1 of 2 cells failed (first: synthetic sym40 ce seed 0: "
                                            "diverged second line)")
    with open(tmp_path / "table.csv", newline="") as f:
        assert [r["method"] for r in csv.DictReader(f)] == ["sop"]


@pytest.mark.parametrize("args, message", [
    (["nope"], "unknown grid preset 'nope'"),
    (["table1", "--methods", "ce,bogus"], "methods must be a comma-separated subset of"),
    (["table1", "--seeds", "0"], "seeds must be an integer >= 1, got 0"),
    (["cifar10-full-scale", "--scale", "paper"], "scale must be one of fast"),
    (["table4", "--settings", "sym40"], "settings must be a comma-separated subset of"),
    (["table1", "--out", "x"], "--data-dir is needed"),
])
def test_bad_input_is_one_line(args, message, capsys):
    assert grid_cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sop-grid: error: ") and message in err and "\n" not in err


def test_dask_missing_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    cells = _smoke_cells()
    with pytest.raises(grid.GridError, match=re.escape("pip install 'sop[dask]'")):
        grid._run_dask(cells, {c: grid.cell_config(c, tmp_path) for c in cells}, "tcp://nowhere:1", 0,
                       print, print, [])


def test_python_m_sopdeep_grid_lists_the_presets():
    done = subprocess.run([sys.executable, "-m", "sopdeep.grid", "--list"], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONWARNINGS": "error::RuntimeWarning"})
    assert done.returncode == 0 and set(grid.GRID_PRESETS) == {line.split(":")[0] for line in done.stdout.splitlines()}


# ------------------------------------------------------------------------------------------------
# the table


def test_the_summary_is_the_mean_and_sample_std_over_seeds():
    cells = grid.grid_cells("table1", methods="sop", settings="sym40", datasets="cifar10", seeds=3)
    rows = [{"dataset": "cifar10", "setting": "sym40", "method": "sop", "seed": s, "final_test_acc": a, "epochs": 25}
            for s, a in enumerate((0.84, 0.85, 0.87))]
    (stat,) = grid_table.summarise(cells, rows)
    values = np.array([84.0, 85.0, 87.0])
    assert stat["mean"] == pytest.approx(values.mean()) and stat["std"] == pytest.approx(values.std(ddof=1))
    assert stat["diff"] == pytest.approx(values.mean() - 90.09) and stat["n"] == 3


def test_the_committed_full_scale_rows_stand_in_for_cells_not_run(tmp_path):
    results = ROOT / "experiments" / "results" / "cifar10_full_scale" / "results.csv"
    imported = grid.import_full_scale_rows(results)
    with open(results, newline="") as f:
        old = list(csv.DictReader(f))
    assert len(imported) == len(old)
    cells = grid.grid_cells("cifar10-full-scale", methods="ce,sop", seeds=2)
    grid.write_table(tmp_path, cells, {}, imported=imported, title="t", command="c")
    ce40 = [float(r["final_test_acc"]) for r in old if (r["setting"], r["method"]) == ("sym40", "ce")]
    md = (tmp_path / "table.md").read_text()
    mean, std = 100 * np.mean(ce40), 100 * np.std(ce40, ddof=1)
    assert f"{mean:.2f} ± {std:.2f} (n=2); paper 82.65, Δ {mean - 82.65:+.2f}" in md
    with open(tmp_path / "table.csv", newline="") as f:
        written = list(csv.DictReader(f))
    # every committed CE / SOP row is a cell of the preset
    assert len(written) == sum(r["method"] in ("ce", "sop") for r in old)
    assert all(r["source"].startswith("imported") for r in written) and not math.isnan(mean)


def test_every_sop_grid_command_of_the_docs_page_dry_runs(capsys, tmp_path, monkeypatch):
    page = (ROOT / "docs" / "tables.md").read_text()
    commands = [shlex.split(c) for c in re.findall(r"^sop-grid .*$", page.replace("\\\n", " "), flags=re.M)]
    assert len(commands) >= 6
    monkeypatch.chdir(tmp_path)   # relative --out folders land in the scratch folder
    for argv in commands:
        assert argv[0] == "sop-grid"
        code = grid_cli.main([a for a in argv[1:] if a != "--dry-run"] + ["--dry-run"])
        captured = capsys.readouterr()
        assert code == 0, f"{' '.join(argv)}: {captured.err.strip()}"
        assert captured.out.count("\n") == len(grid_cli._cells(grid_cli.build_parser().parse_args(argv[1:])))


def test_a_grid_that_changes_the_batch_gives_sop_the_rate_of_the_effective_alpha_rule():
    from sopdeep.presets import FAST_SOP_ALPHA, effective_alpha

    cells = {(c.setting, c.method): c for c in grid.grid_cells("memorisation", data_dir="d", cache_dir="c")}
    recipe = grid.MEMORISATION_RECIPE
    for (setting, method), cell in cells.items():
        config = grid.cell_config(cell, "o")
        assert {k: getattr(config, k) for k in recipe} == recipe   # every method on the same changed recipe
        if method != "ce":   # Table A.1's CIFAR-10 rate 10 at the changed batch, not the preset's 1024
            assert config.options.alpha_u == config.options.alpha_v == effective_alpha(10.0, recipe["batch_size"], 0.85)
    table1 = grid.cell_config(grid.grid_cells("table1", datasets="cifar10", settings="sym40", methods="sop")[0], "o")
    assert table1.options.alpha_u == FAST_SOP_ALPHA   # the fast preset's own rate where the batch is its own


def test_the_table_figure_names_every_method_even_one_missing_from_the_first_setting():
    import matplotlib.pyplot as plt

    from sopdeep.grid.table import table_figure

    stats = [dict(dataset="cifar100n", setting="clean", method="ce", mean=46.4, std=None, paper=76.7),
             dict(dataset="cifar100n", setting="noisy", method="ce", mean=35.6, std=None, paper=55.5),
             dict(dataset="cifar100n", setting="noisy", method="sop", mean=32.8, std=None, paper=None)]
    fig = table_figure(stats, "t")
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["paper", "ce", "sop"]
    plt.close(fig)
