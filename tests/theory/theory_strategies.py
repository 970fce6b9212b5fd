"""Hypothesis strategies shared by the soptheory tests: hypothesis draws sizes and a seed,
numpy builds the arrays from the seed (scipy's pattern)."""

from hypothesis import strategies as st

from soptheory import make_problem


@st.composite
def problems(draw, N=(6, 20), p_factor=(1, 2), r=(1, 3), k=(0, 3)):
    """A SparseCorruptionProblem with N in [N0, N1], p in [N, 2N], r <= min(N, p), k <= N."""
    n = draw(st.integers(*N))
    p = draw(st.integers(p_factor[0] * n, p_factor[1] * n))
    rank = draw(st.integers(r[0], min(r[1], n, p)))
    kk = draw(st.integers(k[0], min(k[1], n)))
    seed = draw(st.integers(0, 2**32 - 1))
    return make_problem(n, p, rank, kk, random_state=seed)


def log_uniform(low, high):
    """Floats spread evenly in log scale on [low, high]."""
    import math

    return st.floats(math.log(low), math.log(high)).map(math.exp)
