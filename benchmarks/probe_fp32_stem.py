"""Probe: does bf16 rounding in the fast net's whitening stem cost accuracy? (issue 20)

The stem ``W x`` scales each patch direction by ``1 / sqrt(eigenvalue + eps)``; its last filters
are differences of neighbouring pixels amplified about 45x, so rounding the standardised input to
bf16 (8 significant bits) before the convolution, as autocast does, perturbs exactly those
outputs. Part 1 prints, for real CIFAR-10 images, the relative RMS error of each whitened channel
under bf16 autocast against a float64 reference. Part 2 (``--train OUT``) trains the
``fast-cifar10`` preset for ``--epochs`` epochs with the stem outside autocast (fp32 convolution
and GELU, the rest bf16), for comparison with the ``all_e10`` row of
``experiments/results/fast_recipe_ablation`` (the same run with the stem in bf16).

The fp32 stem is a probe, not a switch of the package: part 2 replaces ``FastNet.forward`` in this
process only. Measured (2026-12-04, this project's 2-core CPU): channel errors from 0.2 % (first
channels) to 11-13 % (last two); 10 epochs with the fp32 stem 0.9071 test accuracy against 0.9053
with the bf16 stem, within a seed's spread, at about 10 % more time per step. Not a test (the suite
does not run it). From the repository root::

    python benchmarks/probe_fp32_stem.py --cache runs/cache/cifar10_jpeg.npz
    python benchmarks/probe_fp32_stem.py --cache runs/cache/cifar10_jpeg.npz --train runs/probe_fp32stem_e10
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
import torch.nn.functional as F

from sopdeep import fast_net


def stem_errors(x_train: np.ndarray, n_whiten: int = 5000, n_check: int = 512) -> np.ndarray:
    """Relative RMS error per whitened channel of the stem under bf16 autocast (float64 reference)."""
    x = torch.tensor(x_train[:n_whiten]).permute(0, 3, 1, 2).float() / 255
    x = (x - x.mean((0, 2, 3), keepdim=True)) / x.std((0, 2, 3), keepdim=True)
    net = fast_net.FastNet(10)
    fast_net.init_whitening(net, x)
    with torch.no_grad():
        reference = F.conv2d(x[:n_check].double(), net.whiten.weight.double())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            rounded = net.whiten(x[:n_check]).double() - net.whiten.bias.double()[None, :, None, None]
    rms = lambda t: t.pow(2).mean((0, 2, 3)).sqrt()  # noqa: E731
    return (rms(rounded - reference) / rms(reference)).numpy()


def _forward_fp32_stem(self, x):
    with torch.autocast(x.device.type, enabled=False):  # the stem in fp32; the groups stay in autocast
        x = F.gelu(self.whiten(x.float()))
    return self.linear(torch.amax(self.groups(x), dim=(2, 3))) * self.logit_scale


def train_fp32_stem(cache: str, data_root: str, out: str, epochs: int) -> dict:
    """The fast-cifar10 preset with the stem in fp32 (a resumable run folder ``out``); its summary."""
    from sopdeep.config import TrainConfig
    from sopdeep.presets import PRESETS
    from sopdeep.training import train

    fast_net.FastNet.forward = _forward_fp32_stem
    settings = {**PRESETS["fast-cifar10"], "dataset": "cifar10-jpeg", "data_root": data_root,
                "cache_path": cache, "out": out, "epochs": epochs, "progress": False}
    return train(TrainConfig(**settings)).summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="bf16 rounding in the fast net's whitening stem: error and accuracy")
    p.add_argument("--cache", required=True, help="the decoded CIFAR-10 JPEG npz (x_train, ...)")
    p.add_argument("--data-root", default="../shared/data/cifar10-jpeg")
    p.add_argument("--train", metavar="OUT", default=None, help="also train the preset with an fp32 stem into OUT")
    p.add_argument("--epochs", type=int, default=10)
    args = p.parse_args(argv)
    errors = stem_errors(np.load(args.cache)["x_train"])
    print("relative RMS error per whitened channel (bf16 autocast), largest eigenvalue first:")
    print("  " + " ".join(f"{e:.3f}" for e in errors[:len(errors) // 2]), "(the other half: their negatives)")
    if args.train:
        summary = train_fp32_stem(args.cache, args.data_root, args.train, args.epochs)
        print(json.dumps({k: summary.get(k) for k in ("final_test_acc", "train_time_s", "wall_time_s")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
