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
           "ERASE_MODES"]

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
