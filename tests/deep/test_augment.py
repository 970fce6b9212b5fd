"""Batched device-side augmentation: crop/flip geometry, determinism per seed, strong view sanity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sopdeep.augment import make_views, random_crop_flip, strong_augment, to_float


def _images(b=6, c=3, h=8, w=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, c, h, w), dtype=torch.uint8, generator=g)


@pytest.mark.parametrize("mode", ["zeros", "reflect"])
def test_crop_flip_is_a_shifted_window_of_the_padded_image(mode):
    x = _images()
    out = random_crop_flip(x, generator=torch.Generator().manual_seed(3), pad=2, padding_mode=mode)
    assert out.shape == x.shape and out.dtype == x.dtype
    # independent reference: numpy padding, then search every (dy, dx, flip) for an exact match
    npmode = "constant" if mode == "zeros" else "reflect"
    xp = np.pad(x.numpy(), ((0, 0), (0, 0), (2, 2), (2, 2)), mode=npmode)
    seen_flip = set()
    for b in range(x.shape[0]):
        matches = [
            (dy, dx, f)
            for dy in range(5)
            for dx in range(5)
            for f in (0, 1)
            if np.array_equal(
                (xp[b, :, dy : dy + 8, dx : dx + 8][..., ::-1] if f else xp[b, :, dy : dy + 8, dx : dx + 8]),
                out[b].numpy(),
            )
        ]
        assert matches, f"sample {b} is not a crop (+flip) of its padded image"
        seen_flip.update(m[2] for m in matches)
    assert seen_flip == {0, 1}  # both branches occur for this fixed seed (P(all 6 equal) = 1/32 over seeds)


def test_crop_flip_known_image():
    # a single-pixel image: position of the lit pixel reveals the offset and flip
    x = torch.zeros(1, 1, 5, 5, dtype=torch.uint8)
    x[0, 0, 1, 3] = 255
    no_pad = random_crop_flip(x, generator=torch.Generator().manual_seed(0), pad=0, flip=False)
    assert torch.equal(no_pad, x)
    positions = set()
    for s in range(60):
        y = random_crop_flip(x, generator=torch.Generator().manual_seed(s), pad=1, flip=True)
        nz = torch.nonzero(y[0, 0])
        if len(nz):
            r, c = nz[0].tolist()
            positions.add((r, c))
            assert y.sum() == 255
    # rows 1 +- 1; columns 3 +- 1 unflipped or 1 +- 1 flipped (W-1-3 = 1)
    assert positions <= {(r, c) for r in (0, 1, 2) for c in (0, 1, 2, 3, 4)}
    assert any(c in (2, 3, 4) for _, c in positions) and any(c in (0, 1) for _, c in positions)


def test_determinism_per_seed_and_global_rng_untouched():
    x = _images(b=16, h=32, w=32)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = make_views(x, generator=torch.Generator().manual_seed(7))
    b = make_views(x, generator=torch.Generator().manual_seed(7))
    c = make_views(x, generator=torch.Generator().manual_seed(8))
    assert torch.equal(torch.get_rng_state(), before)  # kornia ran inside fork_rng
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


@pytest.mark.parametrize("policy", ["autoaugment", "randaugment"])
def test_strong_view_shape_range_and_cutout(policy):
    x = to_float(_images(b=16, h=32, w=32, seed=1)) * 0.5 + 0.25  # no exact zeros in the input
    y = strong_augment(x, generator=torch.Generator().manual_seed(0), policy=policy, groups=4)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    # Cutout: every image has a 16x16 all-zero square across all channels (>= 256 zero pixels)
    zero_pixels = (y == 0).all(dim=1).flatten(1).sum(1)
    assert bool((zero_pixels >= 256).all())
    assert not torch.equal(y, x)


def test_bad_arguments_named():
    x = _images()
    g = torch.Generator()
    with pytest.raises(ValueError, match="padding_mode"):
        random_crop_flip(x, generator=g, padding_mode="wrap")
    with pytest.raises(ValueError, match="pad"):
        random_crop_flip(x, generator=g, pad=-1)
    with pytest.raises(ValueError, match="generator"):
        random_crop_flip(x, generator=0)
    with pytest.raises(ValueError, match="images"):
        random_crop_flip(x[0], generator=g)
    with pytest.raises(ValueError, match="policy"):
        strong_augment(to_float(x), generator=g, policy="uda")
    with pytest.raises(ValueError, match="backend"):
        strong_augment(to_float(x), generator=g, backend="pil")


# --- the authors' strong view, per sample (torchvision) ----------------------------------------------

from sopdeep.augment import strong_view_per_sample  # noqa: E402


def _one_image_repeated(b=24, seed=5):
    g = torch.Generator().manual_seed(seed)
    img = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8, generator=g)
    return img.expand(b, -1, -1, -1).contiguous()


def test_one_v2_call_on_a_batch_draws_one_op_but_per_sample_draws_differ():
    from torchvision.transforms import v2

    x = _one_image_repeated()
    torch.manual_seed(0)
    batch_call = v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)(x)
    # the pitfall: one call on a batch tensor gives every (identical) image the same op
    assert all(torch.equal(batch_call[0], batch_call[i]) for i in range(len(x)))
    y = strong_view_per_sample(x, generator=torch.Generator().manual_seed(0), pad=0, flip=False, erase="none")
    distinct = {bytes(img.numpy().tobytes()) for img in y}
    # 25 sub-policies of 2 ops each applied with probabilities: 24 independent draws on one image
    # give several different outputs (all equal would need every draw to match)
    assert len(distinct) >= 4


@pytest.mark.parametrize("policy", ["autoaugment", "randaugment"])
@pytest.mark.parametrize("erase", ["cutout", "random_erasing", "none"])
def test_strong_view_is_reproducible_and_leaves_the_global_rng(policy, erase):
    x = _images(b=8, h=32, w=32)
    torch.manual_seed(11)
    before = torch.get_rng_state()
    kw = dict(policy=policy, erase=erase, fill=(125, 123, 114))
    a = strong_view_per_sample(x, generator=torch.Generator().manual_seed(3), **kw)
    b = strong_view_per_sample(x, generator=torch.Generator().manual_seed(3), **kw)
    c = strong_view_per_sample(x, generator=torch.Generator().manual_seed(4), **kw)
    assert torch.equal(torch.get_rng_state(), before)
    assert a.dtype == torch.uint8 and a.shape == x.shape
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_cutout_square_is_centred_anywhere_clipped_and_filled_with_the_mean():
    # a constant image with no policy change visible in the fill colour: find the filled box
    x = torch.full((200, 3, 32, 32), 200, dtype=torch.uint8)
    fill = (125, 123, 114)
    y = strong_view_per_sample(x, generator=torch.Generator().manual_seed(0), policy="randaugment",
                               randaugment_n=0, pad=0, flip=False, erase="cutout", cutout=16, fill=fill)
    box = (y == torch.tensor(fill, dtype=torch.uint8).view(1, 3, 1, 1)).all(dim=1)  # (B, H, W)
    sizes = set()
    for m in box:
        rows, cols = torch.nonzero(m.any(1)).flatten(), torch.nonzero(m.any(0)).flatten()
        assert len(rows) and len(cols)
        # a rectangle: exactly rows x cols, contiguous, of side <= 16 (clipped at the border)
        assert int(m.sum()) == len(rows) * len(cols)
        assert int(rows[-1] - rows[0]) + 1 == len(rows) <= 16 and int(cols[-1] - cols[0]) + 1 == len(cols) <= 16
        # clipped only at the border: a side shorter than 16 touches row/col 0 or 31
        for idx in (rows, cols):
            if len(idx) < 16:
                assert int(idx[0]) == 0 or int(idx[-1]) == 31
        sizes.add((len(rows), len(cols)))
    assert (16, 16) in sizes and any(r < 16 or c < 16 for r, c in sizes)  # both inside and cut by the border
    untouched = ~box
    assert bool((y.permute(1, 0, 2, 3)[:, untouched] == 200).all())


def test_strong_view_handles_grey_images_and_refuses_bad_input():
    g = torch.Generator().manual_seed(0)
    grey = _images(b=4, c=1, h=28, w=28)
    assert strong_view_per_sample(grey, generator=g, cutout=14).shape == grey.shape
    with pytest.raises(ValueError, match="uint8"):
        strong_view_per_sample(grey.float(), generator=g)
    with pytest.raises(ValueError, match="erase"):
        strong_view_per_sample(grey, generator=g, erase="mixup")
    with pytest.raises(ValueError, match="fill"):
        strong_view_per_sample(_images(b=2, h=32, w=32), generator=g, fill=(1, 2))
    with pytest.raises(ValueError, match="cutout"):
        strong_view_per_sample(grey, generator=g, cutout=40)


def test_torchvision_backend_of_strong_augment_draws_per_sample():
    x = to_float(_one_image_repeated())
    y = strong_augment(x, generator=torch.Generator().manual_seed(1), backend="torchvision", cutout=0)
    assert len({bytes(img.numpy().tobytes()) for img in y}) >= 4


def test_given_draws_are_the_generators_draws_and_select_per_sample():
    from sopdeep.augment import crop_flip_draws

    x = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    drawn = random_crop_flip(x, generator=torch.Generator().manual_seed(4), pad=2, padding_mode="reflect")
    draws = crop_flip_draws(6, generator=torch.Generator().manual_seed(4), pad=2)
    assert torch.equal(random_crop_flip(x, pad=2, padding_mode="reflect", draws=draws), drawn)
    # a batch of some samples takes their columns of an epoch's table: image i gets draw i
    pick = torch.tensor([4, 1])
    sub = random_crop_flip(x[pick], pad=2, padding_mode="reflect", draws={k: v[..., pick] for k, v in draws.items()})
    assert torch.equal(sub, drawn[pick])
    with pytest.raises(ValueError, match="draws must hold"):
        random_crop_flip(x, pad=2, draws={k: v[..., :3] for k, v in draws.items()})
    with pytest.raises(ValueError, match="generator"):
        random_crop_flip(x, pad=2)
