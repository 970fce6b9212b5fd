"""sopdeep: training deep classifiers under label noise with Sparse Over-Parameterization.

Liu, Zhu, Qu, You, "Robust Training under Label Noise by Over-parameterization", ICML 2022,
Section 2, Algorithm 1 and appendix A.
"""

__version__ = "0.1.0"

__all__ = ["SOPLoss"]


def __getattr__(name):
    # `from sopdeep import SOPLoss` without importing torch for `import sopdeep`
    if name == "SOPLoss":
        from sopdeep.sop_module import SOPLoss

        return SOPLoss
    raise AttributeError(f"module 'sopdeep' has no attribute {name!r}")
