"""SOP+'s batched strong view has the distribution of the per-sample reference (issue 33, part 1).

The batched view (:func:`sopdeep.augment.strong_view_batched`) = the per-sample draws made at once
(:func:`~sopdeep.augment.strong_view_draws`) + each op applied to the whole batch with per-sample
parameters. It has the reference's distribution if (1) the draws have the reference's distribution
(per-op frequencies and magnitudes, crop offsets, flips, Cutout sizes) and (2) given the draws,
each image comes out as the reference's ops would make it. (1) is checked against the exact
probabilities of the policy tables, written here from the tables themselves, and against what
the reference actually applies (its op calls recorded); (2) op by op against torchvision's kernels
(and the authors' PIL ops), and for whole views against the reference chain run per image.

Chi-square tests use fixed seeds, so each is deterministic; the threshold p > 1e-4 means a correct
sampler fails with probability 1e-4 over seeds, while a wrong frequency of 1 % of the mass is
detected at these sample sizes (200,000 draws: a shift of 0.01 in a cell of probability 0.05 is
~20 standard errors).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from sopdeep.augment import (POLICY_OPS, StrongViewDraws, _apply_slot, _authors_op, _compile, _cutout,
                             _grid_constants, cutout_mask, decode_draws, policy_table, random_crop_flip, strong_view_batched,
                             strong_view_draws, strong_view_per_sample)

P_MIN = 1e-4  # chi-square / binomial p-value below which a test fails (module docstring)
OP_ID = {name: i for i, name in enumerate(POLICY_OPS)}


def _images(n=96, size=32, seed=0):
    """Random images, a third low-contrast and a third smooth (autocontrast, equalize, blends see
    other histograms)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    x[: n // 3] = x[: n // 3] // 4 + 60
    x[n // 3: 2 * n // 3] = torch.nn.functional.avg_pool2d(x[n // 3: 2 * n // 3].float(), 5, 1, 2).to(torch.uint8)
    return x


def _tv_magnitude(name, argument):
    """The magnitude torchvision's op takes, from the draws' argument (inverse of the table's conversion)."""
    if name in ("Brightness", "Color", "Contrast", "Sharpness"):
        return float(np.sign(argument) * (abs(argument) - 1.0))
    if name == "Solarize":
        return argument / 255.0
    return float(argument)


def _tv_apply(img, name, argument):
    from torchvision.transforms import v2

    aug = v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)
    return aug._apply_image_or_video_transform(img, name, _tv_magnitude(name, argument), interpolation=aug.interpolation,
                                               fill=aug._fill)


def _run_op(x, name, argument, policy="autoaugment"):
    base, blur = _grid_constants(x.shape[-2], x.shape[-1], "cpu")
    ops = torch.full((x.shape[0], 1), OP_ID[name])
    args = torch.full((x.shape[0], 1), float(argument), dtype=torch.float64)
    return _apply_slot(x.float(), _compile(ops, args, policy, *x.shape[-2:]).float()[:, 0], base, blur).to(torch.uint8)


# ------------------------------------------------------------------------------------------------
# (2) given the draws, the reference's output


TV_CASES = [("ShearX", a) for a in (0.3, -0.1)] + [("ShearY", a) for a in (0.3, -0.2)] + \
    [("TranslateX", a) for a in (14.0, -3.0)] + [("TranslateY", a) for a in (-14.0, 5.0)] + \
    [("Rotate", a) for a in (30.0, -13.333333)] + \
    [(op, a) for op in ("Brightness", "Color", "Contrast", "Sharpness") for a in (1.9, -1.9, 1.3, -1.1)] + \
    [("Posterize", a) for a in (4.0, 7.0, 2.0)] + [("Solarize", a) for a in (198.33, 56.7)] + \
    [("AutoContrast", 0.0), ("Equalize", 0.0), ("Invert", 0.0)]


@pytest.mark.parametrize("name, argument", TV_CASES)
def test_each_op_matches_torchvision_kernel(name, argument):
    x = _images()
    got = _run_op(x, name, argument)
    ref = torch.stack([_tv_apply(img, name, argument) for img in x])
    diff = (got.int() - ref.int()).abs()
    # the same float operations in the same order as torchvision's kernels: equal on this CPU; a
    # vectorised kernel elsewhere may round one float ulp differently, which the uint8 truncation
    # turns into one grey level at most, on a few pixels
    assert int(diff.max()) <= 1 and float((diff > 0).float().mean()) <= 1e-3, (int(diff.max()), float((diff > 0).float().mean()))


def test_authors_ops_match_pil_within_one_level():
    """The batched ops at the authors' magnitudes against their PIL ops (the authors' reference):
    geometric, posterize, solarize, invert and equalize exactly; PIL's enhance ops and autocontrast
    round with integer arithmetic where torchvision's kernels truncate floats: one grey level at most."""
    from sopdeep.authors_augment import SIGNED_OPS, POLICY, _apply, magnitude

    x = _images(48)
    seen = set()
    for sub in POLICY:
        for op, _, level in sub:
            for sign in ((1, -1) if op in SIGNED_OPS else (1,)):
                if (op, level, sign) in seen:
                    continue
                seen.add((op, level, sign))
                mag = magnitude(op, level)
                m = None if mag is None else mag * sign
                name = _authors_op(op)
                # PIL's affine reads input x + m: torchvision's translate by -m
                arg = 0.0 if m is None else (-float(m) if name in ("TranslateX", "TranslateY") else float(m))
                got = _run_op(x, name, arg, policy="autoaugment_authors")
                ref = torch.stack([torch.from_numpy(np.asarray(_apply(Image.fromarray(img.permute(1, 2, 0).numpy()),
                                                                      op, m))).permute(2, 0, 1) for img in x])
                diff = (got.int() - ref.int()).abs()
                exact = name not in ("Color", "Contrast", "Sharpness", "Brightness", "AutoContrast")
                assert int(diff.max()) <= (0 if exact else 1), (op, level, sign, int(diff.max()))


@pytest.mark.parametrize("policy", ["autoaugment", "randaugment"])
def test_whole_view_equals_the_reference_chain_given_the_draws(policy):
    """Policy ops in order, then crop + flip, then Cutout, per image with the decoded draws, as
    strong_view_per_sample chains them (grey images: replicated, averaged back)."""
    for channels in (3, 1):
        x = _images(40)[:, :channels]
        fill = torch.tensor([125, 122, 113][:channels], dtype=torch.uint8)
        params = strong_view_draws(40, generator=torch.Generator().manual_seed(3), image_size=(32, 32), policy=policy,
                                   pad=4, cutout=16)
        got = strong_view_batched(x, params, pad=4, cutout=16, fill=fill)
        d = decode_draws(params)
        # the table's exact argument (decode reads a float32 copy): the nearest of the op's candidates
        table = policy_table(policy, image_size=(32, 32))["rows"]
        cands = [c for row in table for c in (row if isinstance(row[0], tuple) else (row,))]
        snap = lambda name, a: min((sg * c[2] for c in cands if c[0] == name for sg in (1, -1)),  # noqa: E731
                                   key=lambda v: abs(v - a))
        for i in range(40):
            img = x[i].expand(3, -1, -1)
            for s in range(d["op"].shape[1]):
                op = int(d["op"][i, s])
                if op:
                    name = POLICY_OPS[op]
                    img = _tv_apply(img, name, snap(name, float(d["argument"][i, s])))
            if channels == 1:
                img = img.float().mean(0, keepdim=True).round().to(torch.uint8)
            img = random_crop_flip(img[None], pad=4, draws={"offsets": d["offsets"][:, i:i + 1],
                                                            "coins": d["coins"][i:i + 1]})
            mask = cutout_mask(d["centre"][0, i:i + 1], d["centre"][1, i:i + 1], 16, (32, 32))
            img = torch.where(mask, fill.view(1, -1, 1, 1), img)[0]
            diff = (got[i].int() - img.int()).abs()
            assert int(diff.max()) <= 1 and float((diff > 0).float().mean()) <= 1e-3, (i, policy, channels)


# ------------------------------------------------------------------------------------------------
# (1) the draws' distribution


def _expected(policy):
    """{(slot, op name, argument rounded): probability} of one sample's draws, from the tables."""
    from torchvision.transforms import v2

    exp: dict = {}

    def add(key, p):
        exp[key] = exp.get(key, 0.0) + p

    if policy == "autoaugment":
        aug = v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)
        for sub in aug._policies:
            for slot, (name, prob, idx) in enumerate(sub):
                fn, signed = aug._AUGMENTATION_SPACE[name]
                mags = fn(10, 32, 32)
                m = 0.0 if mags is None else float(mags[idx])
                arg = {"Brightness": 1 + m, "Color": 1 + m, "Contrast": 1 + m, "Sharpness": 1 + m,
                       "TranslateX": float(int(m)), "TranslateY": float(int(m)), "Posterize": float(int(m)),
                       "Solarize": 255 * m}.get(name, m)
                share = prob / 25.0
                if signed:  # each sign half of the time
                    add((slot, name, round(arg, 3)), share / 2)
                    add((slot, name, round(-arg, 3)), share / 2)
                else:
                    add((slot, name, round(arg, 3)), share)
                add((slot, "Identity", 0.0), (1 - prob) / 25.0)
    elif policy == "autoaugment_authors":
        from sopdeep.authors_augment import SIGNED_OPS, POLICY, magnitude

        for sub in POLICY:
            for slot, (op, prob, level) in enumerate(sub):
                name = _authors_op(op)
                arg = float(magnitude(op, level) or 0.0)
                if name in ("TranslateX", "TranslateY"):
                    arg = -arg
                share = prob / 25.0
                if op in SIGNED_OPS:
                    add((slot, name, round(arg, 3)), share / 2)
                    add((slot, name, round(-arg, 3)), share / 2)
                else:
                    add((slot, name, round(arg, 3)), share)
                add((slot, "Identity", 0.0), (1 - prob) / 25.0)
    return exp


def _observed(params):
    d = decode_draws(params)
    obs: dict = {}
    for slot in range(d["op"].shape[1]):
        keys = zip(d["op"][:, slot].tolist(), d["argument"][:, slot].tolist())
        for op, arg in keys:
            key = (slot, POLICY_OPS[op], round(arg, 3) if op else 0.0)
            obs[key] = obs.get(key, 0) + 1
    return obs


def _chi_square(obs, exp, n):
    """Goodness of fit of the counts ``obs`` to the probabilities ``exp`` (per slot, summed): p-value.
    Zero-probability cells merged away; a draw outside the table's support fails at once."""
    assert set(obs) <= {k for k, p in exp.items() if p > 0}, set(obs) - set(exp)
    slots = sorted({k[0] for k in exp})
    chi, dof = 0.0, 0
    for slot in slots:
        keys = [k for k in exp if k[0] == slot and exp[k] > 0]
        o = np.array([obs.get(k, 0) for k in keys], dtype=float)
        e = np.array([exp[k] for k in keys]) * n
        chi += float(((o - e) ** 2 / e).sum())
        dof += len(keys) - 1
    return float(stats.chi2.sf(chi, dof))


@pytest.mark.parametrize("policy", ["autoaugment", "autoaugment_authors"])
def test_draws_follow_the_policy_table(policy):
    n = 200_000
    params = strong_view_draws(n, generator=torch.Generator().manual_seed(11), image_size=(32, 32), policy=policy)
    exp = _expected(policy)
    # every slot's probabilities sum to 1: the expectation itself is a distribution
    for slot in (0, 1):
        assert abs(sum(p for k, p in exp.items() if k[0] == slot) - 1.0) < 1e-9
    assert _chi_square(_observed(params), exp, n) > P_MIN


def test_randaugment_draws_uniform_ops_fixed_magnitude():
    n, slots = 60_000, 2
    params = strong_view_draws(n, generator=torch.Generator().manual_seed(5), image_size=(32, 32),
                               policy="randaugment", randaugment_n=slots, randaugment_m=9)
    d = decode_draws(params)
    counts = torch.bincount(d["op"].flatten(), minlength=len(POLICY_OPS)).numpy()
    # torchvision's RandAugment space: 14 ops (all but Invert), uniformly, every slot applied
    assert counts[OP_ID["Invert"]] == 0
    assert stats.chisquare(np.delete(counts, OP_ID["Invert"])).pvalue > P_MIN
    rot = d["argument"][d["op"] == OP_ID["Rotate"]].abs()
    assert torch.allclose(rot, torch.full_like(rot, 30.0 * 9 / 30))  # bin 9 of linspace(0, 30, 31)
    signs = (d["argument"][d["op"] == OP_ID["Rotate"]] > 0).sum().item()
    assert stats.binomtest(signs, rot.numel()).pvalue > P_MIN


def _recorded_reference(policy, n):
    """(slot, op, argument) of every op the per-sample reference applies to ``n`` images, recorded
    at its op calls (slot: position in the image's chain; skipped ops recorded as Identity)."""
    import sopdeep.authors_augment as aa
    from torchvision.transforms import v2

    calls = []
    x = torch.zeros(n, 3, 8, 8, dtype=torch.uint8)
    if policy == "autoaugment_authors":
        original = aa._apply

        def spy(img, op, mag):
            calls.append((op, mag))
            return original(img, op, mag)

        aa._apply = spy
        try:
            aa.authors_autoaugment(x, generator=torch.Generator().manual_seed(2))
        finally:
            aa._apply = original
        return calls
    original = v2.AutoAugment._apply_image_or_video_transform

    def spy_tv(self, image, name, magnitude, **kwargs):
        calls.append((name, magnitude))
        return original(self, image, name, magnitude, **kwargs)

    v2.AutoAugment._apply_image_or_video_transform = spy_tv
    try:
        strong_view_per_sample(x, generator=torch.Generator().manual_seed(2), policy=policy, pad=1, cutout=4)
    finally:
        v2.AutoAugment._apply_image_or_video_transform = original
    return calls


@pytest.mark.parametrize("policy", ["autoaugment", "autoaugment_authors"])
def test_reference_applies_the_same_op_frequencies(policy):
    """What the reference does (its op calls on 8x8 images, 4,000 of them) against the same
    table-derived probabilities the batched draws are tested on: both samplers realise one law."""
    n = 4000
    calls = _recorded_reference(policy, n)
    exp = _expected(policy)
    # ops applied, by name, over both slots: expected count n * sum of the probabilities
    names = sorted({k[1] for k in exp if k[1] != "Identity"})
    o = np.array([sum(1 for c in calls if _authors_op(c[0]) == name) for name in names], dtype=float)
    e = np.array([sum(p for k, p in exp.items() if k[1] == name) for name in names]) * n
    applied = sum(p for k, p in exp.items() if k[1] != "Identity") * n
    chi = float(((o - e) ** 2 / e).sum()) + (len(calls) - o.sum()) ** 2 / max(applied, 1)
    assert stats.chi2.sf(chi, len(names)) > P_MIN, dict(zip(names, zip(o, e)))
    assert len(calls) == o.sum()  # no op outside the table


def test_crop_flip_and_cutout_draws_are_uniform():
    n, pad, size = 100_000, 4, 32
    d = decode_draws(strong_view_draws(n, generator=torch.Generator().manual_seed(7), image_size=(size, size),
                                       pad=pad))
    for row in d["offsets"]:
        assert stats.chisquare(torch.bincount(row, minlength=2 * pad + 1).numpy()).pvalue > P_MIN
    assert stats.binomtest(int(d["coins"].sum()), n).pvalue > P_MIN
    for row in d["centre"]:
        assert stats.chisquare(torch.bincount(row, minlength=size).numpy()).pvalue > P_MIN


def test_cutout_sizes_match_the_reference():
    """Erased area per image: the batched mask from the draws' centres and the reference's _cutout,
    both against the exact law (centre uniform on the 32x32 grid, the 16x16 square clipped)."""
    size, side, n = 32, 16, 20_000
    half = side // 2
    exact: dict = {}
    for cy in range(size):
        for cx in range(size):
            area = (min(cy + half, size) - max(cy - half, 0)) * (min(cx + half, size) - max(cx - half, 0))
            exact[area] = exact.get(area, 0) + 1 / size ** 2
    areas = sorted(exact)
    d = decode_draws(strong_view_draws(n, generator=torch.Generator().manual_seed(9), image_size=(size, size)))
    batched = cutout_mask(d["centre"][0], d["centre"][1], side, (size, size)).sum((1, 2, 3))
    ones = torch.full((n, 1, size, size), 255, dtype=torch.uint8)
    reference = (_cutout(ones, side, torch.zeros(1), torch.Generator().manual_seed(9)) == 0).sum((1, 2, 3))
    for got in (batched, reference):
        counts = np.array([(got == a).sum().item() for a in areas], dtype=float)
        assert counts.sum() == n  # no area outside the exact law's support
        assert stats.chisquare(counts, np.array([exact[a] for a in areas]) * n).pvalue > P_MIN


def test_pass_draws_resume_to_the_same_table():
    gen = torch.Generator().manual_seed(0)
    pool = StrongViewDraws(gen, policy="autoaugment", pad=1, cutout=4)
    idx = torch.tensor([3, 0, 7])
    first = pool.rows(idx, 10, (8, 8)).clone()
    pool.next_pass()
    saved, second = pool.state_dict(), pool.rows(idx, 10, (8, 8)).clone()
    assert not torch.equal(first, second)  # a new pass, new draws
    pool.next_pass()
    third = pool.rows(idx, 10, (8, 8)).clone()
    resumed = StrongViewDraws(torch.Generator().manual_seed(123), policy="autoaugment", pad=1, cutout=4)
    resumed.load_state_dict(saved)
    assert torch.equal(resumed.rows(idx, 10, (8, 8)), second)  # the interrupted pass's table
    resumed.next_pass()
    assert torch.equal(resumed.rows(idx, 10, (8, 8)), third)  # and the same stream after it


def test_bad_inputs_name_the_parameter():
    gen = torch.Generator()
    with pytest.raises(ValueError, match="policy must be one of"):
        strong_view_draws(4, generator=gen, image_size=(8, 8), policy="trivial")
    with pytest.raises(ValueError, match="n must be a positive integer"):
        strong_view_draws(0, generator=gen, image_size=(8, 8))
    params = strong_view_draws(4, generator=gen, image_size=(8, 8), pad=1, cutout=4)
    with pytest.raises(ValueError, match="params must be the images' rows"):
        strong_view_batched(torch.zeros(3, 3, 8, 8, dtype=torch.uint8), params, pad=1, cutout=4)
    with pytest.raises(ValueError, match="images must be uint8"):
        strong_view_batched(torch.zeros(4, 3, 8, 8), params, pad=1, cutout=4)
