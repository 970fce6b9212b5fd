"""Training methods and their registry: :data:`METHODS`, one line per method.

Every method is a :class:`~sopdeep.methods.base.Method` subclass in a module of its own, with its
settings declared in ``Options`` (read by :class:`sopdeep.config.TrainConfig`, the command line's
``--help`` and the presets). A new method is its module plus one line below.

>>> sorted(METHODS)
['ce', 'elr', 'forward', 'gce', 'sl', 'sop', 'sop+']
>>> [f.name for f in option_fields("gce")]
['gce_q']
"""

from __future__ import annotations

from dataclasses import Field, fields

from sopdeep.methods.base import Batch, Method, NoOptions, StepOutput
from sopdeep.methods.ce import CE
from sopdeep.methods.elr import ELR
from sopdeep.methods.forward import Forward
from sopdeep.methods.gce import GCE
from sopdeep.methods.sl import SL
from sopdeep.methods.sop import SOP
from sopdeep.methods.sop_plus import SOPPlus

__all__ = ["METHODS", "Batch", "StepOutput", "Method", "NoOptions", "CE", "SOP", "SOPPlus", "GCE", "ELR", "Forward",
           "SL", "get_method", "available_methods", "method_class", "option_fields"]

#: The registered methods, name -> class (the paper's SOP, SOP+ and baselines of its Table 1).
METHODS: dict[str, type[Method]] = {
    "ce": CE,
    "sop": SOP,
    "sop+": SOPPlus,
    "gce": GCE,
    "elr": ELR,
    "forward": Forward,
    "sl": SL,
}


def available_methods() -> tuple[str, ...]:
    """Names of the registered methods."""
    return tuple(METHODS)


def method_class(name: str) -> type[Method]:
    """The class registered as ``name``; ``ValueError`` naming the known ones otherwise."""
    if name not in METHODS:
        raise ValueError(f"method must be one of {available_methods()}, got {name!r}")
    return METHODS[name]


def option_fields(name: str) -> tuple[Field, ...]:
    """The declared option fields of method ``name``."""
    return fields(method_class(name).Options)


def get_method(config, *, rank: int = 0) -> Method:
    """An instance of the method named ``config.method``, for this DDP ``rank``."""
    return method_class(config.method)(config, rank=rank)
