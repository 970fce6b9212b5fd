"""A network built for speed on 32x32 images: a frozen patch-whitening stem and three conv groups.

The shape follows airbench94 (Jordan 2024, "94% on CIFAR-10 in 3.29 seconds on a single GPU",
arXiv 2404.00498), written for this package:

* stem: a 2x2 convolution without padding whose 2·C·4 filters are ``W`` and ``-W``, ``W`` the
  ZCA-like whitening of the training set's 2x2 patches (eigenvectors scaled by
  ``1/sqrt(eigenvalue + eps)``); its weights are frozen, its bias trains; then GELU;
* three groups (widths ``w, 4w, 4w``, ``w = 64`` by default): conv3x3 - maxpool2 - BN - GELU -
  conv3x3 - BN - GELU, every conv bias-free and Dirac-initialised on its first ``C_in`` filters (the
  group starts near an identity map), BatchNorm with a fixed scale 1 (only its shift trains);
* global max pooling, a bias-free linear layer, logits scaled by ``logit_scale`` (1/9).

About 1.97M trainable parameters for 10 classes at ``width=64``. Until
:func:`init_whitening` is called the stem holds the identity-like filters of an untrained net; the
trainer calls :meth:`FastNet.init_from_data` with the first :attr:`FastNet.data_init_samples`
training images, and :meth:`FastNet.training_hooks` freezes the stem's bias after
``stem_bias_epochs`` (airbench: 3).
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from sopdeep.hooks import FrozenParameters, StepHook

__all__ = ["FastNet", "patch_whitening_filters", "init_whitening"]

#: Eigenvalue floor of the whitening (airbench's 5e-4): keeps the near-null patch directions finite.
WHITENING_EPS = 5e-4


class _ConvGroup(nn.Module):
    """conv3x3 - maxpool2 - BN - GELU - conv3x3 - BN - GELU."""

    def __init__(self, cin: int, cout: int, bn_momentum: float):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.norm1 = _shift_only_bn(cout, bn_momentum)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.norm2 = _shift_only_bn(cout, bn_momentum)
        for conv in (self.conv1, self.conv2):  # the first C_in filters pass their input through
            nn.init.dirac_(conv.weight.data[:conv.weight.shape[1]])

    def forward(self, x):
        x = F.gelu(self.norm1(F.max_pool2d(self.conv1(x), 2)))
        return F.gelu(self.norm2(self.conv2(x)))


def _shift_only_bn(channels: int, momentum: float) -> nn.BatchNorm2d:
    # scale fixed at 1: after a conv the scale is redundant with the next conv's weights
    bn = nn.BatchNorm2d(channels, eps=1e-12, momentum=momentum)
    bn.weight.requires_grad_(False)
    return bn


class FastNet(nn.Module):
    """Whitening stem + three conv groups + max pool + scaled linear (see the module docstring).

    Parameters
    ----------
    num_classes : int
    in_channels : int, default 3
    width : int, default 64
        Channels of the first group; the other two have ``4 * width``.
    logit_scale : float, default 1/9
    bn_momentum : float, default 0.4
        torch's BatchNorm momentum (weight of the new batch in the running statistics).

    Examples
    --------
    >>> net = FastNet(10)
    >>> net(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 64, logit_scale: float = 1 / 9,
                 bn_momentum: float = 0.4):
        super().__init__()
        self.whiten = nn.Conv2d(in_channels, 2 * in_channels * 4, kernel_size=2, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)
        nn.init.zeros_(self.whiten.bias)
        widths = (width, 4 * width, 4 * width)
        cins = (self.whiten.out_channels,) + widths[:-1]
        self.groups = nn.Sequential(*(_ConvGroup(cin, cout, bn_momentum) for cin, cout in zip(cins, widths)))
        self.linear = nn.Linear(widths[-1], num_classes, bias=False)
        self.logit_scale = float(logit_scale)

    #: how many training images the whitening stem is computed from (airbench: 5,000)
    data_init_samples = 5000

    def forward(self, x):
        x = self.groups(F.gelu(self.whiten(x)))
        return self.linear(torch.amax(x, dim=(2, 3))) * self.logit_scale

    def init_from_data(self, images: torch.Tensor) -> None:
        """Set the stem from normalised training images (B, C, H, W): :func:`init_whitening`."""
        init_whitening(self, images)

    def training_hooks(self, config) -> list[StepHook]:
        """The stem's bias stops training after ``config.stem_bias_epochs`` epochs (0: it trains throughout)."""
        if not config.stem_bias_epochs:
            return []
        return [FrozenParameters([self.whiten.bias], from_epoch=config.stem_bias_epochs)]


def patch_whitening_filters(images: torch.Tensor, kernel_size: int = 2, eps: float = WHITENING_EPS) -> torch.Tensor:
    """Whitening filters of the ``kernel_size``² patches of ``images``.

    With ``P`` the (n, C k²) matrix of all patches and ``Σ = PᵀP / n = V diag(λ) Vᵀ``, the filters
    are the rows of ``diag(λ + eps)^{-1/2} Vᵀ`` (largest eigenvalue first), shaped as conv weights:
    filter ``i`` applied to a patch ``p`` gives ``v_iᵀ p / sqrt(λ_i + eps)``, so the filter outputs
    over the data have covariance ``diag(λ / (λ + eps))`` ≈ I (uncentred, as the stem has a bias).

    Parameters
    ----------
    images : Tensor (N, C, H, W), float
        Standardised training images (a few thousand suffice).
    kernel_size : int, default 2
    eps : float, default 5e-4

    Returns
    -------
    Tensor (C k², C, k, k), float32

    Examples
    --------
    >>> torch.manual_seed(0) and None
    >>> patch_whitening_filters(torch.randn(50, 3, 8, 8)).shape
    torch.Size([12, 3, 2, 2])
    """
    c, k = images.shape[1], kernel_size
    patches = images.float().unfold(2, k, 1).unfold(3, k, 1)  # (N, C, H', W', k, k)
    flat = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k).double()
    cov = flat.T @ flat / flat.shape[0]
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)  # ascending
    eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.flip(1)
    filters = eigenvectors.T / torch.sqrt(eigenvalues.clamp_min(0) + eps)[:, None]
    return filters.reshape(c * k * k, c, k, k).float()


@torch.no_grad()
def init_whitening(net: FastNet, images: torch.Tensor) -> None:
    """Set the stem of ``net`` to ``[W, -W]``, ``W = patch_whitening_filters(images)``."""
    filters = patch_whitening_filters(images, kernel_size=net.whiten.kernel_size[0])
    net.whiten.weight.copy_(torch.cat([filters, -filters]).to(net.whiten.weight))
