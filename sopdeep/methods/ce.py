"""Cross-entropy on the given labels, method ``"ce"``: the baseline of every table."""

from __future__ import annotations

import torch.nn.functional as F

from sopdeep.methods.base import Method, StepOutput

__all__ = ["CE"]


class CE(Method):
    """Plain cross-entropy on the given labels: the baseline of every table (no options)."""

    name = "ce"
    summary = "cross-entropy on the given labels (the baseline)"

    def batch_loss(self, model, batch, state):
        logits = model(batch.images)
        loss = F.cross_entropy(logits.float(), batch.labels)
        return StepOutput(loss=loss, logits=logits, terms={"ce": loss.detach()})
