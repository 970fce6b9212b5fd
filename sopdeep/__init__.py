"""sopdeep: training deep classifiers under label noise with Sparse Over-Parameterization.

Liu, Zhu, Qu, You, "Robust Training under Label Noise by Over-parameterization", ICML 2022,
Section 2, Algorithm 1 and appendix A. Everything a user needs is here, one import away:

* training: :func:`train` a :class:`TrainConfig` (:meth:`TrainConfig.from_preset`,
  :func:`list_presets`) into a run folder, read back with :func:`read_run` and :func:`load_model`;
  :class:`SOPLoss` for your own loop;
* which labels are wrong: :func:`find_label_issues`, :func:`get_label_quality_scores`,
  :func:`order_label_issues`, :func:`label_issues_from_run`, :func:`detection_metrics`;
* data and noise: :func:`load_dataset`, :func:`make_noisy_labels`;
* the registries, one dict each: :data:`METHODS`, :data:`DATASETS`, :data:`ARCHITECTURES`,
  :data:`NOISE_KINDS`; a new method subclasses :class:`Method` (its :class:`Batch` in,
  :class:`StepOutput` out), a recipe's extras are :class:`StepHook` objects.

The submodules hold the rest and are internal. ``import sopdeep`` is light: torch is imported
with the first name that needs it.

>>> import sopdeep
>>> sorted(sopdeep.METHODS)[:3]
['ce', 'elr', 'forward']
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> the module that defines it (imported on first use)
_PUBLIC = {
    "train": "sopdeep.training.loop",
    "TrainResult": "sopdeep.training.loop",
    "TrainConfig": "sopdeep.config",
    "list_presets": "sopdeep.presets",
    "SOPLoss": "sopdeep.sop_module",
    "read_run": "sopdeep.runs",
    "load_model": "sopdeep.runs",
    "RunRecord": "sopdeep.runs",
    "RunError": "sopdeep.runs",
    "find_label_issues": "sopdeep.label_issues",
    "get_label_quality_scores": "sopdeep.label_issues",
    "order_label_issues": "sopdeep.label_issues",
    "label_issues_from_run": "sopdeep.label_issues",
    "detection_metrics": "sopdeep.detection",
    "load_dataset": "sopdeep.datasets",
    "make_noisy_labels": "sopdeep.noise",
    "METHODS": "sopdeep.methods",
    "DATASETS": "sopdeep.datasets",
    "ARCHITECTURES": "sopdeep.models",
    "NOISE_KINDS": "sopdeep.noise",
    "Method": "sopdeep.methods",
    "Batch": "sopdeep.methods",
    "StepOutput": "sopdeep.methods",
    "StepHook": "sopdeep.hooks",
}
# names whose attribute in their module differs from the public one
_RENAMED = {"label_issues_from_run": "from_run"}

__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'sopdeep' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), _RENAMED.get(name, name))
    globals()[name] = value  # cached: the next lookup is a plain attribute
    return value


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
