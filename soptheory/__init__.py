"""soptheory: the over-parameterized linear model of Sparse Over-Parameterization (SOP).

Liu, Zhu, Qu, You, "Robust Training under Label Noise by Over-parameterization", ICML 2022,
Section 3 and appendix B.
"""

from .convex import (
    ConvexProgram,
    ConvexSolution,
    KKTResiduals,
    SolverInaccurateWarning,
    dual_objective,
    duality_gap,
    kkt_residuals,
    primal_objective,
    solve_convex,
)
from .flow_limit import FlowLimitResult, flow_limit
from .gradient_descent import (
    GradientDescentDiverged,
    GradientDescentResult,
    default_step,
    gradient_descent,
)
from .metrics import recovery_error, relative_difference
from .problem import SparseCorruptionProblem, make_problem

__all__ = [
    "ConvexProgram",
    "ConvexSolution",
    "KKTResiduals",
    "SolverInaccurateWarning",
    "dual_objective",
    "duality_gap",
    "kkt_residuals",
    "primal_objective",
    "solve_convex",
    "FlowLimitResult",
    "flow_limit",
    "GradientDescentDiverged",
    "GradientDescentResult",
    "default_step",
    "gradient_descent",
    "SparseCorruptionProblem",
    "make_problem",
    "recovery_error",
    "relative_difference",
]
__version__ = "0.1.0"
