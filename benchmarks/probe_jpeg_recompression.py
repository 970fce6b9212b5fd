"""Probe: how much accuracy does one JPEG pass like the export's cost the fast recipe? (issue 20)

The CIFAR-10 export in ``../shared/data/cifar10-jpeg`` is JPEG quality 75 with 4:2:0 chroma
subsampling (its quantisation tables are IJG's at quality 75: luma 8, 6, 5, 8, 12, ...); the
original pixels are not here, so the cost of that compression cannot be measured directly.
This probe measures the cost of a *second*, independent pass of the same settings: every image
is reflect-padded by ``SHIFT`` pixels so that the 8x8 blocks and the 2x2 chroma cells fall
across the first pass's, encoded at quality 75 4:2:0, decoded, and cropped back. Part 1 prints
how far that moves the pixels (mean absolute change, in 1/255 units; the export's README gives
about 6/255 for the first pass against the originals) and, for reference, a re-encoding on the
export's own grid. Part 2 (``--train OUT``) trains the ``fast-cifar10`` preset for ``--epochs``
epochs on the twice-compressed images (``dataset="npz"``) and prints its test accuracy (on
twice-compressed test images) beside the ``all_e10`` row of
``experiments/results/fast_recipe_ablation`` (the same recipe on the export).

A second pass removes less than the first (the first already took the finest detail), so its
cost is a rough guide to the first pass's, not a measurement of it. Measured (2026-12-05, this
project's 2-core CPU, one seed): the shifted pass moves pixels by 4.88/255 on average (0.16/255 on
the export's own grid: JPEG at the same settings is nearly idempotent there); 10 epochs on the
twice-compressed images reach 0.8947 test accuracy against 0.9053 on the export, 1.1 points lower
(the 10-epoch one-switch variants spread over 0.9024-0.9064). Not a test (the suite does not run
it). From the repository root::

    python benchmarks/probe_jpeg_recompression.py --cache runs/cache/cifar10_jpeg.npz
    python benchmarks/probe_jpeg_recompression.py --cache runs/cache/cifar10_jpeg.npz --train runs/probe_jpeg_twice_e10
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import numpy as np

#: the export's JPEG settings (read from its files' quantisation tables and sampling factors)
QUALITY, SUBSAMPLING = 75, "4:2:0"
#: pixels of reflect padding before the second pass: odd, so neither the 8x8 blocks nor the 2x2
#: chroma cells line up with the first pass's
SHIFT = 3


def recompress(images: np.ndarray, shift: int = SHIFT, quality: int = QUALITY) -> np.ndarray:
    """One JPEG pass over uint8 images (N, H, W, 3) on a grid shifted by ``shift`` pixels.

    Each image is reflect-padded by ``shift`` on the top and left (and enough on the bottom and
    right to reach a multiple of 16), encoded with Pillow at ``quality`` and 4:2:0, decoded and
    cropped back to (H, W).

    >>> x = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    >>> recompress(x).shape
    (2, 32, 32, 3)
    """
    from PIL import Image

    n, h, w, _ = images.shape
    pad_h, pad_w = (-(h + shift)) % 16, (-(w + shift)) % 16
    out = np.empty_like(images)
    for i in range(n):
        padded = np.pad(images[i], ((shift, pad_h), (shift, pad_w), (0, 0)), mode="reflect")
        buf = io.BytesIO()
        Image.fromarray(padded).save(buf, format="JPEG", quality=quality, subsampling=SUBSAMPLING)
        decoded = np.asarray(Image.open(buf).convert("RGB"))
        out[i] = decoded[shift:shift + h, shift:shift + w]
    return out


def mean_abs_change(a: np.ndarray, b: np.ndarray) -> float:
    """Mean |a - b| over every pixel and channel, in 1/255 units (uint8 images)."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def twice_compressed(cache: str, out_npz: Path) -> dict:
    """Write (once) the twice-compressed train and test sets to ``out_npz``; the pixel changes."""
    from sopcommon import atomic_path

    data = np.load(cache)
    x_train, x_test = data["x_train"], data["x_test"]
    same_grid = recompress(x_train[:2000], shift=0)
    if out_npz.is_file():
        twice = np.load(out_npz)
        new_train, new_test = twice["x_train"], twice["x_test"]
    else:
        new_train, new_test = recompress(x_train), recompress(x_test)
        out_npz.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out_npz, suffix=".tmp.npz") as tmp:
            np.savez(tmp, x_train=new_train, y_train=data["y_train"], x_test=new_test, y_test=data["y_test"])
    return {"change_shifted_pass": mean_abs_change(new_train, x_train),
            "change_same_grid_pass": mean_abs_change(same_grid, x_train[:2000])}


def train_twice_compressed(npz: Path, out: str, epochs: int) -> dict:
    """The fast-cifar10 preset on the twice-compressed images (a resumable run folder ``out``)."""
    from sopdeep.config import TrainConfig
    from sopdeep.presets import PRESETS
    from sopdeep.training import train

    settings = {**PRESETS["fast-cifar10"], "dataset": "npz", "data_root": str(npz), "out": out, "epochs": epochs,
                "progress": False}
    folder = Path(out)
    if (folder / "summary.json").exists():
        return json.loads((folder / "summary.json").read_text())
    return train(TrainConfig(**settings), resume=(folder / "checkpoint.pt").exists()).summary


def export_accuracy(epochs: int, table: Path = Path("experiments/results/fast_recipe_ablation/results.csv")):
    """Test accuracy of the preset at ``epochs`` on the export (the ablation table's ``all_e<epochs>`` row)."""
    if not table.is_file():
        return None
    with open(table, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["variant"] == f"all_e{epochs}"]
    return float(rows[0]["final_test_acc"]) if rows else None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="the accuracy cost of a second JPEG pass like the CIFAR-10 export's")
    p.add_argument("--cache", required=True, help="the decoded CIFAR-10 JPEG npz (x_train, ...)")
    p.add_argument("--twice", default=None, help="where the twice-compressed npz goes (default: beside --cache)")
    p.add_argument("--train", metavar="OUT", default=None, help="also train the preset on it into OUT")
    p.add_argument("--epochs", type=int, default=10)
    args = p.parse_args(argv)
    if not Path(args.cache).is_file():
        p.error(f"--cache {args.cache}: no such file (decode the export first: python "
                "../shared/data/cifar10-jpeg/decode.py runs/cache/cifar10_jpeg.npz)")
    if args.epochs < 1:
        p.error("--epochs must be >= 1")
    twice = Path(args.twice) if args.twice else Path(args.cache).with_name("cifar10_jpeg_twice.npz")
    changes = twice_compressed(args.cache, twice)
    print(f"mean absolute pixel change of the second pass (grid shifted by {SHIFT}): "
          f"{changes['change_shifted_pass']:.2f}/255; on the export's own grid: {changes['change_same_grid_pass']:.2f}/255")
    if args.train:
        summary = train_twice_compressed(twice, args.train, args.epochs)
        once = export_accuracy(args.epochs)
        print(json.dumps({"final_test_acc_twice": summary.get("final_test_acc"), "final_test_acc_export": once,
                          "train_time_s": summary.get("train_time_s"), **changes}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
