"""The main job leaves a checkout clean on another machine: a rerun whose data differ from the
published data file by round-off only keeps the published bytes (data, png and pdf).

"Another machine" is simulated by moving every float of a freshly computed data file by the
round-off measured between two runs of the main job whose BLAS summation orders differ (see
``figures.output.RTOL``): up to 5.2e-8 relative for numbers of size >= 1e-6 and 2.7e-11 absolute
for solver-noise numbers below (residuals, gaps, errors of exact recoveries).  The tests move them
by a little more, 6e-8 relative plus 3e-11 absolute, each in a random direction.
"""

import functools

import numpy as np
import pytest

from figures import fig_implicit_bias, fig_phase_transition
from figures.cli import main
from figures.output import ATOL, RTOL, data_agree
from sopcommon import atomic_savez
from soptheory.phase import load_table, save_table

# the round-off of another machine, a little above the measured one (module docstring)
MACHINE_RTOL, MACHINE_ATOL = 6e-8, 3e-11


def other_machine(x, rng, rtol=MACHINE_RTOL, atol=MACHINE_ATOL):
    """``x`` with every float moved by up to ``rtol`` relative plus ``atol`` absolute."""
    x = np.asarray(x)
    if x.dtype.kind != "f":
        return x
    return x * (1 + rtol * rng.uniform(-1, 1, x.shape)) + atol * rng.uniform(-1, 1, x.shape)


def table(rng, n=50):
    return {"k": rng.integers(1, 100, n), "lam": rng.choice([1e-4, 0.1, 1.0], n),
            "alpha": np.full(n, np.nan), "eps": 10.0 ** rng.uniform(-13, 0, n),
            "gap": rng.normal(0, 1e-12, n), "success": rng.random(n) < 0.5,
            "solver": rng.choice(["batched", "clarabel-fallback"], n)}


def test_tolerances_sit_between_the_round_off_and_what_a_figure_shows():
    # above another machine's round-off (with margin), far below the success threshold 1e-3
    assert MACHINE_RTOL * 10 < RTOL <= 1e-6 and MACHINE_ATOL * 10 < ATOL <= 1e-9


def test_a_table_moved_by_round_off_agrees_though_its_bytes_differ(tmp_path):
    rng = np.random.default_rng(0)
    t = table(rng)
    old = save_table(t, tmp_path / "old.csv")
    new = save_table({c: other_machine(v, rng) for c, v in t.items()}, tmp_path / "new.csv")
    assert new.read_bytes() != old.read_bytes()      # what git would see without data_agree
    assert data_agree(new, old) and data_agree(old, new)


@pytest.mark.parametrize("change", ["float", "flag", "string", "int", "nan", "column", "row"])
def test_a_table_that_differs_beyond_round_off_does_not_agree(tmp_path, change):
    rng = np.random.default_rng(1)
    t = table(rng)
    old = save_table(t, tmp_path / "old.csv")
    u = {c: v.copy() for c, v in t.items()}
    if change == "float":      # 10x RTOL on one number of size ~1: a real change
        u["lam"][3] *= 1 + 10 * RTOL
    elif change == "flag":     # one success flag flipped (an eps that crossed 1e-3)
        u["success"][7] = ~u["success"][7]
    elif change == "string":
        u["solver"][0] = "ecos"
    elif change == "int":
        u["k"][0] += 1
    elif change == "nan":      # NaN matches only NaN
        u["alpha"][0] = 0.0
    elif change == "column":
        u["extra"] = u.pop("gap")
    else:
        u = {c: v[:-1] for c, v in u.items()}
    new = save_table(u, tmp_path / "new.csv")
    assert not data_agree(new, old)


def test_npz_files_agree_to_round_off_and_unreadable_files_never(tmp_path):
    rng = np.random.default_rng(2)
    arrays = {"rho": 10.0 ** rng.uniform(-8, 0, (6, 6)), "ok": np.ones(6, bool),
              "method": np.array("gd"), "shape": np.array([20, 40, 3, 3, 0])}
    atomic_savez(tmp_path / "old.npz", arrays)
    atomic_savez(tmp_path / "new.npz", {k: other_machine(v, rng) for k, v in arrays.items()})
    assert data_agree(tmp_path / "new.npz", tmp_path / "old.npz")
    atomic_savez(tmp_path / "far.npz", {**arrays, "rho": arrays["rho"] * (1 + 10 * RTOL)})
    assert not data_agree(tmp_path / "far.npz", tmp_path / "old.npz")
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 damaged")
    assert not data_agree(tmp_path / "bad.npz", tmp_path / "old.npz")
    assert not data_agree(tmp_path / "old.npz", tmp_path / "absent.npz")


def _on_another_machine(monkeypatch, figure, rtol=MACHINE_RTOL, atol=MACHINE_ATOL):
    """Make ``figure.compute`` write its real data moved by another machine's round-off."""
    compute, rng = figure.compute, np.random.default_rng(3)

    @functools.wraps(compute)   # compute's signature, so the CLI passes only what it declares
    def moved(data_path, **options):
        compute(data_path, **options)
        if str(data_path).endswith(".csv"):
            t = load_table(data_path)
            save_table({c: other_machine(v, rng, rtol, atol) for c, v in t.items()}, data_path)
        else:
            with np.load(data_path) as z:
                arrays = {k: other_machine(z[k], rng, rtol, atol) for k in z.files}
            atomic_savez(data_path, arrays)

    monkeypatch.setattr(figure, "compute", moved)


@pytest.mark.parametrize("figure", [fig_implicit_bias, fig_phase_transition], ids=["fig2", "fig4"])
def test_a_rerun_on_another_machine_leaves_the_published_bytes(tmp_path, monkeypatch, capsys,
                                                               figure):
    args = [figure.NAME, "--quick", "--out", str(tmp_path), "--jobs", "1", "--no-progress",
            "--no-cache"]
    assert main(args) == 0
    files = [figure.DATA_FILE, f"{figure.NAME}.png", f"{figure.NAME}.pdf"]
    before = {f: (tmp_path / f).read_bytes() for f in files}
    capsys.readouterr()
    _on_another_machine(monkeypatch, figure)
    assert main(args) == 0
    assert "the data agree with" in capsys.readouterr().err
    assert {f: (tmp_path / f).read_bytes() for f in files} == before
    # a change beyond the tolerance is a new result: published, not hidden
    _on_another_machine(monkeypatch, figure, rtol=10 * RTOL, atol=0.0)
    assert main(args) == 0
    assert (tmp_path / figure.DATA_FILE).read_bytes() != before[figure.DATA_FILE]
    assert data_agree(tmp_path / figure.DATA_FILE, tmp_path / figure.DATA_FILE)
