"""Forward loss correction (Patrini, Rozza, Menon, Nock, Qu, CVPR 2017), method ``"forward"``.

The network's softmax p(x) models the *clean* label; the row-stochastic transition matrix
:math:`T_{ij} = P(\\tilde y = j \\mid y = i)` carries it to the noisy label, and the loss is the
cross-entropy of that corrected prediction with the given label:

.. math::

    \\ell_{\\rightarrow}(x, \\tilde y) = -\\log \\big(T^\\top p(x)\\big)_{\\tilde y}
    = -\\log \\sum_i p_i(x)\\, T_{i \\tilde y}.

It is computed as ``-logsumexp_i(log_softmax(z)_i + log T[i, y])`` in float32, so T = I gives
cross-entropy bit for bit; the entries of T are floored at the smallest normal float32
(:data:`T_FLOOR`, about 1.2e-38) before the log, so a label whose whole column of T is zero costs
a large finite loss (about 87 plus CE), never an infinite one or a NaN gradient.

Where T comes from (``forward_matrix``):

* ``"known"``: the expected matrix of the synthetic noise the run applies,
  :func:`sopdeep.noise.transition_matrix` (``config.applied_noise``, ``noise_rate``, ``dataset``);
  refused (one ``ValueError`` naming "estimated") for CIFAR-N and the other kinds without one.
* ``"estimated"`` (the default: it needs nothing about the noise): Patrini's anchor-point estimator
  (their Eqs. 11-12, robust variant). The loss is plain CE for the first ``forward_warmup`` epochs;
  after the last of them the network's predicted probabilities on the (un-augmented) training set
  estimate the noisy posterior, and for each class i the anchor is the sample at the
  ``forward_percentile``-th percentile of p_i (97: the paper's robust choice for the argmax, which
  is ``forward_percentile=100``); row i of T is that sample's probability vector
  (:func:`estimate_transition`). Training then continues with the corrected loss. Patrini et al.
  train a first network to estimate T and then a second one from scratch; here the same run goes
  on, so the warm-up must end before CE memorises the noisy labels (a memorised network is confident
  on every training sample, and its anchors give T close to I). T and the epoch count are saved by
  :meth:`Forward.state_dict`, so a resumed run continues exactly.

Noise score (``noise_scores``): the posterior probability that the given label is wrong under the
noise model, :math:`1 - p_{\\tilde y} T_{\\tilde y \\tilde y} / (T^\\top p)_{\\tilde y}`
(:func:`label_error_posterior`): the share of the corrected probability of the given label that
comes from the other classes flipping to it. Under symmetric T it ranks the samples as the base score ``1 - p_y``
does; T = I (no noise) makes it 0 for every sample. While T is not known yet (the warm-up, or
without probabilities: the per-epoch monitor) the base score is used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sopdeep.methods.base import Method, StepOutput
from sopdeep.noise import transition_matrix
from sopdeep.options import check_options, option

__all__ = ["Forward", "ForwardOptions", "forward_loss", "estimate_transition", "label_error_posterior", "T_FLOOR"]

#: Entries of T are floored at this (the smallest normal float32) before the log: log T stays finite.
T_FLOOR = torch.finfo(torch.float32).tiny


@dataclass(frozen=True)
class ForwardOptions:
    """Settings of Forward correction."""

    forward_matrix: str = option("estimated", "transition matrix T: known (the synthetic noise's own) or estimated "
                                              "(anchor points after forward_warmup epochs of CE)",
                                 choices=("known", "estimated"))
    # 20: our choice (half of Table A.1's first CIFAR lr phase), not Patrini's, who train a separate network
    forward_warmup: int = option(20, "estimated T: epochs of plain CE before T is estimated (must end before CE "
                                     "memorises the noise)", low=1)
    forward_percentile: float = option(97.0, "estimated T: the anchor of class i is the sample at this percentile "
                                             "of p_i (Patrini's robust 97; 100: the argmax)", low=0.0, high=100.0)

    def __post_init__(self) -> None:
        check_options(self)


def _working_dtype(x: torch.Tensor) -> torch.dtype:
    # float32 at least (bf16 / fp16 logits under autocast), float64 kept (gradcheck)
    return torch.promote_types(x.dtype, torch.float32)


def forward_loss(logits: torch.Tensor, labels: torch.Tensor, transition: torch.Tensor) -> torch.Tensor:
    """Per-sample forward-corrected loss ``-log (T^T softmax(z))_y``, shape (B,).

    Parameters
    ----------
    logits : Tensor of shape (B, K)
        Computed in float32 (float64 kept).
    labels : LongTensor of shape (B,)
        Given (noisy) labels.
    transition : Tensor of shape (K, K)
        Row-stochastic T, ``T[i, j] = P(noisy = j | clean = i)``.

    Examples
    --------
    >>> t = torch.tensor([[0.5, 0.5], [0.0, 1.0]])
    >>> forward_loss(torch.zeros(1, 2), torch.tensor([0]), t)  # -log(0.5 * 0.5 + 0.5 * 0)
    tensor([1.3863])
    """
    dtype = _working_dtype(logits)
    log_p = torch.log_softmax(logits.to(dtype), dim=1)
    # row b holds log T[i, y_b] over i: only the given label's column of T is needed
    log_t = torch.log(transition.to(dtype).clamp_min(T_FLOOR)).t().index_select(0, labels)
    # logsumexp in log space: no underflow of small p_i, and T = I returns log_softmax(z)_y exactly
    return -torch.logsumexp(log_p + log_t, dim=1)


def estimate_transition(probs: torch.Tensor, percentile: float = 97.0) -> torch.Tensor:
    """Patrini's anchor-point estimate of T from predicted probabilities of the noisy label.

    For each class i the anchor is the sample whose p_i is the order statistic of rank
    ``ceil(percentile / 100 * (N - 1))`` (0-based, ascending; ties in sample order), and row i of
    T is that sample's probability vector: ``T[i, :] = probs[anchor_i]``.

    Parameters
    ----------
    probs : Tensor of shape (N, K)
        Softmax outputs of a network trained on the noisy labels (rows sum to 1).
    percentile : float in [0, 100], default 97.0
        100 is the argmax of their Eq. 11; 97 their robust variant (outliers with an overconfident
        p_i are skipped).

    Returns
    -------
    Tensor of shape (K, K), on ``probs``' device and dtype

    Examples
    --------
    >>> p = torch.tensor([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]])
    >>> estimate_transition(p, 100.0)
    tensor([[0.9000, 0.1000],
            [0.3000, 0.7000]])
    """
    if probs.ndim != 2 or probs.shape[0] < 1 or probs.shape[1] < 2:
        raise ValueError(f"probs must have shape (N, K) with N >= 1 and K >= 2, got {tuple(probs.shape)}")
    if not (isinstance(percentile, (int, float)) and 0.0 <= percentile <= 100.0):
        raise ValueError(f"percentile must be a number in [0, 100], got {percentile!r}")
    n = probs.shape[0]
    rank = min(n - 1, math.ceil(percentile / 100.0 * (n - 1)))
    # per class (column) the samples in ascending order of p_i; stable: equal values keep sample order
    order = torch.sort(probs, dim=0, stable=True).indices
    return probs.index_select(0, order[rank])


def label_error_posterior(probs: torch.Tensor, labels: torch.Tensor, transition: torch.Tensor) -> torch.Tensor:
    """P(clean label != given label | x, given label) under T: ``1 - p_y T_yy / (T^T p)_y``, shape (N,).

    Bayes' rule with the network's p as the clean posterior; in [0, 1] since ``p_y T_yy`` is one
    of the terms of ``(T^T p)_y``.

    >>> t = torch.tensor([[0.6, 0.4], [0.4, 0.6]])
    >>> label_error_posterior(torch.tensor([[0.5, 0.5]]), torch.tensor([1]), t)  # 1 - 0.5 * 0.6 / 0.5
    tensor([0.4000])
    """
    q = (probs * transition.t().index_select(0, labels)).sum(dim=1)  # (T^T p)_y per sample
    joint = probs.gather(1, labels[:, None])[:, 0] * transition.diagonal().index_select(0, labels)
    return (1.0 - joint / q.clamp_min(T_FLOOR)).clamp(0.0, 1.0)


class Forward(Method):
    """Forward loss correction with a known or estimated transition matrix; see the module docstring.

    Method state (:meth:`state_dict`): ``epochs_done`` (the end-of-epoch calls seen) and, once set,
    ``transition`` (K, K). No per-sample state.
    """

    name = "forward"
    summary = "forward loss correction -log (T^T p)_y (Patrini et al. 2017), T known or estimated"
    Options = ForwardOptions

    def __init__(self, config, *, rank: int = 0) -> None:
        super().__init__(config, rank=rank)
        if self.options.forward_matrix == "estimated" and self.options.forward_warmup >= config.epochs:
            # T would never be estimated: the run would be plain CE under another name
            raise ValueError(f"forward_warmup must be < epochs ({config.epochs}) with forward_matrix='estimated', "
                             f"got {self.options.forward_warmup}")
        self.transition: torch.Tensor | None = None
        self.epochs_done = 0
        self.device = torch.device("cpu")
        self.shape = (0, 0)  # (N, K), set by init_state

    def init_state(self, num_samples, num_classes, generator, device):
        self.device, self.shape = torch.device(device), (num_samples, num_classes)
        if self.options.forward_matrix == "known":
            c = self.config
            t = transition_matrix(c.applied_noise, c.noise_rate, num_classes, c.dataset)
            self.transition = torch.as_tensor(t, dtype=torch.float32, device=self.device)
        return {}

    def batch_loss(self, model, batch, state):
        logits = model(batch.images)
        if self.transition is None:  # warm-up of the estimated T: plain CE
            loss = F.cross_entropy(logits.float(), batch.labels)
            return StepOutput(loss=loss, logits=logits, terms={"ce": loss.detach(), "forward": loss.detach()})
        loss = forward_loss(logits, batch.labels, self.transition).mean()
        with torch.no_grad():  # logged only
            ce = F.cross_entropy(logits.float(), batch.labels)
        return StepOutput(loss=loss, logits=logits, terms={"ce": ce, "forward": loss.detach()})

    def end_of_epoch(self, predictions, state, lr):
        self.epochs_done += 1
        o = self.options
        if o.forward_matrix != "estimated" or self.transition is not None or self.epochs_done < o.forward_warmup:
            return  # predictions is lazy: not iterating it costs nothing
        probs = torch.empty(self.shape, dtype=torch.float32, device=self.device)
        for idx, logits, _ in predictions:
            probs.index_copy_(0, idx, torch.softmax(logits.float(), dim=1))
        self.transition = estimate_transition(probs, o.forward_percentile)

    def noise_scores(self, state, labels, probs):
        if probs is None or self.transition is None:
            return super().noise_scores(state, labels, probs)
        t = self.transition.to(probs.device)
        return label_error_posterior(probs.float(), labels.to(probs.device), t)

    def state_dict(self):
        out = {"epochs_done": torch.tensor(self.epochs_done, dtype=torch.int64)}
        if self.transition is not None:
            out["transition"] = self.transition.detach().cpu().clone()
        return out

    def load_state_dict(self, state):
        self.epochs_done = int(state["epochs_done"])
        if "transition" in state:
            self.transition = state["transition"].to(device=self.device, dtype=torch.float32)
