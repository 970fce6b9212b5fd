"""soptheory: the over-parameterized linear model of Sparse Over-Parameterization (SOP).

Liu, Zhu, Qu, You, "Robust Training under Label Noise by Over-parameterization", ICML 2022,
Section 3 and appendix B.
"""

from .batched_convex import BatchedConvexResult, gram_factor, solve_convex_batched
from .certificate import (
    KKTResiduals,
    convex_certificate,
    dual_objective,
    duality_gap,
    kkt_residuals,
    primal_objective,
)
from .coherence import coherence, numerical_rank, recovery_condition_holds
from .convex import ConvexProgram, ConvexSolution, SolverInaccurateWarning, solve_convex
from .flow_limit import FlowLimitResult, flow_limit
from .gradient_descent import (
    GradientDescentDiverged,
    GradientDescentResult,
    default_step,
    gradient_descent,
)
from .landscape import (
    CriticalPointReport,
    classify_critical_point,
    gradient_h,
    hessian_h,
    hessian_quadratic_form,
    objective_h,
)
from .metrics import recovery_error, relative_difference
from .problem import SparseCorruptionProblem, make_problem

__all__ = [
    "BatchedConvexResult",
    "convex_certificate",
    "gram_factor",
    "solve_convex_batched",
    "coherence",
    "numerical_rank",
    "recovery_condition_holds",
    "CriticalPointReport",
    "classify_critical_point",
    "gradient_h",
    "hessian_h",
    "hessian_quadratic_form",
    "objective_h",
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
