"""Bad input gets a ValueError naming the argument (issue 2), for every public solver."""

import numpy as np
import pytest
import scipy.sparse

from soptheory import (
    classify_critical_point,
    coherence,
    default_step,
    duality_gap,
    flow_limit,
    gradient_descent,
    hessian_quadratic_form,
    kkt_residuals,
    make_problem,
    recovery_condition_holds,
    solve_convex,
)

PROB = make_problem(8, 12, 2, 2, random_state=0)
J, Y = PROB.J, PROB.y
J_NAN = J.copy()
J_NAN[0, 0] = np.nan
Y_INF = Y.copy()
Y_INF[1] = np.inf

CASES = [
    # flow_limit
    (flow_limit, (J, Y, 0.0), {}, "alpha must be finite and > 0"),
    (flow_limit, (J, Y, -3.0), {}, "alpha must be finite and > 0"),
    (flow_limit, (J, Y, [1.0, np.nan]), {}, "alpha must be finite and > 0"),
    (flow_limit, (J, Y, np.ones((2, 2))), {}, "alpha must be a scalar or a 1-D array"),
    (flow_limit, (J, Y, 1.0, 0.0), {}, r"gamma must lie in the open interval \(0, 1\)"),
    (flow_limit, (J, Y, 1.0, 1.0), {}, r"gamma must lie in the open interval \(0, 1\)"),
    (flow_limit, (J, Y, 1.0, 2.0), {}, r"gamma must lie in the open interval \(0, 1\)"),
    (flow_limit, (J, Y, [1.0, 2.0], [0.1, 0.2, 0.3]), {}, "gamma of shape"),
    (flow_limit, (J_NAN, Y, 1.0), {}, "J contains non-finite"),
    (flow_limit, (J, Y_INF, 1.0), {}, "y contains non-finite"),
    (flow_limit, (J, Y[:-1], 1.0), {}, "y must have length 8"),
    (flow_limit, (J[0], Y, 1.0), {}, "J must be a non-empty 2-D array"),
    (flow_limit, (J, Y, 1.0), {"max_iter": 0}, "max_iter must be >= 1"),
    # gradient_descent
    (gradient_descent, (J, Y, 0.0), {}, "alpha must be finite and > 0"),
    (gradient_descent, (J, Y, 1.0, 1.5), {}, r"gamma must lie in the open interval \(0, 1\)"),
    (gradient_descent, (J, Y, 1.0, 0.0), {}, r"gamma must lie in the open interval \(0, 1\)"),
    (gradient_descent, (J, Y, 1.0), {"tau": -1e-3}, "tau must be finite and > 0"),
    (gradient_descent, (J, Y, [1.0, 2.0]), {"tau": [1e-3, 1e-3, 1e-3]}, "tau must be a scalar or have the shape"),
    (gradient_descent, (J_NAN, Y, 1.0), {}, "J contains non-finite"),
    (gradient_descent, (J, Y[:3], 1.0), {}, "y must have length 8"),
    (gradient_descent, (J, Y, 1.0), {"on_divergence": "ignore"}, "on_divergence must be"),
    (gradient_descent, (J, Y, 1.0), {"safety_alpha": 0.7}, r"safety_alpha must lie in \(0, 0.5\)"),
    (gradient_descent, (J, Y, 1.0), {"safety_J": 2.0}, r"safety_J must lie in \(0, 2\)"),
    (gradient_descent, (J, Y, 1.0), {"check_every": 0}, "check_every must be >= 1"),
    (gradient_descent, (J, Y, 1.0), {"rtol_residual": 0.0}, "rtol_residual must be finite and > 0"),
    (default_step, (J, Y, -1.0), {}, "alpha must be finite and > 0"),
    # solve_convex and its certificates
    (solve_convex, (J, Y, 0.0), {}, "lam must be finite and > 0"),
    (solve_convex, (J, Y, -0.1), {}, "lam must be finite and > 0"),
    (solve_convex, (J, Y, [0.1, 0.0]), {}, "lam must be finite and > 0"),
    (solve_convex, (J_NAN, Y, 0.1), {}, "J contains non-finite"),
    (solve_convex, (J, Y_INF, 0.1), {}, "y contains non-finite"),
    (solve_convex, (J, Y[:-2], 0.1), {}, "y must have length 8"),
    (solve_convex, (J, Y, 0.1), {"solver": "NOT_A_SOLVER"}, "solver must be one of"),
    (kkt_residuals, (J, Y, 0.1, np.zeros(11), np.zeros(8)), {}, "theta must have length 12"),
    (kkt_residuals, (J, Y, 0.0, np.zeros(12), np.zeros(8)), {}, "lam must be finite and > 0"),
    (duality_gap, (J, Y, 0.1, np.zeros(12), np.zeros(8), np.zeros(7)), {}, "nu must have length 8"),
    # coherence
    (coherence, (J_NAN,), {}, "J contains non-finite"),
    (coherence, (np.zeros((5, 3)),), {}, "rank 0"),
    (coherence, (J,), {"rtol": 1.5}, r"rtol must lie in \(0, 1\)"),
    (recovery_condition_holds, (J, 9), {}, "k must be <= N = 8"),
    (recovery_condition_holds, (J, -1), {}, "k must be >= 0"),
    # issue 11: complex, sparse and empty J and a string tol, in the shared validation
    (solve_convex, (J * (1 + 1j), Y, 0.1), {}, "J must be real"),
    (flow_limit, (J * 1j, Y, 1.0), {}, "J must be real"),
    (coherence, (J + 0j,), {}, "J must be real"),
    (flow_limit, (scipy.sparse.csr_matrix(J), Y, 1.0), {}, "J must be a dense array"),
    (solve_convex, (scipy.sparse.coo_matrix(J), Y, 0.1), {}, "J must be a dense array"),
    (flow_limit, (np.empty((0, 3)), np.empty(0), 1.0), {}, "J must be a non-empty 2-D array"),
    (coherence, (np.empty((4, 0)),), {}, "J must be a non-empty 2-D array"),
    (flow_limit, (J, Y * 1j, 1.0), {}, "y must be real"),
    (gradient_descent, (J, Y, 1.0), {"tol": "1e-4"}, "tol must be a real number"),
    (flow_limit, (J, Y, "4"), {}, "alpha must be a real number"),
    (solve_convex, (J, Y, "0.1"), {}, "lam must be a real number"),
    # landscape
    (classify_critical_point, (J, Y, np.zeros(12), np.zeros(7), np.zeros(8)), {}, "u must have length 8"),
    (
        hessian_quadratic_form,
        (J, Y, np.zeros(12), np.zeros(8), np.zeros(8), np.zeros(12), np.zeros(8), np.zeros(9)),
        {},
        "d_v must have length 8",
    ),
]


@pytest.mark.parametrize(
    "func, args, kwargs, match", CASES, ids=[f"{c[0].__name__}-{c[3][:30]}" for c in CASES]
)
def test_bad_input_raises_value_error_naming_the_argument(func, args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        func(*args, **kwargs)
