"""Network architectures: the paper's CIFAR ResNets and two small networks for CPU-sized runs.

All models take float tensors of shape (B, C, H, W) (any memory format, ``channels_last``
included) and return raw logits of shape (B, num_classes).

* ``"preact18"``: PreActResNet18 (He et al. 2016, "Identity Mappings in Deep Residual Networks"),
  CIFAR variant: a 3x3 stem convolution with 64 channels and no max-pool, four stages of two
  pre-activation basic blocks (64, 128, 256, 512 channels; strides 1, 2, 2, 2), BN-ReLU, global average
  pooling, linear. About 11.17M parameters for 10 classes.
* ``"preact18_authors"``: the PreActResNet18 of the authors' code (``shengliu66/SOP`` at 4d991ce,
  ``model/PreResNet.py``), which produced the SOP+ columns: the stem is conv-BN-ReLU, every block's
  shortcut carries the pre-activated input ``ReLU(BN(x))`` (identity blocks included, where He et
  al. add ``x`` itself), and there is no final BN-ReLU before the pooling. 11,171,274 parameters
  for 10 classes (``preact18`` minus the final BN's 1,024 plus the stem BN's 128). Their
  ``avg_pool2d(., 4)`` is global average pooling on 32x32 inputs, the pooling used here for every
  size.
* ``"resnet34"``: ResNet34 (He et al. 2016), CIFAR variant: 3x3 stem conv-BN-ReLU with 64 channels,
  no max-pool, post-activation basic blocks (3, 4, 6, 3) with 1x1 conv-BN projection shortcuts,
  global average pooling, linear. About 21.28M parameters for 10 classes.
* ``"cnn"``: three stages of two 3x3 conv-BN-ReLU layers (``width``, 2 ``width``, 4 ``width``
  channels) each followed by 2x2 max-pooling, global average pooling, linear; ~0.29M parameters at the
  default ``width=32``, for 28x28 and 32x32 inputs on a CPU.
* ``"fast"``: :class:`sopdeep.fast_net.FastNet`, airbench94's shape (a frozen 2x2 whitening stem,
  three conv groups of widths 64/256/256, max pooling, scaled logits), ~1.97M parameters, for
  full CIFAR-10 on a CPU in minutes (inputs >= 16x16).
* ``"mlp"``: flatten, ``depth`` hidden layers Linear-ReLU of ``width`` units, linear. No dropout or
  normalisation, so with the default 2 x 1024 (~1.9M parameters on 28x28x1) it can memorise noisy
  Fashion-MNIST labels (the over-fitting SOP is meant to prevent).
"""

from __future__ import annotations

import numbers

import torch
from torch import nn
import torch.nn.functional as F

from sopdeep.fast_net import FastNet

__all__ = ["ARCHITECTURES", "build_model", "PreActBlock", "PreActResNet", "BasicBlock", "ResNet", "SmallCNN", "MLP",
           "count_parameters"]


def _conv3x3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


class PreActBlock(nn.Module):
    """Pre-activation basic block: BN-ReLU-conv3x3(stride)-BN-ReLU-conv3x3, plus the identity.

    When the shape changes the shortcut is a strided 1x1 convolution of the pre-activated input.
    With ``shortcut_from_activation=True`` (the authors' code) an identity shortcut also carries the
    pre-activated input ``ReLU(BN(x))`` instead of ``x``.
    """

    expansion = 1

    def __init__(self, cin, cout, stride=1, shortcut_from_activation=False):
        super().__init__()
        self.shortcut_from_activation = bool(shortcut_from_activation)
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = _conv3x3(cin, cout, stride)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = _conv3x3(cout, cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False)

    def forward(self, x):
        out = F.relu(self.bn1(x))
        if self.shortcut is not None:
            shortcut = self.shortcut(out)
        else:
            shortcut = out if self.shortcut_from_activation else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet(nn.Module):
    """Pre-activation ResNet for small images (CIFAR stem: 3x3 conv, no max-pool).

    ``variant="he"``: He et al. (bare conv stem, identity shortcuts carry x, final BN-ReLU).
    ``variant="authors"``: the SOP authors' code (conv-BN-ReLU stem, shortcuts carry ReLU(BN(x)),
    no final BN-ReLU).
    """

    VARIANTS = ("he", "authors")

    def __init__(self, num_blocks=(2, 2, 2, 2), num_classes=10, in_channels=3, widths=(64, 128, 256, 512),
                 variant="he"):
        super().__init__()
        if variant not in self.VARIANTS:
            raise ValueError(f"variant must be one of {self.VARIANTS}, got {variant!r}")
        authors = variant == "authors"
        self.conv1 = _conv3x3(in_channels, widths[0])
        self.bn1 = nn.BatchNorm2d(widths[0]) if authors else None
        layers, cin = [], widths[0]
        for i, (n, w) in enumerate(zip(num_blocks, widths)):
            for j in range(n):
                layers.append(PreActBlock(cin, w, stride=2 if (i > 0 and j == 0) else 1,
                                          shortcut_from_activation=authors))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.bn = None if authors else nn.BatchNorm2d(cin)
        self.linear = nn.Linear(cin, num_classes)

    def forward(self, x):
        out = self.conv1(x)
        if self.bn1 is not None:
            out = F.relu(self.bn1(out))
        out = self.layers(out)
        if self.bn is not None:
            out = F.relu(self.bn(out))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


class BasicBlock(nn.Module):
    """Post-activation basic block: conv3x3(stride)-BN-ReLU-conv3x3-BN, plus shortcut, then ReLU.

    When the shape changes the shortcut is a strided 1x1 conv followed by BN (option B of He et al.).
    """

    expansion = 1

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = _conv3x3(cin, cout, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = _conv3x3(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet with basic blocks for small images (CIFAR stem: 3x3 conv-BN-ReLU, no max-pool)."""

    def __init__(self, num_blocks=(3, 4, 6, 3), num_classes=10, in_channels=3, widths=(64, 128, 256, 512)):
        super().__init__()
        self.conv1 = _conv3x3(in_channels, widths[0])
        self.bn1 = nn.BatchNorm2d(widths[0])
        layers, cin = [], widths[0]
        for i, (n, w) in enumerate(zip(num_blocks, widths)):
            for j in range(n):
                layers.append(BasicBlock(cin, w, stride=2 if (i > 0 and j == 0) else 1))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.linear = nn.Linear(cin, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layers(out)
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


class SmallCNN(nn.Module):
    """Three stages of [conv3x3-BN-ReLU] x 2 + 2x2 max-pool (width, 2 width, 4 width), GAP, linear."""

    def __init__(self, num_classes=10, in_channels=3, width=32):
        super().__init__()
        layers, cin = [], in_channels
        for w in (width, 2 * width, 4 * width):
            for _ in range(2):
                layers += [_conv3x3(cin, w), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
                cin = w
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.linear = nn.Linear(cin, num_classes)

    def forward(self, x):
        out = F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)
        return self.linear(out)


class MLP(nn.Module):
    """Flatten, then ``depth`` x (Linear(width) - ReLU), then Linear(num_classes)."""

    def __init__(self, in_features, num_classes=10, width=1024, depth=2):
        super().__init__()
        layers, d = [], in_features
        for _ in range(depth):
            layers += [nn.Linear(d, width), nn.ReLU(inplace=True)]
            d = width
        layers.append(nn.Linear(d, num_classes))
        self.in_features = in_features
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        x = x.flatten(1)
        if x.shape[1] != self.in_features:
            raise ValueError(f"MLP expects inputs with C*H*W = {self.in_features} features, got {x.shape[1]}")
        return self.net(x)


#: Architecture names and the keyword options each accepts.
ARCHITECTURES = {
    "preact18": (),
    "preact18_authors": (),
    "resnet34": (),
    "cnn": ("width",),
    "mlp": ("width", "depth"),
    "fast": ("width",),
}


def _pos_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def build_model(arch, num_classes, in_channels=3, image_size=32, **options):
    """Build a classifier returning raw logits.

    Parameters
    ----------
    arch : {"preact18", "preact18_authors", "resnet34", "cnn", "mlp", "fast"}
        Architecture (see the module docstring).
    num_classes : int
        K >= 2, the number of logits.
    in_channels : int, default 3
        C of the input (1 for Fashion-MNIST).
    image_size : int or (int, int), default 32
        H = W (or (H, W)) of the input; used by "mlp" to size its first layer, checked >= 8 for the
        convolutional nets (three or more 2x downsamplings). The convolutional nets end in global
        average pooling, so 28x28 and 32x32 inputs both work.
    **options
        ``width`` (cnn: base channels, default 32; fast: channels of its first group, default 64;
        mlp: hidden units, default 1024) and ``depth``
        (mlp: hidden layers, default 2). Other keys raise ValueError.

    Returns
    -------
    torch.nn.Module
        Maps float tensors (B, in_channels, H, W) to logits (B, num_classes).

    Examples
    --------
    >>> import torch
    >>> net = build_model("cnn", 10, in_channels=1, image_size=28)
    >>> net(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {sorted(ARCHITECTURES)}, got {arch!r}")
    unknown = sorted(set(options) - set(ARCHITECTURES[arch]))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for arch={arch!r}; allowed: {list(ARCHITECTURES[arch])}")
    num_classes = _pos_int(num_classes, "num_classes")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    in_channels = _pos_int(in_channels, "in_channels")
    if isinstance(image_size, (tuple, list)):
        if len(image_size) != 2:
            raise ValueError(f"image_size must be an int or a pair (H, W), got {image_size!r}")
        h, w = (_pos_int(s, "image_size") for s in image_size)
    else:
        h = w = _pos_int(image_size, "image_size")
    smallest = 16 if arch == "fast" else 8  # fast: a 2x2 stem without padding, then three poolings
    if arch != "mlp" and min(h, w) < smallest:
        raise ValueError(f"image_size must be >= {smallest} for arch={arch!r}, got {(h, w)}")
    if arch in ("preact18", "preact18_authors"):
        return PreActResNet((2, 2, 2, 2), num_classes, in_channels, variant="authors" if arch.endswith("_authors") else "he")
    if arch == "resnet34":
        return ResNet((3, 4, 6, 3), num_classes, in_channels)
    if arch == "fast":
        return FastNet(num_classes, in_channels, _pos_int(options.get("width", 64), "width"))
    if arch == "cnn":
        return SmallCNN(num_classes, in_channels, _pos_int(options.get("width", 32), "width"))
    return MLP(in_channels * h * w, num_classes, _pos_int(options.get("width", 1024), "width"),
               _pos_int(options.get("depth", 2), "depth"))


def count_parameters(model, trainable_only=True):
    """Number of (trainable) scalar parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
