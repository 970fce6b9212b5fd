"""The authors' AutoAugment (sopdeep.authors_augment): magnitudes pinned against a table worked out
by hand from their mapper (``data_loader/augmentation_archive.py`` of shengliu66/SOP 4d991ce), ops
checked against numpy, and SOP+'s strong view under ``recipe="authors"`` wired to it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import sopdeep.authors_augment as aa
from sopdeep.augment import strong_view_per_sample
from sopdeep.config import TrainConfig
from sopdeep.datasets import fixed_normalization
from sopdeep.methods import Batch, SOPPlus
from sopdeep.methods.sop_plus import strong_view_settings

#: (op, level) -> magnitude by their mapper: enhance 1.8 * level / 10 + 0.1; translate: level
#: pixels; rotate int(30 level / 10); shear 0.3 level / 10; solarize 256 - int(256 level / 10);
#: posterize 4 - int(4 level / 10); none for Invert / AutoContrast / Equalize.
EXPECTED = {
    ("Contrast", 6): 1.18, ("Contrast", 7): 1.36,
    ("Brightness", 3): 0.64, ("Brightness", 6): 1.18, ("Brightness", 7): 1.36, ("Brightness", 9): 1.72,
    ("Color", 0): 0.1, ("Color", 3): 0.64, ("Color", 6): 1.18, ("Color", 7): 1.36, ("Color", 9): 1.72,
    ("Sharpness", 1): 0.28, ("Sharpness", 3): 0.64, ("Sharpness", 5): 1.0, ("Sharpness", 6): 1.18,
    ("Sharpness", 9): 1.72,
    ("TranslateXAbs", 8): 8, ("TranslateXAbs", 9): 9, ("TranslateYAbs", 3): 3, ("TranslateYAbs", 9): 9,
    ("Rotate", 2): 6, ("ShearY", 7): 0.21, ("ShearY", 8): 0.24,
    ("Solarize", 2): 205, ("Solarize", 3): 180, ("Solarize", 5): 128, ("Solarize", 8): 52,
    ("Posterize2", 7): 2,
    **{(op, level): None for op, level in [("Invert", 7), ("Invert", 3), ("AutoContrast", 8), ("AutoContrast", 0),
                                           ("AutoContrast", 4), ("AutoContrast", 3), ("AutoContrast", 2),
                                           ("AutoContrast", 1), ("Equalize", 0), ("Equalize", 1), ("Equalize", 2),
                                           ("Equalize", 4), ("Equalize", 5), ("Equalize", 6), ("Equalize", 7),
                                           ("Equalize", 8)]},
}
#: the table's decimals against float arithmetic (a product and a sum of doubles)
MAGNITUDE_ATOL = 1e-12


def test_every_op_of_the_policy_has_the_tabled_magnitude():
    used = {(op, level) for sub in aa.POLICY for op, _, level in sub}
    assert used == set(EXPECTED)
    for (op, level), want in EXPECTED.items():
        got = aa.magnitude(op, level)
        if want is None:
            assert got is None, op
        else:
            assert got == pytest.approx(want, abs=MAGNITUDE_ATOL), (op, level)


def test_policy_is_torchvisions_cifar10_list_but_for_one_level():
    from torchvision.transforms import AutoAugment, AutoAugmentPolicy

    theirs = AutoAugment(AutoAugmentPolicy.CIFAR10).policies  # ((op, p, level) pairs), torchvision names
    assert len(theirs) == len(aa.POLICY) == 25
    rename = {"TranslateXAbs": "TranslateX", "TranslateYAbs": "TranslateY", "Posterize2": "Posterize"}
    differing = []
    for i, (ours, tv) in enumerate(zip(aa.POLICY, theirs)):
        for (op, p, level), (tv_op, tv_p, tv_level) in zip(ours, tv):
            assert (rename.get(op, op), p) == (tv_op, tv_p), i
            assert (tv_level is None) == (aa.magnitude(op, level) is None), (i, op)  # ops without magnitude
            if tv_level is not None and level != tv_level:
                differing.append((i, op, level, tv_level))
    assert differing == [(13, "Color", 6, 8)]


def test_bad_op_or_level_is_one_clear_error():
    with pytest.raises(ValueError, match="op must be"):
        aa.magnitude("Cutout", 3)
    with pytest.raises(ValueError, match="level must be"):
        aa.magnitude("Rotate", 10)


def _image(seed=0, side=12):
    return np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)


def test_ops_against_numpy():
    x = _image()
    img = Image.fromarray(x)
    shifted = np.zeros_like(x)
    shifted[:, :-3] = x[:, 3:]  # their affine (1, 0, 3, 0, 1, 0): output (c, r) reads input (c + 3, r)
    np.testing.assert_array_equal(np.asarray(aa._apply(img, "TranslateXAbs", 3.0)), shifted)
    down = np.zeros_like(x)
    down[:-2] = x[2:]
    np.testing.assert_array_equal(np.asarray(aa._apply(img, "TranslateYAbs", 2.0)), down)
    np.testing.assert_array_equal(np.asarray(aa._apply(img, "Solarize", 205)), np.where(x >= 205, 255 - x, x))
    np.testing.assert_array_equal(np.asarray(aa._apply(img, "Posterize2", 2)), x & 0b11000000)
    np.testing.assert_array_equal(np.asarray(aa._apply(img, "Invert", None)), 255 - x)
    # Brightness blends with black: factor * x, PIL's integer rounding (within one grey level)
    bright = np.asarray(aa._apply(img, "Brightness", 0.64)).astype(int)
    assert np.abs(bright - np.clip(0.64 * x, 0, 255)).max() <= 1


def test_geometric_ops_flip_their_sign_half_the_time(monkeypatch):
    monkeypatch.setattr(aa, "POLICY", ((("TranslateXAbs", 1.0, 9), ("Invert", 0.0, 3)),))
    x = torch.from_numpy(_image(1, side=32)).permute(2, 0, 1).unsqueeze(0).repeat(400, 1, 1, 1).contiguous()
    out = aa.authors_autoaugment(x, generator=torch.Generator().manual_seed(0)).numpy()
    left = (out[:, :, :, :-9] == x.numpy()[:, :, :, 9:]).all(axis=(1, 2, 3))
    right = (out[:, :, :, 9:] == x.numpy()[:, :, :, :-9]).all(axis=(1, 2, 3))
    assert (left ^ right).all()  # every image moved by exactly 9 pixels, one way or the other
    # binomial(400, 1/2): 4.5 standard deviations is 45
    assert abs(int(left.sum()) - 200) < 45


def test_draws_come_from_the_generator_only():
    x = torch.from_numpy(np.stack([_image(s, 32) for s in range(16)])).permute(0, 3, 1, 2).contiguous()
    a = aa.authors_autoaugment(x, generator=torch.Generator().manual_seed(3))
    b = aa.authors_autoaugment(x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.dtype == torch.uint8 and a.shape == x.shape
    assert not torch.equal(a, x)  # 16 images: some sub-policy fired
    with pytest.raises(ValueError, match="uint8"):
        aa.authors_autoaugment(x.float(), generator=torch.Generator())


def _authors_config(dataset, **kw):
    return TrainConfig(dataset=dataset, method="sop+", recipe="authors", lr_u=1.0, lr_v=10.0, **kw)


def test_authors_recipe_defaults_to_their_magnitudes_and_cifar100_to_cifar10_constants():
    assert strong_view_settings(_authors_config("cifar100")) == ("autoaugment_authors", "cifar10")
    assert strong_view_settings(_authors_config("cifar10")) == ("autoaugment_authors", "weak")
    assert strong_view_settings(TrainConfig(method="sop+", dataset="cifar100")) == ("autoaugment", "weak")
    explicit = _authors_config("cifar100", strong_policy="autoaugment", strong_stats="weak")
    assert strong_view_settings(explicit) == ("autoaugment", "weak")


def test_cifar100_strong_view_under_authors_is_their_view_with_cifar10_constants():
    g = torch.Generator().manual_seed(2)
    raw = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=g)
    mean100 = torch.tensor([0.507, 0.487, 0.441]) * 255
    normalize = lambda x: (x.float() - mean100.view(1, 3, 1, 1)) / 60.0  # noqa: E731  (the weak view's)
    batch = Batch(indices=torch.arange(6), images=normalize(raw), labels=torch.zeros(6, dtype=torch.long),
                  raw=raw, normalize=normalize, mean=mean100)
    # the per-sample PIL reference (strong_backend="torchvision"; the batched default matches it to one grey level)
    method = SOPPlus(_authors_config("cifar100", strong_backend="torchvision"))
    state = method.generator.get_state()
    strong = method.strong_view(batch)
    mean10, std10 = (torch.tensor(s) * 255 for s in fixed_normalization("cifar10"))
    expected_uint8 = strong_view_per_sample(raw, generator=torch.Generator().set_state(state),
                                            policy="autoaugment_authors", pad=4, cutout=16,
                                            fill=mean10.tolist())
    expected = (expected_uint8.float() - mean10.view(1, 3, 1, 1)) / std10.view(1, 3, 1, 1)
    torch.testing.assert_close(strong, expected, rtol=0, atol=0)
