"""soptheory's public functions refuse bad shapes and empties with a ValueError naming the argument
(issue 18); a phase table read back is checked; the worker count is capped."""

from __future__ import annotations

import numpy as np
import pytest

import soptheory as st
from soptheory._validation import check_jobs

J = np.random.default_rng(0).standard_normal((6, 8))
Y, THETA, S, NU = np.ones(6), np.zeros(8), np.zeros(6), np.zeros(6)


@pytest.mark.parametrize("call,name", [
    (lambda: st.kkt_residuals(J, Y, [0.1, 0.2], THETA, S), "lam"),          # a vector λ
    (lambda: st.kkt_residuals(J, Y, np.array([[0.1]]).repeat(2, 0), THETA, S), "lam"),
    (lambda: st.duality_gap(J, Y, np.array([0.1, 0.2]), THETA, S, NU), "lam"),
    (lambda: st.kkt_residuals(J, Y, 0.1, THETA, S, np.zeros(3)), "nu"),
    (lambda: st.primal_objective([], [], 0.1), "theta"),                     # empties
    (lambda: st.primal_objective(THETA, S, -1.0), "lam"),
    (lambda: st.primal_objective(np.zeros((3, 8)), np.zeros((4, 6)), 0.1), "theta, s and lam"),
    (lambda: st.dual_objective(J, Y, np.zeros(3)), "y and nu"),
    (lambda: st.dual_objective(np.zeros((0, 0)), [], []), "J"),
    (lambda: st.dual_objective(J, np.ones(5), np.ones(5)), "y and nu"),
    (lambda: st.relative_difference(np.zeros(3), np.zeros(4)), "a and b"),
    (lambda: st.relative_difference([], []), "a"),
    (lambda: st.recovery_error(np.zeros(3), np.ones(4)), "estimate and truth"),
    (lambda: st.recovery_error([], []), "estimate"),
    (lambda: st.recovery_error("abc", [1.0]), "estimate"),
])
def test_public_functions_name_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_valid_calls_still_work():
    assert st.relative_difference([3.0, 4.0], [0.0, 0.0]) == 1.0
    assert st.primal_objective(np.ones((2, 8)), np.ones((2, 6)), np.array([0.5, 1.0])).shape == (2,)
    assert float(st.kkt_residuals(J, Y, np.array([0.1]), THETA, S).primal) > 0   # a length-1 λ is one λ


@pytest.mark.parametrize("n_jobs,n_tasks,cores,expected", [(10_000, None, 8, 8), (10_000, 3, 8, 3), (-1, None, 4, 4),
                                                          (-1, 2, 4, 2), (2, 100, 8, 2)])
def test_check_jobs_caps_at_what_can_run(n_jobs, n_tasks, cores, expected):
    assert check_jobs(n_jobs, n_tasks=n_tasks, cores=cores) == expected


@pytest.mark.parametrize("bad", [0, -2, 2.5, "8", None, True])
def test_check_jobs_refuses_what_cannot_mean_a_count(bad):
    with pytest.raises(ValueError, match="n_jobs"):
        check_jobs(bad)
