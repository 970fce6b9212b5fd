"""Cross-entropy on the given labels, method ``"ce"``: the baseline of every table.

With ``label_smoothing`` ε > 0 the target is ``(1 - ε) e_y + ε / K`` (Szegedy et al. 2016), as in
``torch.nn.functional.cross_entropy(..., label_smoothing=ε)``; ε = 0 (the default) is plain CE.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from sopdeep.methods.base import Method, StepOutput
from sopdeep.options import check_options, option

__all__ = ["CE", "CEOptions"]


@dataclass(frozen=True)
class CEOptions:
    """Settings of CE."""

    label_smoothing: float = option(0.0, "label smoothing eps of CE: target (1 - eps) e_y + eps / K", low=0.0,
                                    high=1.0, high_open=True)

    def __post_init__(self) -> None:
        check_options(self)


class CE(Method):
    """Cross-entropy on the given labels (optionally label-smoothed): the baseline of every table."""

    name = "ce"
    summary = "cross-entropy on the given labels (the baseline)"
    Options = CEOptions

    def batch_loss(self, model, batch, state):
        logits = model(batch.images)
        loss = F.cross_entropy(logits.float(), batch.labels, label_smoothing=self.options.label_smoothing)
        return StepOutput(loss=loss, logits=logits, terms={"ce": loss.detach()})
