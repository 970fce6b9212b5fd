"""Bad-value tests generated from the declared options (as scikit-learn's common tests do from
``_parameter_constraints``): every setting of TrainConfig and of every registered method's
Options is refused, by name, at a value outside its declared type, choices or range, so a new
option's range is tested without writing a test."""

from __future__ import annotations

import dataclasses

import pytest

from sopdeep.config import TrainConfig, common_fields
from sopdeep.methods import METHODS, option_fields


def _declared():
    """(method, field) for every declared option: the common ones under SOP, then each method's own."""
    out = [("sop", f) for f in common_fields() if "doc" in f.metadata]
    out += [(m, f) for m in METHODS for f in option_fields(m) if "doc" in f.metadata]
    return out


def _bad_values(f):
    """Values outside ``f``'s declaration: another type, a non-choice, each side of its range."""
    t = f.type if isinstance(f.type, str) else f.type.__name__
    base = t.removesuffix(" | None")
    bad = {"bool": ["yes", 1], "int": [1.5, "3", True], "float": ["0.1", True], "str": [3],
           "list[int]": ["1,2", [1.5]]}[base]
    meta = f.metadata
    if meta.get("choices") is not None:
        bad.append("no-such-choice")
    low, high = meta.get("low"), meta.get("high")
    if low is not None:
        bad.append(low if meta["low_open"] else (low - 1 if base != "float" else low - 0.5))
        if base == "float":
            bad.append(float("nan"))
    if high is not None:
        bad.append(high if meta["high_open"] else high + 1)
    if base == "list[int]" and low is not None:
        bad = [v if isinstance(v, (list, str)) else [int(v)] for v in bad]
    return bad


@pytest.mark.parametrize("method, field", _declared(), ids=lambda x: x if isinstance(x, str) else x.name)
def test_every_declared_option_refuses_values_outside_its_declaration_by_name(method, field):
    for value in _bad_values(field):
        with pytest.raises(ValueError, match=field.name):
            TrainConfig(**{"method": method, field.name: value})


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_s_defaults_are_accepted_and_resolved(method):
    config = TrainConfig(method=method)
    for f in dataclasses.fields(config.options):
        if "doc" in f.metadata:
            # a tri-state option (None: the recipe's) is resolved when the config is made,
            # unless the method documents None as a value of its own (SL: the published weights)
            value = getattr(config.options, f.name)
            assert value is not None or f.name in _NONE_IS_A_VALUE.get(method, ()), (method, f.name)


# options whose None is kept: a documented value, resolved inside the method (SL's published alpha, beta)
_NONE_IS_A_VALUE = {"sl": ("sl_alpha", "sl_beta")}
