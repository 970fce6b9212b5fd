"""Batched, on-device image augmentation for SOP and SOP+ (appendix A.4).

Images are tensors of shape (batch, channels, height, width), uint8 in [0, 255] or float in [0, 1],
on any device: nothing here loops over samples in Python or touches a DataLoader.

* :func:`random_crop_flip` — the *weak* view of A.4 ("random crop and horizontal flip following
  previous works"): pad by 4, crop back to the original size at a uniformly random offset, flip
  with probability 1/2. A.4 does not say how the border is filled; the works it follows (ELR,
  Forward) use torchvision's ``RandomCrop(32, padding=4)``, whose fill is zeros, so
  ``padding_mode="zeros"`` is the default and ``"reflect"`` (airbench's choice) an option.
* :func:`strong_augment` — the *strong* view of SOP+ (UDA's CIFAR-10 setting): AutoAugment's
  CIFAR-10 policy (or RandAugment) followed by Cutout, on images already cropped and flipped.
  These operations are library implementations, not hand-written: kornia's
  ``kornia.augmentation.auto.AutoAugment("cifar10")`` / ``RandAugment`` and ``RandomErasing``
  (as Cutout: one 16x16 square of zeros, inside the image) by default, or torchvision's
  ``transforms.v2`` equivalents with ``backend="torchvision"`` (drawn per sample).
* :func:`make_views` — uint8 batch to the (weak, strong) float pair SOP+ trains on.
* :func:`strong_view_per_sample` — the strong view exactly as the authors build it, one
  torchvision draw per sample: AutoAugment (CIFAR-10 policy) or RandAugment, then random crop and
  flip, then Cutout (a square centred anywhere, clipped at the border, filled with the dataset
  mean so that it reads 0 after normalisation) or torchvision's RandomErasing.

Randomness and reproducibility
------------------------------
Every function takes a ``torch.Generator``; nothing reads or seeds torch's global RNG behind the
caller's back. Crop offsets and flips are drawn from the generator directly. kornia and
torchvision draw their parameters from torch's *global* RNG and offer no generator argument, so
:func:`strong_augment` draws one 62-bit seed from the caller's generator and runs the library op
inside ``torch.random.fork_rng`` seeded with it: the output is a function of the generator state
alone, and the global RNG (CPU and the images' CUDA device) is restored afterwards. Use a CPU
generator: drawing that seed from a CUDA generator would synchronise the device.

Both libraries draw *one* sub-policy per call for the whole batch (a ``transforms.v2`` call on a
batch tensor applies the same op, magnitude and erased box to every image). The authors apply
their policy per image (in the dataset's ``__getitem__``), so the torchvision path calls the ops
once per sample. kornia samples magnitudes and erased boxes per sample but one sub-policy per call;
:func:`strong_augment` with kornia splits the batch into ``groups`` chunks, each with its own
sub-policy draw. Measured on this machine's CPU (``benchmarks/bench_strong_augment.py``): see the
benchmark's docstring.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

__all__ = ["random_crop_flip", "crop_flip_draws", "strong_augment", "strong_view_per_sample", "make_views", "to_float",
           "STRONG_POLICIES", "PER_SAMPLE_POLICIES", "BACKENDS",
           "ERASE_MODES", "POLICY_OPS", "BATCHED_POLICIES", "policy_table", "strong_view_draws", "decode_draws",
           "strong_view_batched", "cutout_mask", "StrongViewDraws"]

STRONG_POLICIES = ("autoaugment", "randaugment")
#: Policies of :func:`strong_view_per_sample`: the library ones plus the authors' AutoAugment
#: magnitudes (:func:`sopdeep.authors_augment.authors_autoaugment`, PIL on the host).
PER_SAMPLE_POLICIES = (*STRONG_POLICIES, "autoaugment_authors")
BACKENDS = ("kornia", "torchvision")
ERASE_MODES = ("cutout", "random_erasing", "none")


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"images must be a tensor of shape (batch, channels, height, width), got {getattr(images, 'shape', type(images))}")


def _check_generator(generator) -> None:
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, got {type(generator).__name__}")


def to_float(images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 in [0, 255] to float in [0, 1] (float input is returned cast to ``dtype``)."""
    _check_images(images)
    if images.dtype == torch.uint8:
        return images.to(dtype).div_(255.0)
    return images.to(dtype)


def crop_flip_draws(n: int, *, generator: torch.Generator, pad: int = 4, flip: bool = True,
                    device=None) -> dict[str, torch.Tensor]:
    """The random part of :func:`random_crop_flip` for ``n`` images at once: offsets and coins.

    ``offsets`` (2, n) int64 in ``0..2 pad`` (rows, columns; absent when ``pad`` is 0) and ``coins``
    (n,) bool (absent without ``flip``), drawn from ``generator`` in that order and moved to
    ``device`` in one copy. The trainer draws them for every sample once per epoch, so its steps
    only index a device tensor (no host-to-device copy per step).

    >>> d = crop_flip_draws(3, generator=torch.Generator().manual_seed(0), pad=2)
    >>> d["offsets"].shape, d["coins"].dtype
    (torch.Size([2, 3]), torch.bool)
    """
    _check_generator(generator)
    if int(pad) != pad or pad < 0:
        raise ValueError(f"pad must be a non-negative integer, got {pad!r}")
    gdev = generator.device
    draws = {}
    if pad > 0:
        draws["offsets"] = torch.randint(0, 2 * pad + 1, (2, n), generator=generator, device=gdev)
    if flip:
        draws["coins"] = torch.rand(n, generator=generator, device=gdev) < 0.5
    return {key: value.to(device or gdev) for key, value in draws.items()}


def random_crop_flip(
    images: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    pad: int = 4,
    padding_mode: str = "zeros",
    flip: bool = True,
    draws: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Random translation crop plus horizontal flip, batched (the weak view).

    For each image :math:`x_b` of size :math:`H \\times W`, draw offsets
    :math:`d^y_b, d^x_b \\sim \\mathcal{U}\\{0, \\dots, 2p\\}` and a coin :math:`c_b \\sim
    \\mathrm{Bernoulli}(1/2)`; with :math:`\\tilde x_b` the image padded by :math:`p` on each side,

    .. math::

        y_b[:, r, c] = \\tilde x_b[:, r + d^y_b, c' + d^x_b], \\qquad
        c' = \\begin{cases} W - 1 - c & c_b = 1 \\\\ c & c_b = 0. \\end{cases}

    Parameters
    ----------
    images : Tensor of shape (batch, channels, height, width)
        uint8 or float, any device.
    generator : torch.Generator, optional
        Source of the offsets and coins (draws on the generator's device, moved to the images').
        Required unless ``draws`` is given.
    pad : int, default 4
        Padding :math:`p` (A.4 / standard CIFAR practice). 0 disables the crop.
    padding_mode : {"zeros", "reflect"}, default "zeros"
    flip : bool, default True
    draws : dict, optional
        Offsets and coins of these images (:func:`crop_flip_draws`, rows selected), used instead
        of drawing: ``offsets`` (2, batch) with ``pad > 0``, ``coins`` (batch,) with ``flip``.

    Returns
    -------
    Tensor of the same shape, dtype and device as ``images``.
    """
    _check_images(images)
    if int(pad) != pad or pad < 0:
        raise ValueError(f"pad must be a non-negative integer, got {pad!r}")
    if padding_mode not in ("zeros", "reflect"):
        raise ValueError(f"padding_mode must be 'zeros' or 'reflect', got {padding_mode!r}")
    b, c, h, w = images.shape
    if padding_mode == "reflect" and pad >= min(h, w):
        raise ValueError(f"pad must be smaller than the image size for reflect padding, got {pad}")
    if draws is None:
        draws = crop_flip_draws(b, generator=generator, pad=pad, flip=flip, device=images.device)
    elif (pad > 0 and draws["offsets"].shape != (2, b)) or (flip and draws["coins"].shape != (b,)):
        raise ValueError(f"draws must hold offsets (2, {b}) and coins ({b},) for a batch of {b} images")
    out = images
    if pad > 0:
        offsets = draws["offsets"]
        mode = "constant" if padding_mode == "zeros" else "reflect"
        padded = F.pad(images, (pad, pad, pad, pad), mode=mode)
        rows = (offsets[0][:, None] + torch.arange(h, device=images.device))[:, None, :, None]  # (B, 1, H, 1)
        cols = (offsets[1][:, None] + torch.arange(w, device=images.device))[:, None, None, :]  # (B, 1, 1, W)
        bidx = torch.arange(b, device=images.device)[:, None, None, None]
        cidx = torch.arange(c, device=images.device)[None, :, None, None]
        out = padded[bidx, cidx, rows, cols]  # (B, C, H, W), contiguous like the input
    if flip:
        out = torch.where(draws["coins"][:, None, None, None], out.flip(-1), out)
    return out


@functools.lru_cache(maxsize=16)
def _kornia_ops(policy: str, n: int, m: int, cutout: int, size: tuple[int, int]):
    from kornia.augmentation import RandomErasing
    from kornia.augmentation.auto import AutoAugment, RandAugment

    op = AutoAugment("cifar10") if policy == "autoaugment" else RandAugment(n=n, m=m)
    ops = [op]
    if cutout > 0:
        frac = (cutout * cutout) / float(size[0] * size[1])
        ops.append(RandomErasing(scale=(frac, frac), ratio=(1.0, 1.0), value=0.0, p=1.0))
    return torch.nn.Sequential(*ops)


@functools.lru_cache(maxsize=16)
def _torchvision_ops(policy: str, n: int, m: int, cutout: int, size: tuple[int, int]):
    from torchvision.transforms import v2

    op = (
        v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)
        if policy == "autoaugment"
        else v2.RandAugment(num_ops=n, magnitude=m)
    )
    ops = [op]
    if cutout > 0:
        frac = (cutout * cutout) / float(size[0] * size[1])
        ops.append(v2.RandomErasing(p=1.0, scale=(frac, frac), ratio=(1.0, 1.0), value=0))
    return v2.Compose(ops)


def _per_sample(op, images: torch.Tensor, seed: int) -> torch.Tensor:
    """``op`` applied to each image on its own (its own random draw), torch's RNG seeded by ``seed``
    inside ``fork_rng`` (the caller's global RNG state is restored)."""
    devices = [images.device] if images.is_cuda else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return torch.stack([op(img) for img in images])


def _draw_seed(generator: torch.Generator) -> int:
    return int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())


def strong_augment(
    images: torch.Tensor,
    *,
    generator: torch.Generator,
    policy: str = "autoaugment",
    randaugment_n: int = 2,
    randaugment_m: int = 10,
    cutout: int = 16,
    groups: int = 8,
    backend: str = "kornia",
) -> torch.Tensor:
    """The strong view of SOP+: AutoAugment (CIFAR-10 policy) or RandAugment, then Cutout.

    Parameters
    ----------
    images : Tensor of shape (batch, channels, height, width)
        Float in [0, 1] (kornia's convention), usually already cropped and flipped; uint8 is
        converted with :func:`to_float`.
    generator : torch.Generator
        The only source of randomness (see the module docstring).
    policy : {"autoaugment", "randaugment"}
    randaugment_n, randaugment_m : int
        RandAugment's number of ops and magnitude (ignored for AutoAugment).
    cutout : int, default 16
        Side of the Cutout square in pixels (16 for 32x32 CIFAR images); 0 disables Cutout.
    groups : int, default 8
        kornia only: number of chunks with independent sub-policy draws (module docstring).
        torchvision always draws per sample.
    backend : {"kornia", "torchvision"}

    Returns
    -------
    Tensor of shape (batch, channels, height, width), float in [0, 1], on the images' device.
    Single-channel images are replicated to RGB for the policy and averaged back.
    """
    _check_images(images)
    _check_generator(generator)
    if policy not in STRONG_POLICIES:
        raise ValueError(f"policy must be one of {STRONG_POLICIES}, got {policy!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if int(groups) != groups or groups < 1:
        raise ValueError(f"groups must be a positive integer, got {groups!r}")
    if int(cutout) != cutout or cutout < 0 or cutout > min(images.shape[-2:]):
        raise ValueError(f"cutout must be an integer in [0, image size], got {cutout!r}")
    x = to_float(images) if images.dtype == torch.uint8 else images
    gray = x.shape[1] == 1
    if gray:  # the colour ops of both libraries need 3 channels: replicate, average back after
        x = x.expand(-1, 3, -1, -1).contiguous()
    size = (int(x.shape[-2]), int(x.shape[-1]))
    if backend == "kornia":
        ops = _kornia_ops(policy, int(randaugment_n), int(randaugment_m), int(cutout), size)
    else:
        try:
            ops = _torchvision_ops(policy, int(randaugment_n), int(randaugment_m), int(cutout), size)
        except ImportError as exc:  # pragma: no cover - depends on the platform
            raise ValueError(f"backend='torchvision' needs an importable torchvision ({exc})") from exc
    seed = _draw_seed(generator)
    if backend == "kornia":
        devices = [x.device] if x.is_cuda else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            out = torch.cat([ops(c) for c in x.chunk(min(int(groups), x.shape[0]))])
    else:  # one draw per sample, as the authors apply their policy
        out = _per_sample(ops, (x * 255).round().to(torch.uint8), seed).float().div_(255)
    if gray:
        out = out.mean(dim=1, keepdim=True)
    return out.clamp_(0.0, 1.0)


def _cutout(images: torch.Tensor, size: int, fill: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Cutout as DeVries & Taylor / the authors: per image a centre (cy, cx) uniform on the whole
    image, the square rows [cy - size//2, cy + size//2) x cols [cx - size//2, cx + size//2) clipped
    to the image, filled with ``fill`` (shape (C,))."""
    b, _, h, w = images.shape
    gdev = generator.device
    cy = torch.randint(0, h, (b,), generator=generator, device=gdev).to(images.device)
    cx = torch.randint(0, w, (b,), generator=generator, device=gdev).to(images.device)
    half = size // 2
    rows = torch.arange(h, device=images.device)
    cols = torch.arange(w, device=images.device)
    in_r = (rows[None, :] >= cy[:, None] - half) & (rows[None, :] < cy[:, None] + half)  # (B, H)
    in_c = (cols[None, :] >= cx[:, None] - half) & (cols[None, :] < cx[:, None] + half)  # (B, W)
    mask = (in_r[:, :, None] & in_c[:, None, :])[:, None]  # (B, 1, H, W)
    return torch.where(mask, fill.view(1, -1, 1, 1).to(images.dtype), images)


def strong_view_per_sample(
    images: torch.Tensor,
    *,
    generator: torch.Generator,
    policy: str = "autoaugment",
    randaugment_n: int = 2,
    randaugment_m: int = 10,
    pad: int = 4,
    flip: bool = True,
    erase: str = "cutout",
    cutout: int = 16,
    fill=0,
) -> torch.Tensor:
    """The authors' strong view, one torchvision draw per sample (uint8 in, uint8 out).

    For each image, in this order (``data_loader/data_loaders.py`` of ``shengliu66/SOP``):

    1. ``policy``: torchvision's ``v2.AutoAugment(AutoAugmentPolicy.CIFAR10)``,
       ``v2.RandAugment(randaugment_n, randaugment_m)``, or the same 25 AutoAugment sub-policies
       with the authors' magnitudes (``"autoaugment_authors"``,
       :func:`sopdeep.authors_augment.authors_autoaugment`), drawn for this image alone;
    2. random crop with zero padding ``pad`` and horizontal flip (:func:`random_crop_flip`);
    3. ``erase``: ``"cutout"`` — a ``cutout`` x ``cutout`` square centred uniformly *anywhere* in
       the image (so it may be cut by the border), filled with ``fill``; ``"random_erasing"`` —
       torchvision's ``v2.RandomErasing(p=1)`` (default scale (0.02, 0.33), ratio (0.3, 3.3)) filled
       with ``fill``; ``"none"``.

    The authors normalise before Cutout and fill with 0, i.e. with the normalisation mean: pass
    ``fill = round(255 * mean)`` per channel and normalise afterwards (the filled pixels then read
    0 up to the uint8 rounding, at most 0.5 / (255 std)).

    Parameters
    ----------
    images : Tensor of shape (batch, channels, height, width), uint8
        Raw images (channels 1 or 3; grey images are replicated to RGB for the policy and averaged
        back).
    generator : torch.Generator
        The only source of randomness: crop offsets, flips and Cutout centres are drawn from it;
        the torchvision draws run inside ``fork_rng`` seeded from it (the global RNG is restored).
    policy : {"autoaugment", "randaugment", "autoaugment_authors"}
    randaugment_n, randaugment_m : int
    pad : int, default 4
    flip : bool, default True
    erase : {"cutout", "random_erasing", "none"}, default "cutout"
    cutout : int, default 16
        Cutout side in pixels (16 for 32x32 CIFAR images).
    fill : int or sequence of int, default 0
        Fill value(s) in [0, 255] for the erased pixels, one per channel or one for all.

    Returns
    -------
    Tensor of the same shape, uint8, on the images' device.

    Examples
    --------
    >>> import torch
    >>> x = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    >>> strong_view_per_sample(x, generator=torch.Generator().manual_seed(0)).shape
    torch.Size([2, 3, 32, 32])
    """
    _check_images(images)
    _check_generator(generator)
    if images.dtype != torch.uint8:
        raise ValueError(f"images must be uint8, got {images.dtype}")
    if images.shape[1] not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got {images.shape[1]}")
    if policy not in PER_SAMPLE_POLICIES:
        raise ValueError(f"policy must be one of {PER_SAMPLE_POLICIES}, got {policy!r}")
    if erase not in ERASE_MODES:
        raise ValueError(f"erase must be one of {ERASE_MODES}, got {erase!r}")
    if int(cutout) != cutout or cutout < 0 or cutout > min(images.shape[-2:]):
        raise ValueError(f"cutout must be an integer in [0, image size], got {cutout!r}")
    c = images.shape[1]
    fill_t = torch.as_tensor(fill, dtype=torch.float64).flatten()
    if fill_t.numel() == 1:
        fill_t = fill_t.expand(c)
    if fill_t.numel() != c or bool(((fill_t < 0) | (fill_t > 255)).any()):
        raise ValueError(f"fill must be one value or {c} values in [0, 255], got {fill!r}")
    fill_t = fill_t.round().to(torch.uint8).to(images.device)
    try:
        from torchvision.transforms import v2
    except ImportError as exc:  # pragma: no cover - torchvision is a dependency
        raise ValueError(f"strong_view_per_sample needs an importable torchvision ({exc})") from exc
    x = images.expand(-1, 3, -1, -1) if c == 1 else images
    if policy == "autoaugment_authors":
        from sopdeep.authors_augment import authors_autoaugment

        x = authors_autoaugment(x, generator=generator)
    else:
        op = _torchvision_ops(policy, int(randaugment_n), int(randaugment_m), 0, tuple(images.shape[-2:]))
        x = _per_sample(op, x, _draw_seed(generator))
    if c == 1:
        x = x.float().mean(dim=1, keepdim=True).round_().to(torch.uint8)
    x = random_crop_flip(x, generator=generator, pad=pad, flip=flip)
    if erase == "cutout" and cutout > 0:
        x = _cutout(x, int(cutout), fill_t, generator)
    elif erase == "random_erasing":
        eraser = v2.RandomErasing(p=1.0, value=[int(f) for f in fill_t.tolist()])
        x = _per_sample(eraser, x, _draw_seed(generator))
    return x


def make_views(
    images: torch.Tensor,
    *,
    generator: torch.Generator,
    strong: bool = True,
    pad: int = 4,
    padding_mode: str = "zeros",
    **strong_kwargs,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """uint8 batch to the (weak, strong) pair of float views in [0, 1].

    The weak view is :func:`random_crop_flip`; the strong view is an *independent* crop/flip
    followed by :func:`strong_augment` (UDA applies its policy on top of the standard crop and
    flip). ``strong=False`` returns ``(weak, None)`` (plain SOP / CE).
    """
    weak = to_float(random_crop_flip(images, generator=generator, pad=pad, padding_mode=padding_mode))
    if not strong:
        return weak, None
    base = to_float(random_crop_flip(images, generator=generator, pad=pad, padding_mode=padding_mode))
    return weak, strong_augment(base, generator=generator, **strong_kwargs)


# ------------------------------------------------------------------------------------------------
# SOP+'s strong view as batched tensor ops (the "batched" backend)
#
# Each sample still draws its own sub-policy, application coins, magnitudes and signs, crop, flip
# and Cutout centre, as the per-sample reference (strong_view_per_sample) does; the draws of a
# whole pass are made at once (strong_view_draws, once per epoch) and compiled into a per-sample
# parameter table on the device. A step gathers the batch's rows of that table and applies every
# op family to the whole batch, each sample selecting its own op with torch.where: the number of
# kernels per step does not depend on the batch size, and nothing is read back on the host.

#: The ops of the batched policies, in the order of their ids in the draws (torchvision's names).
POLICY_OPS = ("Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
              "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize", "Invert")
_OP_ID = {name: i for i, name in enumerate(POLICY_OPS)}
#: Policies of the batched backend: torchvision's AutoAugment (CIFAR-10) and RandAugment, and the
#: authors' AutoAugment magnitudes (:mod:`sopdeep.authors_augment`) with these tensor ops.
BATCHED_POLICIES = ("autoaugment", "randaugment", "autoaugment_authors")
_GEOMETRIC = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
_ENHANCE_KIND = {"Brightness": 1, "Color": 2, "Contrast": 3, "Sharpness": 4}
_SLOT_WIDTH = 16  # per slot: rescaled inverse affine (6), geometric, r, 1 - r, kind, step, threshold, ac, eq,
#                  and (read back by decode_draws only) the op id and its signed argument
_TAIL = 5  # crop offsets (rows, cols), flip coin, Cutout centre (row, col)


def _authors_op(op: str) -> str:
    """The torchvision op that does what the authors' op does (their names: ``*Abs``, ``Posterize2``)."""
    return {"TranslateXAbs": "TranslateX", "TranslateYAbs": "TranslateY", "Posterize2": "Posterize"}.get(op, op)


def policy_table(policy: str, *, image_size: tuple[int, int], randaugment_n: int = 2,
                 randaugment_m: int = 10) -> dict:
    """The candidates a sample draws from, as the reference defines them.

    Returns a dict: ``kind`` ("subpolicy": one of ``rows`` uniformly, its ops in order, each
    applied with its probability; "uniform": ``slots`` independent uniform draws among ``rows``,
    always applied) and ``rows``: a list of tuples of ``(op, probability, argument, signed)``
    with ``argument`` the op's unsigned parameter (enhance factor, pixels, degrees, shear,
    threshold in pixel units, bits; 0 for ops without one) and ``signed``: negated with
    probability 1/2. Read from torchvision's own ``AutoAugment`` / ``RandAugment`` tables
    (``_policies``, ``_AUGMENTATION_SPACE``) for ``"autoaugment"`` / ``"randaugment"``, from
    :data:`sopdeep.authors_augment.POLICY` and :func:`~sopdeep.authors_augment.magnitude` for
    ``"autoaugment_authors"``.
    """
    if policy not in BATCHED_POLICIES:
        raise ValueError(f"policy must be one of {BATCHED_POLICIES}, got {policy!r}")
    h, w = image_size
    if policy == "autoaugment_authors":
        from sopdeep.authors_augment import SIGNED_OPS, POLICY, magnitude

        def authors(op, p, level):
            mag = magnitude(op, level)
            name = _authors_op(op)
            if name in ("TranslateX", "TranslateY"):
                # PIL's affine reads input (x + m): the content moves by -m, torchvision's by +t
                mag = -mag
            return name, p, float(mag or 0.0), op in SIGNED_OPS

        return {"kind": "subpolicy", "slots": 2, "rows": [tuple(authors(*op) for op in sub) for sub in POLICY]}
    from torchvision.transforms import v2

    if policy == "autoaugment":
        aug = v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)
        bins, rows = 10, []
        for sub in aug._policies:
            rows.append(tuple(_tv_candidate(aug, op, p, idx, bins, h, w) for op, p, idx in sub))
        return {"kind": "subpolicy", "slots": 2, "rows": rows}
    aug = v2.RandAugment(num_ops=randaugment_n, magnitude=randaugment_m)
    rows = [_tv_candidate(aug, op, 1.0, aug.magnitude, aug.num_magnitude_bins, h, w) for op in aug._AUGMENTATION_SPACE]
    return {"kind": "uniform", "slots": int(randaugment_n), "rows": rows}


def _tv_candidate(aug, op: str, p: float, idx, bins: int, h: int, w: int) -> tuple:
    """(op, probability, argument, signed) of torchvision's ``op`` at magnitude bin ``idx``, with the
    conversions of its ``_apply_image_or_video_transform`` (1 + m for enhance ops, int pixels and
    bits, threshold 255 m)."""
    fn, signed = aug._AUGMENTATION_SPACE[op]
    mags = fn(bins, h, w)
    m = 0.0 if mags is None or idx is None else float(mags[idx])
    if op in _ENHANCE_KIND:
        return op, p, 1.0 + m, signed  # sign applied to m, see _argument
    if op in ("TranslateX", "TranslateY", "Posterize"):
        return op, p, float(int(m)), signed
    if op == "Solarize":
        return op, p, 255.0 * m, signed
    return op, p, m, signed


def strong_view_draws(n: int, *, generator: torch.Generator, image_size: tuple[int, int],
                      policy: str = "autoaugment", randaugment_n: int = 2, randaugment_m: int = 10,
                      pad: int = 4, flip: bool = True, cutout: int = 16, device=None) -> torch.Tensor:
    """Every random draw of ``n`` strong views at once, compiled into a per-sample parameter table.

    Per sample, as :func:`strong_view_per_sample` draws it: the policy's ops and signed magnitudes
    (:func:`policy_table`: a sub-policy uniformly and a coin per op for AutoAugment, ``n`` uniform
    ops for RandAugment, a sign coin per signed op), then crop offsets and a flip coin
    (:func:`crop_flip_draws`), then the Cutout centre (uniform over the image). All drawn from
    ``generator`` in that order (on its device), then compiled and moved to ``device`` in one copy.

    Returns
    -------
    Tensor of shape (n, slots * 16 + 5), float32
        Rows to gather by sample (``table.index_select(0, indices)``) and pass to
        :func:`strong_view_batched`; :func:`decode_draws` reads them back.
    """
    _check_generator(generator)
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    h, w = (int(s) for s in image_size)
    table = policy_table(policy, image_size=(h, w), randaugment_n=randaugment_n, randaugment_m=randaugment_m)
    gdev = generator.device
    slots, rows = table["slots"], table["rows"]
    if table["kind"] == "subpolicy":  # one sub-policy per sample, its ops in order
        which = torch.randint(0, len(rows), (n,), generator=generator, device=gdev).cpu()
        coins = torch.rand((n, slots), generator=generator, device=gdev, dtype=torch.float64).cpu()
        ops = torch.tensor([[_OP_ID[op] for op, *_ in sub] for sub in rows])[which]  # (n, slots)
        prob = torch.tensor([[p for _, p, *_ in sub] for sub in rows], dtype=torch.float64)[which]
        arg = torch.tensor([[a for *_, a, _ in sub] for sub in rows], dtype=torch.float64)[which]
        signed = torch.tensor([[s for *_, s in sub] for sub in rows])[which]
        # applied with its probability: the reference's `rand <= p` (authors: skip if rand > p)
        ops = torch.where(coins <= prob, ops, torch.zeros_like(ops))
    else:  # RandAugment: slots independent uniform ops, always applied
        which = torch.randint(0, len(rows), (n, slots), generator=generator, device=gdev).cpu()
        ops = torch.tensor([_OP_ID[op] for op, *_ in rows])[which]
        arg = torch.tensor([a for *_, a, _ in rows], dtype=torch.float64)[which]
        signed = torch.tensor([s for *_, s in rows])[which]
    sign_u = torch.rand((n, slots), generator=generator, device=gdev, dtype=torch.float64).cpu()
    # the reference negates when rand <= 0.5 (torchvision) or rand > 0.5 (authors): both P = 1/2
    negate = signed & ((sign_u > 0.5) if policy == "autoaugment_authors" else (sign_u <= 0.5))
    arg = torch.where(negate & (ops != 0), -arg, arg)
    crop = crop_flip_draws(n, generator=generator, pad=pad, flip=flip)
    centre = torch.randint(0, h, (n,), generator=generator, device=gdev), \
        torch.randint(0, w, (n,), generator=generator, device=gdev)
    params = _compile(ops, arg, policy, h, w)  # (n, slots, 16)
    tail = torch.stack([crop["offsets"][0].cpu().double() if pad > 0 else torch.zeros(n, dtype=torch.float64),
                        crop["offsets"][1].cpu().double() if pad > 0 else torch.zeros(n, dtype=torch.float64),
                        crop["coins"].cpu().double() if flip else torch.zeros(n, dtype=torch.float64),
                        centre[0].cpu().double(), centre[1].cpu().double()], dim=1)
    out = torch.cat([params.reshape(n, -1), tail], dim=1).float()
    return out.to(device if device is not None else gdev)


def _compile(ops: torch.Tensor, arg: torch.Tensor, policy: str, h: int, w: int) -> torch.Tensor:
    """(n, slots) op ids and signed arguments to the (n, slots, 16) float64 parameters of
    :func:`_apply_slot`, computed once per pass in float64 as torchvision computes each op's
    matrix and factors in Python floats."""
    n, slots = ops.shape
    zero = torch.zeros_like(arg)
    is_ = {name: ops == _OP_ID[name] for name in POLICY_OPS}
    # inverse affine matrix of torchvision's F.affine / F.rotate (_get_inverse_affine_matrix)
    angle = torch.where(is_["Rotate"], -(arg % 360.0), zero)  # F.rotate: angle % 360, then affine's -angle
    rot = torch.deg2rad(angle)
    shear_x = torch.where(is_["ShearX"], torch.deg2rad(torch.rad2deg(torch.atan(arg))), zero)
    shear_y = torch.where(is_["ShearY"], torch.deg2rad(torch.rad2deg(torch.atan(arg))), zero)
    tx = torch.where(is_["TranslateX"], arg, zero)
    ty = torch.where(is_["TranslateY"], arg, zero)
    # shears turn about the top-left corner (center=[0, 0]), rotations and translations the centre
    corner = is_["ShearX"] | is_["ShearY"]
    cx = torch.where(corner, torch.full_like(arg, -0.5 * w), zero)
    cy = torch.where(corner, torch.full_like(arg, -0.5 * h), zero)
    a = torch.cos(rot - shear_y) / torch.cos(shear_y)
    b = -torch.cos(rot - shear_y) * torch.tan(shear_x) / torch.cos(shear_y) - torch.sin(rot)
    c = torch.sin(rot - shear_y) / torch.cos(shear_y)
    d = -torch.sin(rot - shear_y) * torch.tan(shear_x) / torch.cos(shear_y) + torch.cos(rot)
    m0, m1, m3, m4 = d, -b, -c, a
    m2 = m0 * (-cx - tx) + m1 * (-cy - ty) + cx
    m5 = m3 * (-cx - tx) + m4 * (-cy - ty) + cy
    theta = torch.stack([m0, m1, m2, m3, m4, m5], dim=-1).float().view(n, slots, 2, 3)
    # torchvision's _affine_grid: theta transposed, divided by (w/2, h/2) in float32
    rescaled = (theta.transpose(-1, -2) / torch.tensor([0.5 * w, 0.5 * h])).reshape(n, slots, 6).double()
    geometric = torch.zeros_like(ops, dtype=torch.bool)
    for name in _GEOMETRIC:
        geometric |= is_[name]
    kind = zero.clone()
    for name, code in _ENHANCE_KIND.items():
        kind = torch.where(is_[name], torch.full_like(arg, code), kind)
    enhance = kind > 0
    # torchvision: factor 1 + m with m signed (the table's argument is 1 + |m|: undo, sign, redo)
    if policy == "autoaugment_authors":
        ratio = torch.where(enhance, arg.abs(), torch.ones_like(arg))
    else:
        ratio = torch.where(enhance, 1.0 + torch.sign(arg) * (arg.abs() - 1.0), torch.ones_like(arg))
    one_minus = (1.0 - ratio).float().double()  # torchvision's alpha = 1 - ratio, in double then float32
    bits = torch.where(is_["Posterize"], arg.abs(), torch.full_like(arg, 8.0))
    step = torch.pow(2.0, 8.0 - bits)  # posterize to `bits` bits: floor(x / 2^(8-bits)) * 2^(8-bits)
    threshold = torch.where(is_["Solarize"], arg.abs(), torch.full_like(arg, 256.0))
    threshold = torch.where(is_["Invert"], zero, threshold)  # invert = solarize at threshold 0
    return torch.cat([rescaled, geometric.double()[..., None], ratio.float().double()[..., None], one_minus[..., None],
                      kind[..., None], step[..., None], threshold[..., None],
                      is_["AutoContrast"].double()[..., None], is_["Equalize"].double()[..., None],
                      ops.double()[..., None], torch.where(ops == 0, zero, arg)[..., None]], dim=-1)


def decode_draws(params: torch.Tensor) -> dict[str, torch.Tensor]:
    """What the rows of :func:`strong_view_draws` say, for tests and inspection: per slot the op id
    (``op`` (n, slots), ids of :data:`POLICY_OPS`, 0 where no op applies) and its signed
    ``argument`` (float32: the magnitude as the op takes it), and the tail (``offsets`` (2, n),
    ``coins`` (n,), ``centre`` (2, n))."""
    n = params.shape[0]
    slots = (params.shape[1] - _TAIL) // _SLOT_WIDTH
    p = params[:, :slots * _SLOT_WIDTH].reshape(n, slots, _SLOT_WIDTH).double()
    tail = params[:, slots * _SLOT_WIDTH:]
    return {"op": p[..., 14].long(), "argument": p[..., 15], "offsets": tail[:, :2].T.long(),
            "coins": tail[:, 2] > 0.5, "centre": tail[:, 3:5].T.long()}


def _apply_slot(x: torch.Tensor, p: torch.Tensor, base_grid: torch.Tensor, blur: torch.Tensor) -> torch.Tensor:
    """One op per sample on the float batch ``x`` (B, 3, H, W) of integer values 0..255, ``p`` (B, 16)
    its parameters; every family runs on the whole batch, a sample keeps only its own op's output
    (the others are the identity for it, or masked by ``torch.where``). Rounding as torchvision's
    uint8 kernels: grid samples rounded, blends truncated after the clamp."""
    b, _, h, w = x.shape
    flag = lambda j: p[:, j].view(b, 1, 1, 1) > 0.5  # noqa: E731
    # geometric ops: one nearest-neighbour grid_sample with each sample's inverse affine matrix
    grid = base_grid.expand(b, -1, -1).bmm(p[:, :6].reshape(b, 3, 2)).view(b, h, w, 2)
    warped = F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False).round_()
    x = torch.where(flag(6), warped, x)
    # enhance ops: blend with a degenerate image (brightness 0, colour the grey image, contrast its mean)
    r, s, kind = p[:, 7].view(b, 1, 1, 1), p[:, 8].view(b, 1, 1, 1), p[:, 9].view(b, 1, 1, 1)
    # torchvision's grey and blends, op for op (mul, then add with alpha: the same float rounding)
    grey = (x[:, 0:1] * 0.2989).add_(x[:, 1:2], alpha=0.587).add_(x[:, 2:3], alpha=0.114).floor_()
    degenerate = torch.where(kind == 2, grey, torch.where(kind == 3, grey.mean((1, 2, 3), keepdim=True),
                                                          torch.zeros_like(grey)))
    blended = torch.addcmul(x * r, degenerate, s)
    # sharpness: interior pixels pulled toward the rounded 3x3 blur, border pixels kept (torchvision's kernel)
    delta = F.pad(F.conv2d(x, blur, groups=3).round_() - x[:, :, 1:-1, 1:-1], (1, 1, 1, 1))
    sharpened = torch.addcmul(x, delta, s)
    enhanced = torch.where(kind == 4, sharpened, blended).clamp_(0.0, 255.0).trunc_()
    x = torch.where(kind > 0, enhanced, x)
    # posterize (a power-of-two step; 1 is the identity) and solarize / invert (threshold 256: none)
    step = p[:, 10].view(b, 1, 1, 1)
    x = torch.floor(x / step) * step
    x = torch.where(x >= p[:, 11].view(b, 1, 1, 1), 255.0 - x, x)
    # autocontrast per image and channel (constant channels unchanged), as torchvision's, without its masked writes
    low, high = x.amin((2, 3), keepdim=True), x.amax((2, 3), keepdim=True)
    flat = high == low
    scale = torch.where(flat, torch.ones_like(low), (high - low) * (1.0 / 255.0))
    contrasted = ((x - torch.where(flat, torch.zeros_like(low), low)) / scale).clamp_(0.0, 255.0).trunc_()
    x = torch.where(flag(12), contrasted, x)
    # equalize: torchvision's batched kernel (histograms by scatter_add, no host read)
    from torchvision.transforms.v2.functional import equalize

    x = torch.where(flag(13), equalize(x.to(torch.uint8)).float(), x)
    return x


@functools.lru_cache(maxsize=8)
def _grid_constants(h: int, w: int, device_str: str):
    """torchvision's base grid (1, H W, 3) and the sharpness kernel (3, 1, 3, 3) on a device."""
    device = torch.device(device_str)
    base = torch.empty(1, h, w, 3)
    base[..., 0].copy_(torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, steps=w))
    base[..., 1].copy_(torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, steps=h).unsqueeze_(-1))
    base[..., 2].fill_(1)
    a, c = 1.0 / 13.0, 5.0 / 13.0
    blur = torch.tensor([[a, a, a], [a, c, a], [a, a, a]]).expand(3, 1, 3, 3).contiguous()
    return base.view(1, h * w, 3).to(device), blur.to(device)


def strong_view_batched(images: torch.Tensor, params: torch.Tensor, *, pad: int = 4, flip: bool = True,
                        cutout: int = 16, fill: torch.Tensor | None = None) -> torch.Tensor:
    """The strong view of :func:`strong_view_per_sample`, batched: policy, crop + flip, Cutout.

    Parameters
    ----------
    images : Tensor of shape (batch, channels, height, width), uint8
        Raw images, channels 1 or 3 (grey images replicated to RGB for the policy, averaged back).
    params : Tensor of shape (batch, slots * 16 + 5), float32
        These images' rows of :func:`strong_view_draws` (same device).
    pad, flip, cutout :
        As the draws were made (crop padding, flip, Cutout side; 0 disables Cutout).
    fill : Tensor of shape (channels,), optional
        Cutout fill in pixels (0 when None), on the images' device.

    Returns
    -------
    Tensor of the same shape, uint8. Every op runs on the whole batch with per-sample parameters
    (:func:`_apply_slot`): no Python loop over samples, no host read, no host-to-device copy.
    """
    _check_images(images)
    if images.dtype != torch.uint8:
        raise ValueError(f"images must be uint8, got {images.dtype}")
    if images.shape[1] not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got {images.shape[1]}")
    b, c, h, w = images.shape
    slots = (params.shape[-1] - _TAIL) // _SLOT_WIDTH
    if params.ndim != 2 or params.shape[0] != b or params.shape[1] != slots * _SLOT_WIDTH + _TAIL:
        raise ValueError(f"params must be the images' rows of strong_view_draws, shape ({b}, slots * "
                         f"{_SLOT_WIDTH} + {_TAIL}), got {tuple(params.shape)}")
    base_grid, blur = _grid_constants(h, w, str(images.device))
    x = images.expand(-1, 3, -1, -1).float()
    for s in range(slots):
        x = _apply_slot(x, params[:, s * _SLOT_WIDTH:(s + 1) * _SLOT_WIDTH], base_grid, blur)
    if c == 1:
        x = x.mean(dim=1, keepdim=True).round_()
    tail = params[:, slots * _SLOT_WIDTH:].long()
    draws = {"offsets": tail[:, :2].T, "coins": tail[:, 2] > 0}
    x = random_crop_flip(x.to(torch.uint8), pad=pad, flip=flip,
                         draws={k: v for k, v in draws.items() if (k == "offsets" and pad > 0) or (k == "coins" and flip)})
    if cutout > 0:
        mask = cutout_mask(tail[:, 3], tail[:, 4], cutout, (h, w))
        value = torch.zeros(c, dtype=torch.uint8, device=x.device) if fill is None else fill.to(torch.uint8)
        x = torch.where(mask, value.view(1, -1, 1, 1), x)
    return x


def cutout_mask(cy: torch.Tensor, cx: torch.Tensor, size: int, image_size: tuple[int, int]) -> torch.Tensor:
    """Cutout's squares as a mask (B, 1, H, W): rows [cy - size//2, cy + size//2) x columns
    [cx - size//2, cx + size//2) of each image, clipped to it (DeVries & Taylor, the authors' Cutout;
    the same squares as :func:`_cutout`), from the centres ``cy``, ``cx`` (B,)."""
    h, w = image_size
    half = size // 2
    rows = torch.arange(h, device=cy.device)
    cols = torch.arange(w, device=cy.device)
    in_r = (rows[None, :] >= cy[:, None] - half) & (rows[None, :] < cy[:, None] + half)  # (B, H)
    in_c = (cols[None, :] >= cx[:, None] - half) & (cols[None, :] < cx[:, None] + half)  # (B, W)
    return (in_r[:, :, None] & in_c[:, None, :])[:, None]


class StrongViewDraws:
    """The strong view's draws of every sample for one pass, redrawn once per pass.

    A step gathers its rows (:meth:`rows`): no random draw and no host-to-device copy inside it.
    The first table is drawn at the first :meth:`rows` call (when the number of samples, the image
    size and the device are known), the next ones by :meth:`next_pass`, which the method calls
    after each epoch, outside the steps.

    Parameters
    ----------
    generator : torch.Generator
        The only source of randomness (a CPU generator; checkpoint it through :meth:`state_dict`).
    policy, randaugment_n, randaugment_m, pad, flip, cutout :
        As :func:`strong_view_draws`.

    Notes
    -----
    :meth:`state_dict` holds the generator's state *before* the current table was drawn, so a
    resumed run redraws the very table the interrupted run was using and continues the same stream.
    """

    def __init__(self, generator: torch.Generator, *, policy: str = "autoaugment", randaugment_n: int = 2,
                 randaugment_m: int = 10, pad: int = 4, flip: bool = True, cutout: int = 16) -> None:
        _check_generator(generator)
        if policy not in BATCHED_POLICIES:
            raise ValueError(f"policy must be one of {BATCHED_POLICIES}, got {policy!r}")
        self.generator = generator
        self.settings = dict(policy=policy, randaugment_n=randaugment_n, randaugment_m=randaugment_m, pad=pad,
                             flip=flip, cutout=cutout)
        self.table: torch.Tensor | None = None
        self._shape = None  # (n, (H, W), device) of the first call
        self._start = generator.get_state()  # the generator's state before the current table

    def _draw(self) -> None:
        n, size, device = self._shape
        self._start = self.generator.get_state()
        self.table = strong_view_draws(n, generator=self.generator, image_size=size, device=device, **self.settings)

    def rows(self, indices: torch.Tensor, n: int, image_size: tuple[int, int]) -> torch.Tensor:
        """The table's rows of ``indices`` (on their device) for a training set of ``n`` samples."""
        shape = (int(n), tuple(int(s) for s in image_size), indices.device)
        if self.table is None or self._shape != shape:
            self._shape = shape
            self.generator.set_state(self._start)  # the first table of the run (or of a resumed one)
            self._draw()
        return self.table.index_select(0, indices)

    def next_pass(self) -> None:
        """Draw the next pass's table now (nothing before the first :meth:`rows`)."""
        if self._shape is not None:
            self._draw()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"generator": self._start.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self._start = state["generator"].cpu()
        self.generator.set_state(self._start)
        self.table, self._shape = None, None  # redrawn from that state at the next rows()
