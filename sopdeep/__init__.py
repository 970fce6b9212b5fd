"""sopdeep: training deep classifiers under label noise with Sparse Over-Parameterization.

Liu, Zhu, Qu, You, "Robust Training under Label Noise by Over-parameterization", ICML 2022,
Section 2, Algorithm 1 and appendix A.
"""

__version__ = "0.1.0"
