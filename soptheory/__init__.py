"""soptheory: the over-parameterized linear model of Sparse Over-Parameterization (SOP).

Liu, Zhu, Qu, You, "Robust Training under Label Noise by Over-parameterization", ICML 2022,
Section 3 and appendix B.
"""

from .batched_convex import BatchedConvexResult, convex_certificate, gram_factor, solve_convex_batched
from .metrics import recovery_error, relative_difference
from .problem import SparseCorruptionProblem, make_problem

__all__ = [
    "BatchedConvexResult",
    "convex_certificate",
    "gram_factor",
    "solve_convex_batched",
    "SparseCorruptionProblem",
    "make_problem",
    "recovery_error",
    "relative_difference",
]
__version__ = "0.1.0"
