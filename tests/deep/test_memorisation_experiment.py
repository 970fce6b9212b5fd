"""experiments/memorisation_regime.py (issue 34, part 6): its run order, the α chosen on the held-out
noisy labels (never the test set), the signs it reports and its bad arguments. No CIFAR training:
its runs take minutes each (a tiny run of the whole script was checked by hand, see its results)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from sopdeep import grid
from sopdeep.paper_numbers import paper_number
from sopdeep.presets import effective_alpha

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def exp():
    spec = importlib.util.spec_from_file_location("memorisation_regime", ROOT / "experiments" / "memorisation_regime.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _plan(exp, *extra):
    args = exp.build_parser().parse_args(["--data-dir", "d", "--out", "o", *extra])
    args.alpha_factors = exp.parse_factors(args.alpha_factors)
    return exp.plan(args)


def test_ce_and_sop_train_first_then_sop_plus_then_the_other_alphas(exp):
    runs = _plan(exp)
    order = [(c.setting, c.method, c.overrides.get("alpha_u")) for _, c, _ in runs]
    rule = effective_alpha(10.0, grid.MEMORISATION_RECIPE["batch_size"], 0.85)  # Table A.1's 10 at batch 256
    assert order == [("sym40", "ce", None), ("sym40", "sop", rule), ("sym80", "ce", None), ("sym80", "sop", rule),
                     ("sym40", "sop+", rule), ("sym40", "sop", rule / 3),
                     ("sym40", "sop", 3 * rule), ("sym80", "sop", rule / 3),
                     ("sym80", "sop", 3 * rule), ("sym80", "sop+", rule)]
    for _, cell, out in runs:
        config = grid.cell_config(cell, out)
        assert config.train_subset == 3000 and config.width == 32 and config.eval_every == 5
        assert config.options.alpha_v == config.options.alpha_u if cell.method != "ce" else True
    # each alpha in its own grid folder: the rule's cells are the memorisation grid's own
    assert {out.name for _, _, out in runs} == {"grid", "alpha-x0.333", "alpha-x3"}


def _row(exp, setting, method, alpha, final, best, heldout=None):
    row = dict.fromkeys(exp.ROW_KEYS)
    row.update(setting=setting, seed=0, method=method, alpha=alpha, final_test_acc=final, best_test_acc=best,
               heldout_acc_noisy=heldout, chosen="")
    return row


def test_the_alpha_is_the_best_on_the_heldout_noisy_labels_not_on_the_test_set(exp):
    rows = [_row(exp, "sym80", "sop", 1.0, final=0.60, best=0.61, heldout=0.150),
            _row(exp, "sym80", "sop", 3.0, final=0.40, best=0.41, heldout=0.160),  # worse on test, better held out
            _row(exp, "sym80", "ce", None, final=0.30, best=0.45)]
    rows[0]["chosen"] = "held-out"   # an earlier choice is taken back when a better alpha arrives
    exp.mark_chosen(rows)
    assert [r["chosen"] for r in rows] == ["", "held-out", ""]
    lines = exp.signs(rows)
    ce, sop = paper_number("cifar10", "sym80", "ce"), paper_number("cifar10", "sym80", "sop")
    assert f"| SOP (held-out α 3) − CE | sym80 | 0 | +10.00 | -4.00 | {sop.mean - ce.mean:+.2f}" in "\n".join(lines)


def test_sop_plus_is_compared_with_sop_at_its_own_alpha(exp):
    rows = [_row(exp, "sym40", "sop", 3.0, final=0.70, best=0.71, heldout=0.4),
            _row(exp, "sym40", "sop", 1.0, final=0.80, best=0.81, heldout=0.5),
            _row(exp, "sym40", "sop+", 3.0, final=0.72, best=0.75)]
    exp.mark_chosen(rows)
    assert "| SOP+ − SOP (both α 3) | sym40 | 0 | +2.00 | +4.00 |" in "\n".join(exp.signs(rows))


@pytest.mark.parametrize("bad", [["--alpha-factors", "0.5,3"], ["--alpha-factors", "1,x"], ["--alpha-factors", "1,1/0"], ["--settings", "sym20"],
                                 ["--methods", "gce"], ["--seeds", "0"]])
def test_bad_arguments_are_one_line(bad):
    done = subprocess.run([sys.executable, str(ROOT / "experiments" / "memorisation_regime.py"), "--data-dir", "d",
                           "--out", "o", "--dry-run", *bad], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "error: " in done.stderr.strip().splitlines()[-1]   # argparse's one line, after the usage
