"""Every registered figure at --quick size through the command line; --redraw; deep figures
redrawn unless --deep compute; each figure's files published as one set; stale temporaries
removed; every failure one line."""

import errno
import inspect
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import figures.output
from figures import fig_implicit_bias
from figures.cli import build_parser, figure_options, main, options_for
from figures.output import locked_folder
from figures.registry import FIGURES, GROUPS, is_deep
from sopcommon.files import DataFileError
from soptheory.phase import load_table

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quick_all(tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    assert main(["paper", "--quick", "--out", str(out), "--jobs", "1", "--no-progress"]) == 0
    return out


def figure_files(figure):
    return [figure.DATA_FILE, f"{figure.NAME}.png", f"{figure.NAME}.pdf"]


def assert_one_error_line(capsys, *needles):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("figures: error: "), err
    for needle in needles:
        assert needle in err[0], err[0]
    return err[0]


@pytest.mark.parametrize("name", list(FIGURES))
def test_every_figure_module_has_the_registry_interface(name):
    figure = FIGURES[name]
    assert figure.NAME == name and figure.DATA_FILE.startswith(name + "_data.")
    if not is_deep(figure):
        assert "Figure" in figure.__doc__.splitlines()[0]     # the paper's figure number
    assert list(inspect.signature(figure.plot).parameters) == ["data_path", "out_dir"]
    compute = inspect.signature(figure.compute).parameters
    assert list(compute)[0] == "data_path" and compute["quick"].default is False
    # no **kwargs swallowing: an option the figure does not declare is an error, not ignored
    assert inspect.Parameter.VAR_KEYWORD not in [p.kind for p in compute.values()]
    with pytest.raises(TypeError, match="n_job"):
        figure.compute(Path("never-written"), quick=True, n_job=2)    # misspelt --jobs


def test_every_option_of_the_command_line_reaches_a_figure_that_declares_it():
    options = figure_options(build_parser().parse_args(["all"]), None)
    declared = {name for figure in FIGURES.values() for name in inspect.signature(figure.compute).parameters}
    assert set(options) <= declared, set(options) - declared
    for figure in FIGURES.values():
        given = options_for(figure.compute, options)
        assert set(given) == set(options) & set(inspect.signature(figure.compute).parameters)


@pytest.mark.parametrize("name", [name for name in GROUPS["bridge"] if hasattr(FIGURES[name], "ensure_runs")])
def test_jobs_reaches_the_training_of_every_deep_figure(name, tmp_path, monkeypatch):
    figure, seen = FIGURES[name], []

    class Stop(Exception):
        pass

    def runner(configs, **kw):           # stands for ensure_runs: record, train nothing
        seen.append(kw.get("n_jobs", kw.get("jobs", 1)))
        raise Stop("stopped before training")

    monkeypatch.setattr(figure, "ensure_runs", runner)
    jobs = min(3, os.cpu_count() or 1)   # --jobs is capped at the cores (issue 18)
    assert main([name, "--quick", "--deep", "compute", "--jobs", str(jobs), "--out", str(tmp_path / "out"),
                 "--runs-dir", str(tmp_path / "runs"), "--no-progress"]) == 1
    assert seen == [jobs]


def test_figures_do_not_import_each_other():
    # what figures share lives in figures.settings, figures._bridge and figures._runs
    import ast

    figure_modules = {figure.__name__ for figure in FIGURES.values()}
    for figure in FIGURES.values():
        used = set()
        for node in ast.walk(ast.parse(Path(figure.__file__).read_text())):
            if isinstance(node, ast.Import):
                used |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):        # figures/ is flat: level 1 is figures
                base = node.module if not node.level else ".".join(filter(None, ["figures", node.module]))
                used |= {base} | {f"{base}.{alias.name}" for alias in node.names}
        assert not used & figure_modules, (figure.__name__, used & figure_modules)


def test_groups_cover_every_figure_once():
    assert set(GROUPS["paper"]) == {"fig2", "fig3", "fig4"}
    assert sorted(GROUPS["paper"] + GROUPS["bridge"]) == sorted(GROUPS["all"]) == sorted(FIGURES)
    assert all(is_deep(FIGURES[name]) for name in GROUPS["bridge"])


@pytest.mark.parametrize("name", GROUPS["paper"])
def test_png_pdf_and_data_are_written_and_nothing_else(quick_all, name):
    for ext in ("png", "pdf"):
        assert (quick_all / f"{name}.{ext}").stat().st_size > 1000
    assert (quick_all / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (quick_all / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
    assert (quick_all / FIGURES[name].DATA_FILE).stat().st_size > 100
    expected = {f for n in GROUPS["paper"] for f in figure_files(FIGURES[n])} | {".cache"}
    assert {p.name for p in quick_all.iterdir()} == expected   # no staging folder left


def test_fig2_data_low_rho_along_the_curve(quick_all):
    d = np.load(quick_all / "fig2_data.npz")
    for key in ("rho_theta", "rho_s"):
        assert d[key].shape == (len(d["alpha"]), len(d["lam"]))
        assert np.all((d[key] >= 0) & (d[key] <= 1 + 1e-12))   # ρ is a relative difference
    assert d["gd_converged"].all() and d["convex_certified"].all()
    # Proposition 3.3: at the grid point nearest to α = -log γ / (2λ), for λ in the recovery
    # range (λ >= 0.02 here), GD and (25) agree far better than elsewhere on the grid.
    gamma = float(d["gamma"])
    on_curve = []
    for j, lam in enumerate(d["lam"]):
        i = np.argmin(np.abs(np.log(d["alpha"]) - np.log(-np.log(gamma) / (2 * lam))))
        on_curve.append(d["rho_theta"][i, j])
    assert np.median(on_curve) < np.median(d["rho_theta"])


def test_fig3_and_fig4_tables_are_sane(quick_all):
    t3 = load_table(quick_all / "fig3_data.csv")
    assert set(np.unique(t3["panel"])) == {"a", "b"}
    assert np.all(t3["eps_theta"] >= 0) and t3["certified"].all()
    # the largest λ recovers the truth for the easiest (r, k) = (20, 10) and (10, 20) cells
    big = t3["lam"] == t3["lam"].max()
    easy = big & (((t3["r"] == 20) & (t3["k"] == 10)) | ((t3["r"] == 10) & (t3["k"] == 20)))
    assert t3["success"][easy].all()
    small = t3["lam"] == t3["lam"].min()
    assert not t3["success"][small].any()                  # λ = 1e-4: s absorbs y, no recovery
    t4 = load_table(quick_all / "fig4_data.csv")
    assert t4["certified"].all()
    assert t4["success"][(t4["r"] == 5) & (t4["k"] == 5)].all()
    assert not t4["success"][(t4["r"] == 45) & (t4["k"] == 45)].any()
    assert not t4["prop35"].any()        # the sufficient condition never holds on this grid


def test_redraw_draws_the_same_files_from_the_data_alone(quick_all, tmp_path, monkeypatch):
    paper = [FIGURES[name] for name in GROUPS["paper"]]
    for figure in paper:
        shutil.copy(quick_all / figure.DATA_FILE, tmp_path)
        monkeypatch.setattr(figure, "compute", None)          # --redraw must not compute
    assert main(["paper", "--redraw", "--out", str(tmp_path)]) == 0
    for figure in paper:
        for f in figure_files(figure):    # the drawing is a function of the data file only
            assert (tmp_path / f).read_bytes() == (quick_all / f).read_bytes(), f
    assert not (tmp_path / ".cache").exists()


def test_redraw_without_the_data_file_is_one_line_and_writes_nothing(tmp_path, capsys):
    assert main(["fig3", "--redraw", "--out", str(tmp_path)]) == 1
    assert_one_error_line(capsys, str(tmp_path / "fig3_data.csv"), "without --redraw")
    assert list(tmp_path.iterdir()) == []


def test_deep_figures_without_data_need_deep_compute_one_line(tmp_path, capsys):
    # default --deep redraw: nothing is trained; the missing data file is named up front
    assert main(["all", "--quick", "--out", str(tmp_path), "--no-progress"]) == 1
    line = assert_one_error_line(capsys, "fig_memorisation_data.csv", "fig_bridge_alpha_data.npz",
                                 str(tmp_path), "--deep compute --data-dir")
    assert "fig2" not in line                                 # theory figures are computed, not redrawn
    assert list(tmp_path.iterdir()) == []


def test_deep_compute_publishes_the_set_and_redraw_reuses_it(tmp_path, monkeypatch):
    from figures import fig_memorisation

    out, runs = tmp_path / "out", tmp_path / "runs"
    assert main(["fig_memorisation", "--quick", "--deep", "compute", "--runs-dir", str(runs),
                 "--out", str(out), "--no-progress"]) == 0
    assert {p.name for p in out.iterdir()} == set(figure_files(fig_memorisation))
    assert len(list(runs.rglob("summary.json"))) == 4   # quick: CE and SOP, one seed, two panels
    data = (out / fig_memorisation.DATA_FILE).read_bytes()
    monkeypatch.setattr(fig_memorisation, "compute", None)   # default --deep redraw computes nothing
    assert main(["bridge", "--out", str(out)]) == 1           # the other deep figures have no data yet
    assert main(["fig_memorisation", "--out", str(out)]) == 0
    assert (out / fig_memorisation.DATA_FILE).read_bytes() == data


def test_python_m_figures_runs_from_the_repository_root(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "figures", "fig2", "--redraw", "--out",
                           str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"figures: error: no data file {tmp_path / 'fig2_data.npz'} to redraw from: run without "
        "--redraw to compute it"]


def test_flow_and_ecos_options_run(tmp_path):
    assert main(["fig2", "--quick", "--flow", "--solver", "ecos", "--out", str(tmp_path),
                 "--no-progress"]) == 0
    d = np.load(tmp_path / "fig2_data.npz")
    assert str(d["method"]) == "flow" and str(d["solver"]) == "ecos"


def test_cli_runs_a_figure_on_a_dask_scheduler(tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        assert main(["fig4", "--quick", "--out", str(tmp_path), "--dask", cluster.scheduler_address,
                     "--no-progress", "--no-cache"]) == 0
    t4 = load_table(tmp_path / "fig4_data.csv")
    assert t4["certified"].all() and len(t4["r"]) == 3 * 3 * 3


# -- a figure's files are one set ------------------------------------------------------------

@pytest.fixture
def fake_fig2(monkeypatch):
    """Make fig2 cheap: each of its files holds the tag of the run that wrote it."""
    def use(tag, *, plot_fails=False):
        def compute(data_path, **options):
            Path(data_path).write_text(f"{tag} data")

        def plot(data_path, out_dir):
            if plot_fails:
                raise RuntimeError("drawing died")
            assert Path(data_path).read_text() == f"{tag} data"
            for ext in ("png", "pdf"):
                (Path(out_dir) / f"fig2.{ext}").write_text(f"{tag} {ext}")
            return [Path(out_dir) / "fig2.png", Path(out_dir) / "fig2.pdf"]

        monkeypatch.setattr(fig_implicit_bias, "compute", compute)
        monkeypatch.setattr(fig_implicit_bias, "plot", plot)
    return use


def tags(out):
    return {f: (out / f).read_text().split()[0] for f in figure_files(fig_implicit_bias)}


def test_a_run_failing_after_compute_leaves_the_previous_set_whole(tmp_path, fake_fig2, capsys):
    fake_fig2("first")
    assert main(["fig2", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    fake_fig2("second", plot_fails=True)
    assert main(["fig2", "--out", str(tmp_path)]) == 1
    assert_one_error_line(capsys, "fig2: drawing from", "drawing died")
    assert set(tags(tmp_path).values()) == {"first"}          # the data is NOT the second run's
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(figure_files(fig_implicit_bias))


class Killed(BaseException):
    """Stands for SIGKILL: no except clause catches it."""


def test_a_run_killed_while_publishing_is_finished_by_the_next_run(tmp_path, fake_fig2,
                                                                   monkeypatch):
    fake_fig2("first")
    assert main(["fig2", "--out", str(tmp_path)]) == 0
    fake_fig2("second")
    real_replace = os.replace

    def replace_then_die(src, dst):      # published: first the data, then the png
        if Path(dst) == tmp_path / "fig2.png":
            raise Killed
        real_replace(src, dst)

    monkeypatch.setattr(figures.output.os, "replace", replace_then_die)
    with pytest.raises(Killed):
        main(["fig2", "--out", str(tmp_path)])
    monkeypatch.setattr(figures.output.os, "replace", real_replace)
    assert tags(tmp_path) == {"fig2_data.npz": "second", "fig2.png": "first", "fig2.pdf": "first"}
    assert main(["fig3", "--redraw", "--out", str(tmp_path)]) == 1    # any later run recovers
    assert set(tags(tmp_path).values()) == {"second"}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(figure_files(fig_implicit_bias))


def test_stale_temporaries_of_killed_runs_are_removed(tmp_path, fake_fig2):
    fake_fig2("only")
    out, cache = tmp_path / "out", tmp_path / "cache"
    (out / ".fig3.staging-k1ll3d").mkdir(parents=True)
    (out / ".fig3.staging-k1ll3d" / "fig3_data.csv").write_text("half")
    (out / ".fig2.png.x7f3.tmp").write_bytes(b"half")
    cache.mkdir()
    (cache / ".0123abcd.npz.x7f3.tmp").write_bytes(b"half")
    (cache / "keep.npz").write_bytes(b"not ours to judge")
    assert main(["fig2", "--out", str(out), "--cache", str(cache)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(figure_files(fig_implicit_bias))
    assert sorted(p.name for p in cache.iterdir()) == ["keep.npz"]


def test_a_second_run_into_the_same_folder_is_refused(tmp_path, fake_fig2, capsys):
    fake_fig2("second")
    with locked_folder(tmp_path):
        assert main(["fig2", "--out", str(tmp_path)]) == 1
    assert_one_error_line(capsys, "another run is writing into", str(tmp_path))
    assert list(tmp_path.iterdir()) == []


# -- every failure is one line ----------------------------------------------------------------

def test_out_that_is_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "out").write_text("")
    assert main(["fig2", "--quick", "--out", str(tmp_path / "out")]) == 1
    assert_one_error_line(capsys, str(tmp_path / "out"), "choose another --out")


def test_a_damaged_cache_file_is_named_and_recomputed(quick_all, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(quick_all / ".cache", cache)
    damaged = sorted(cache.glob("*.npz"))
    for f in damaged:
        f.write_bytes(b"PK\x03\x04 damaged")
    with pytest.warns(RuntimeWarning, match="cache file .* is damaged") as record:
        assert main(["fig4", "--quick", "--out", str(tmp_path / "out"), "--cache", str(cache),
                     "--jobs", "1", "--no-progress"]) == 0
    named = {str(f) for f in damaged for w in record if f"cache file {f} is damaged" in str(w.message)}
    # the cache also holds Figures 2 and 3's cells: Figure 4 reads (and names) only its own
    assert len(named) > 0
    # recomputed: the same table as the undamaged run
    assert (tmp_path / "out" / "fig4_data.csv").read_bytes() == (quick_all / "fig4_data.csv").read_bytes()


def test_no_space_left_names_the_path(tmp_path, monkeypatch, capsys):
    def full_disk(data_path, **options):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(data_path))

    monkeypatch.setattr(fig_implicit_bias, "compute", full_disk)
    assert main(["fig2", "--out", str(tmp_path)]) == 1
    assert_one_error_line(capsys, "no space left", "fig2_data.npz")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["false", "OFF", "no", "0", ""])
def test_sop_debug_off_spellings_keep_the_one_line(tmp_path, monkeypatch, capsys, value):
    def broken(data_path, **options):
        raise ValueError("bad grid")

    monkeypatch.setattr(fig_implicit_bias, "compute", broken)
    monkeypatch.setenv("SOP_DEBUG", value)
    assert main(["fig2", "--out", str(tmp_path)]) == 1
    assert_one_error_line(capsys, "ValueError: bad grid")          # no traceback


@pytest.mark.parametrize("how", ["--debug", "SOP_DEBUG"])
def test_debug_shows_the_traceback(tmp_path, monkeypatch, capsys, how):
    def broken(data_path, **options):
        raise ValueError("bad grid")

    monkeypatch.setattr(fig_implicit_bias, "compute", broken)
    argv = ["fig2", "--out", str(tmp_path)]
    assert main(argv) == 1
    assert_one_error_line(capsys, "ValueError: bad grid", "--debug")
    if how == "SOP_DEBUG":
        monkeypatch.setenv("SOP_DEBUG", "1")
    else:
        argv.append("--debug")
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and 'raise ValueError("bad grid")' in err
    assert err.strip().splitlines()[-1].startswith("figures: error: fig2: computing the data")


def test_ctrl_c_is_one_line_saying_what_was_kept(tmp_path, fake_fig2, monkeypatch, capsys):
    fake_fig2("first")
    assert main(["fig2", "--out", str(tmp_path)]) == 0
    capsys.readouterr()

    def interrupted(data_path, **options):
        Path(data_path).write_text("second data")
        raise KeyboardInterrupt

    monkeypatch.setattr(fig_implicit_bias, "compute", interrupted)
    assert main(["fig2", "--out", str(tmp_path)]) == 130
    assert_one_error_line(capsys, "interrupted", "complete sets", "rerun the same command")
    assert set(tags(tmp_path).values()) == {"first"}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(figure_files(fig_implicit_bias))


def test_full_scale_rows_replace_only_their_own_in_the_memorisation_table(tmp_path):
    import pandas as pd

    from figures import fig_memorisation as fm
    from sopdeep.config import TrainConfig
    from sopdeep.training import train

    full = tmp_path / "full"
    for method in ("ce", "sop"):  # two tiny stand-ins for the experiment's sym40 folders
        train(TrainConfig(dataset="synthetic", arch="mlp", width=16, epochs=2, batch_size=64, lr=0.05,
                          schedule="constant", noise="sym", noise_rate=0.4, device="cpu", progress=False,
                          method=method, out=str(full / f"sym40-s0-{method}")))
    table = tmp_path / fm.DATA_FILE
    shutil.copy(Path(__file__).parents[2] / "results" / "figures" / fm.DATA_FILE, table)
    before = pd.read_csv(table)
    assert fm.update_full_scale(table, full) == 4  # 2 runs x 2 epochs
    after = pd.read_csv(table)
    old = after[~after.setting.isin(list(fm.FULL_SCALE))].reset_index(drop=True)
    pd.testing.assert_frame_equal(old, before[~before.setting.isin(list(fm.FULL_SCALE))].reset_index(drop=True))
    new = after[after.setting == "cifar10-full-sym40"]
    assert sorted(set(new.method)) == ["ce", "sop"] and set(new.epoch) == {1, 2}
    assert fm.update_full_scale(table, full) == 4 and len(pd.read_csv(table)) == len(after)  # idempotent
    paths = fm.plot(table, tmp_path / "out")
    assert all(Path(p).exists() for p in paths)
    with pytest.raises(DataFileError, match="no full-scale run folder"):
        fm.update_full_scale(table, tmp_path / "empty")
