import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from soptheory import make_problem, recovery_error, relative_difference


@given(
    N=st.integers(2, 30),
    p=st.integers(2, 40),
    data=st.data(),
    seed=st.integers(0, 2**32 - 1),
)
def test_make_problem_satisfies_model_and_min_norm(N, p, data, seed):
    r = data.draw(st.integers(1, min(N, p)))
    k = data.draw(st.integers(0, N))
    prob = make_problem(N, p, r, k, random_state=seed)
    # 1e-9 relative: the residual of a least-squares solve in float64 on matrices of norm ~sqrt(N p r).
    scale = np.linalg.norm(prob.y) + 1.0
    assert np.linalg.norm(prob.J @ prob.theta_star + prob.s_star - prob.y) <= 1e-9 * scale
    assert np.linalg.matrix_rank(prob.J) == r
    assert np.count_nonzero(prob.s_star) == k
    # Minimum norm <=> theta* lies in the row space of J: its component orthogonal to it vanishes.
    _, sv, Vt = np.linalg.svd(prob.J, full_matrices=True)
    null = Vt[r:]
    assert np.linalg.norm(null @ prob.theta_star) <= 1e-9 * (np.linalg.norm(prob.theta_star) + 1.0)
    assert np.linalg.norm(prob.theta_star) <= np.linalg.norm(prob.theta0) + 1e-9


def test_make_problem_is_reproducible_per_seed():
    a = make_problem(20, 40, 3, 3, random_state=7)
    b = make_problem(20, 40, 3, 3, random_state=7)
    c = make_problem(20, 40, 3, 3, random_state=8)
    np.testing.assert_array_equal(a.J, b.J)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.y, c.y)


@pytest.mark.parametrize(
    "args, match",
    [
        ((20, 40, 3, 21), "k must be <= N"),
        ((20, 40, 21, 3), r"r must be <= min\(N, p\)"),
        ((20, 10, 11, 3), r"r must be <= min\(N, p\)"),
        ((20, 40, 0, 3), "r must be >= 1"),
        ((20, 40, 3, -1), "k must be >= 0"),
        ((20.5, 40, 3, 3), "N must be an integer"),
    ],
)
def test_make_problem_rejects_bad_sizes(args, match):
    with pytest.raises(ValueError, match=match):
        make_problem(*args)


def test_relative_difference_matches_definition():
    a = np.array([1.0, 2.0, 2.0])
    b = np.array([1.0, 0.0, 0.0])
    assert relative_difference(a, b) == pytest.approx(np.sqrt(8.0) / 3.0, rel=1e-15)
    assert relative_difference(a, b) == relative_difference(b, a)
    assert relative_difference(np.zeros(3), np.zeros(3)) == 0.0
    batch = relative_difference(np.stack([a, b]), np.stack([b, b]))
    np.testing.assert_allclose(batch, [np.sqrt(8.0) / 3.0, 0.0], rtol=1e-15)


def test_recovery_error_matches_definition_and_rejects_zero_truth():
    assert recovery_error([2.0, 0.0], [1.0, 0.0]) == pytest.approx(1.0, rel=1e-15)
    with pytest.raises(ValueError, match="zero norm"):
        recovery_error([1.0], [0.0])
