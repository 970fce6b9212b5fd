"""SOP+'s strong view with the authors' AutoAugment magnitudes, per sample on uint8 images.

The released code (``shengliu66/SOP`` at 4d991ce: ``data_loader/augmentation_archive.py``, policy
``autoaug_paper_cifar10``, with the PIL ops of ``data_loader/augmentations.py``) applies the 25
AutoAugment CIFAR-10 sub-policies of Cubuk et al. with its own magnitude scale, not torchvision's
``AutoAugmentPolicy.CIFAR10``. Written here from that description (levels 0-9, maximum level 10):

=====================  ===========================================  ==============================
op                     magnitude at ``level``                       torchvision's CIFAR-10 policy
=====================  ===========================================  ==============================
Contrast, Color,       unsigned enhance factor 0.1 + 0.18 level     1 ± 0.1·(level bin), signed
Brightness, Sharpness
TranslateX/YAbs        ± level pixels (nearest, zero fill)          ± level·14.5/9 px
Rotate                 ± int(3 level) degrees (nearest, zero fill)  ± level·30/9 degrees
ShearY                 ± 0.03 level (nearest, zero fill)            ± level·0.3/9
Solarize               threshold 256 - int(25.6 level)              256 - level·256/9
Posterize2             4 - int(0.4 level) bits (level 7: 2 bits)    8 - round(level/2.25) bits
Invert, AutoContrast,  none                                         none
Equalize
=====================  ===========================================  ==============================

(``±``: the sign is flipped with probability 1/2, per application.) One sub-policy's level also
differs: (Brightness 0.9 6, Color 0.2 **6**) where torchvision has Color level 8.

Per image: one sub-policy uniformly among the 25, then each of its two ops applied with its
probability (in order, on the previous op's output). The ops are PIL's (``ImageOps``,
``ImageEnhance``, ``Image.rotate``, ``Image.transform``), as in the authors' code, so each op on a
given image and magnitude is the authors' output exactly.

Randomness: every draw (sub-policy, the two application coins, the two sign coins) comes from the
caller's ``torch.Generator``, all of a batch at once; with a CPU generator that is no device sync.
The images themselves go through PIL on the host, so a CUDA batch is copied to the CPU and back
(the authors' view is built in the DataLoader workers on the CPU too).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps

__all__ = ["authors_autoaugment", "POLICY", "SIGNED_OPS", "magnitude"]

#: The 25 sub-policies, (op, probability, level) pairs, as the authors' ``autoaug_paper_cifar10``.
POLICY: tuple[tuple[tuple[str, float, int], tuple[str, float, int]], ...] = (
    (("Invert", 0.1, 7), ("Contrast", 0.2, 6)),
    (("Rotate", 0.7, 2), ("TranslateXAbs", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
    (("ShearY", 0.5, 8), ("TranslateYAbs", 0.7, 9)),
    (("AutoContrast", 0.5, 8), ("Equalize", 0.9, 2)),
    (("ShearY", 0.2, 7), ("Posterize2", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
    (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, 5), ("Equalize", 0.5, 1)),
    (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Color", 0.7, 7), ("TranslateXAbs", 0.5, 8)),
    (("Equalize", 0.3, 7), ("AutoContrast", 0.4, 8)),
    (("TranslateYAbs", 0.4, 3), ("Sharpness", 0.2, 6)),
    (("Brightness", 0.9, 6), ("Color", 0.2, 6)),  # torchvision: Color level 8
    (("Solarize", 0.5, 2), ("Invert", 0.0, 3)),
    (("Equalize", 0.2, 0), ("AutoContrast", 0.6, 0)),
    (("Equalize", 0.2, 8), ("Equalize", 0.6, 4)),
    (("Color", 0.9, 9), ("Equalize", 0.6, 6)),
    (("AutoContrast", 0.8, 4), ("Solarize", 0.2, 8)),
    (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, 3)),
    (("TranslateYAbs", 0.9, 9), ("TranslateYAbs", 0.7, 9)),
    (("AutoContrast", 0.9, 2), ("Solarize", 0.8, 3)),
    (("Equalize", 0.8, 8), ("Invert", 0.1, 3)),
    (("TranslateYAbs", 0.7, 9), ("AutoContrast", 0.9, 1)),
)

_ENHANCE = {"Contrast": ImageEnhance.Contrast, "Color": ImageEnhance.Color,
            "Brightness": ImageEnhance.Brightness, "Sharpness": ImageEnhance.Sharpness}
SIGNED_OPS = frozenset({"ShearY", "Rotate", "TranslateXAbs", "TranslateYAbs"})  # sign flipped w.p. 1/2
_NO_MAGNITUDE = frozenset({"Invert", "AutoContrast", "Equalize"})
_MAX_LEVEL = 10  # their PARAMETER_MAX: level / 10 of each op's range
_MAPPED = frozenset({"TranslateXAbs", "TranslateYAbs", "Rotate", "ShearY", "Solarize", "Posterize2"})


def magnitude(op: str, level: int) -> float | int | None:
    """The authors' magnitude of ``op`` at ``level`` (unsigned; see the module's table).

    Parameters
    ----------
    op : str
        An op name of :data:`POLICY`.
    level : int
        The level, 0-9.

    Returns
    -------
    float, int or None
        Enhance factor (float), pixels / degrees / shear (float or int), solarize threshold or
        posterize bits (int); None for the ops without a magnitude.

    Examples
    --------
    >>> magnitude("Contrast", 6), magnitude("Posterize2", 7), magnitude("TranslateXAbs", 9)
    (1.18, 2, 9.0)
    """
    if op not in _ENHANCE and op not in _MAPPED and op not in _NO_MAGNITUDE:
        raise ValueError(f"op must be one of the policy's ops, got {op!r}")
    if not isinstance(level, (int, np.integer)) or not 0 <= level <= 9:
        raise ValueError(f"level must be an integer in 0..9, got {level!r}")

    def scaled(maxval):  # their float_parameter: level * maxval / PARAMETER_MAX, in this order
        return float(level) * maxval / _MAX_LEVEL

    if op in _ENHANCE:
        return round(scaled(1.8) + 0.1, 12)  # range [0.1, 1.9]; rounded away from binary noise
    if op in ("TranslateXAbs", "TranslateYAbs"):
        return float(level)  # their mapper leaves the level as it is: pixels on a 0-10 scale
    if op == "Rotate":
        return int(scaled(30))  # whole degrees (their int_parameter)
    if op == "ShearY":
        return round(scaled(0.3), 12)
    if op == "Solarize":
        return 256 - int(scaled(256))
    if op == "Posterize2":
        return 4 - int(scaled(4))
    return None


def _apply(img: Image.Image, op: str, mag) -> Image.Image:
    """``op`` with the signed magnitude ``mag`` on the RGB image ``img`` (PIL, as the authors)."""
    if op in _ENHANCE:
        return _ENHANCE[op](img).enhance(mag)
    if op == "Invert":
        return ImageOps.invert(img)
    if op == "AutoContrast":
        return ImageOps.autocontrast(img)
    if op == "Equalize":
        return ImageOps.equalize(img)
    if op == "Solarize":
        return ImageOps.solarize(img, mag)
    if op == "Posterize2":
        return ImageOps.posterize(img, int(mag))
    if op == "Rotate":
        return img.rotate(mag)  # about the centre, nearest, corners filled with black
    # the affine maps send output (x, y) to input (a x + b y + c, d x + e y + f); nearest, black fill
    coeffs = {"ShearY": (1, 0, 0, mag, 1, 0), "TranslateXAbs": (1, 0, mag, 0, 1, 0),
              "TranslateYAbs": (1, 0, 0, 0, 1, mag)}[op]
    return img.transform(img.size, Image.AFFINE, coeffs)


def authors_autoaugment(images: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
    """The authors' AutoAugment, one sub-policy per image (uint8 in, uint8 out).

    For image :math:`b`: sub-policy :math:`k_b \\sim \\mathcal{U}\\{0, \\dots, 24\\}` of
    :data:`POLICY`; op :math:`j \\in \\{1, 2\\}` of it is applied iff :math:`a_{bj} \\le p_j`
    (:math:`a_{bj} \\sim \\mathcal{U}[0, 1)`), its magnitude :func:`magnitude` negated for a signed
    op iff :math:`s_{bj} > 1/2` (:math:`s_{bj} \\sim \\mathcal{U}[0, 1)`), as their
    ``random.random()`` draws.

    Parameters
    ----------
    images : Tensor of shape (batch, 3, height, width), uint8
        Any device (the ops run on the host; the result is moved back).
    generator : torch.Generator
        The only source of randomness: ``5 * batch`` draws per call, made at once on the
        generator's device (use a CPU generator: a CUDA one would synchronise to hand them to PIL).

    Returns
    -------
    Tensor of the same shape, uint8, on the images' device.

    Examples
    --------
    >>> x = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    >>> authors_autoaugment(x, generator=torch.Generator().manual_seed(0)).shape
    torch.Size([2, 3, 32, 32])
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be a tensor of shape (batch, 3, height, width), got "
                         f"{getattr(images, 'shape', type(images))}")
    if images.dtype != torch.uint8:
        raise ValueError(f"images must be uint8, got {images.dtype}")
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    b, gdev = images.shape[0], generator.device
    # the batch's draws at once (one per image and op), then to plain Python for the PIL loop
    which = torch.randint(0, len(POLICY), (b,), generator=generator, device=gdev).cpu().numpy()
    apply_u = torch.rand((b, 2), generator=generator, device=gdev, dtype=torch.float64).cpu().numpy()
    sign_u = torch.rand((b, 2), generator=generator, device=gdev, dtype=torch.float64).cpu().numpy()
    host = images.permute(0, 2, 3, 1).cpu().numpy()  # (B, H, W, 3), PIL's layout
    out = np.empty_like(host)
    for i in range(b):
        img = Image.fromarray(host[i])
        for j, (op, prob, level) in enumerate(POLICY[which[i]]):
            if apply_u[i, j] > prob:  # applied with probability prob (theirs: skip if random() > pr)
                continue
            mag = magnitude(op, level)
            if op in SIGNED_OPS and sign_u[i, j] > 0.5:
                mag = -mag
            img = _apply(img, op, mag)
        out[i] = np.asarray(img)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous().to(images.device)
