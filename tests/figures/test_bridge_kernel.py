"""Program (25) depends on J only through J Jᵀ: solving it on a factor of the Gram matrix gives
the same s (the kernel form used by figures.fig_bridge_linearized)."""

import numpy as np
import torch

from soptheory import flow_limit, make_problem, solve_convex_batched
from sopdeep.jacobian import gram_factor_from_gram, jacobian_gram


def test_s_from_gram_factor_equals_s_from_j():
    prob = make_problem(30, 60, 4, 3, random_state=0)
    lams = np.array([0.05, 0.3, 2.0])
    # rtol 1e-6: the rounding floor of sigma from a float64 Gram (gram_factor_from_gram's docstring)
    F = gram_factor_from_gram(prob.J @ prob.J.T, rtol=1e-6)
    assert F.shape == (30, 4)
    a = solve_convex_batched(prob.J, prob.y, lams)
    b = solve_convex_batched(F, prob.y, lams)
    assert a.certified.all() and b.certified.all()
    # both certified to CERT_TOL = 1e-9 relative (soptheory.batched_convex): the two s agree to
    # that order; 1e-7 absolute on |y| ~ 1 leaves two orders for the factor's rounding
    np.testing.assert_allclose(a.s, b.s, atol=1e-7)
    fa, fb = flow_limit(prob.J, prob.y, 3.0, 1e-4), flow_limit(F, prob.y, 3.0, 1e-4)
    np.testing.assert_allclose(fa.s, fb.s, atol=1e-7)


def test_gram_of_a_random_linear_map_gives_the_same_s_as_its_matrix():
    # a bias-free linear "network" x -> W x with one output: J = X (the inputs), so the s from the
    # network's Gram must equal the s of program (25) on X itself
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    X = rng.standard_normal((25, 3)) @ rng.standard_normal((3, 40))
    lin = torch.nn.Linear(40, 1, bias=False)
    K = jacobian_gram(lin, torch.from_numpy(X), torch.ones(25, 1, dtype=torch.float64))
    y = X @ rng.standard_normal(40)
    y[[2, 7]] += 5.0
    F = gram_factor_from_gram(K, rtol=1e-6)
    assert F.shape == (25, 3)
    a = solve_convex_batched(X, y, 0.5)
    b = solve_convex_batched(F, y, 0.5)
    np.testing.assert_allclose(a.s, b.s, atol=1e-7)  # as above
    assert set(np.flatnonzero(np.abs(b.s[0]) > 1e-6)) >= {2, 7}
