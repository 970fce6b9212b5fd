"""SOPLoss in a user's own loop under SGD and AdamW: does SOP still keep the network off the wrong labels?

The setting of issue 32's report, as a new user writes it: a plain ``DataLoader`` loop over a
Dataset returning ``(image, label, index)``, a small CNN, the first 10,000 Fashion-MNIST training
images with 50 % symmetric noise, a cosine schedule, 30 epochs; CE against SOPLoss, each under SGD
(lr 0.05, momentum 0.9) and AdamW (lr 1e-3). SOPLoss's u, v step with ``criterion.step(optimizer=opt)``
(their own rate under AdamW, :meth:`sopdeep.SOPLoss.uv_rate`); ``--uv-step lr`` reproduces the
report's loop, ``criterion.step(lr=optimizer's lr)``, which leaves u, v frozen under AdamW.

Writes ``results.csv`` and ``results.md`` into ``--out`` (per run: final test accuracy, accuracy on
the given labels, the fraction of the wrong labels the network predicts, max |u|, wall time).

Usage (from the repository root)::

    python experiments/sop_loss_optimizers.py --data-root ../shared/data/fashion-mnist \
        --out experiments/results/sop_loss_optimizers
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from sopcommon import atomic_write_bytes  # noqa: E402
from sopcommon.cli import fail  # noqa: E402
from sopdeep import SOPLoss, load_dataset, make_noisy_labels  # noqa: E402

RUNS = (("ce", "sgd"), ("sop", "sgd"), ("ce", "adamw"), ("sop", "adamw"))


class IndexedImages(torch.utils.data.Dataset):
    """(image, label, index): what a loop with per-sample u, v needs."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i], self.labels[i], i


def small_cnn(num_classes: int = 10) -> torch.nn.Module:
    """Two conv layers (32, 64 channels) and a linear head: ~100k parameters for 28x28 images."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(64 * 7 * 7, num_classes))


def run(loss: str, optimizer: str, data, *, epochs: int, uv_step: str, seed: int) -> dict:
    """Train one (loss, optimizer) pair in a plain loop; the row of results."""
    x, y, is_noisy, x_test, y_test = data
    torch.manual_seed(seed)
    model = small_cnn()
    opt = (torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4) if optimizer == "sgd"
           else torch.optim.AdamW(model.parameters(), lr=1e-3))
    loader = torch.utils.data.DataLoader(IndexedImages(x, y), batch_size=128, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * len(loader))
    criterion = SOPLoss(len(y), 10, seed=seed) if loss == "sop" else torch.nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for epoch in range(epochs):
            model.train()
            for images, labels, idx in loader:
                logits = model(images)
                value = criterion(logits, labels, idx) if loss == "sop" else criterion(logits, labels)
                opt.zero_grad()
                value.backward()
                opt.step()
                if loss == "sop":  # u, v step after theta's
                    if uv_step == "optimizer":
                        criterion.step(optimizer=opt)
                    else:
                        criterion.step(lr=opt.param_groups[0]["lr"])
                schedule.step()
            print(f"{loss}/{optimizer} epoch {epoch + 1}/{epochs}  {time.perf_counter() - t0:.0f} s",
                  file=sys.stderr, flush=True)
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + 1000]).argmax(1) for i in range(0, len(y), 1000)])
        test = torch.cat([model(x_test[i:i + 1000]).argmax(1) for i in range(0, len(y_test), 1000)])
    return {
        "loss": loss, "optimizer": optimizer, "uv_step": uv_step if loss == "sop" else "",
        "final_test_acc": round(float((test == y_test).float().mean()), 4),
        "train_acc_given_labels": round(float((pred == y).float().mean()), 4),
        "wrong_labels_fitted": round(float((pred[is_noisy] == y[is_noisy]).float().mean()), 4),
        "max_abs_u": f"{float(criterion.u.abs().max()):.3g}" if loss == "sop" else "",
        "frozen_warning": any("plain cross-entropy" in str(w.message) for w in caught),
        "wall_s": round(time.perf_counter() - t0, 1),
    }


def load(data_root: str, subset: int, rate: float, seed: int):
    """The first ``subset`` training images with symmetric noise at ``rate``, and the test set."""
    ds = load_dataset("fashion-mnist", data_root)
    noisy = make_noisy_labels(ds.y_train[:subset], "sym", rate, num_classes=10, random_state=seed)

    def images(a):  # uint8 NHWC -> float NCHW in [-1, 1]
        return torch.tensor(a, dtype=torch.float32).permute(0, 3, 1, 2).div(127.5) - 1.0

    return (images(ds.x_train[:subset]), torch.tensor(noisy.noisy_labels), torch.tensor(noisy.is_noisy),
            images(ds.x_test), torch.tensor(ds.y_test))


def write(out: Path, rows: list[dict], args) -> None:
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(out / "results.csv", buf.getvalue().encode())
    lines = [f"# SOPLoss in a plain loop: Fashion-MNIST, first {args.subset} images, {args.noise_rate:.0%} symmetric "
             f"noise, small CNN, {args.epochs} epochs, cosine, seed {args.seed}", "",
             "| loss | optimizer | u, v step | final test | acc. on given labels | wrong labels fitted | max abs u |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['loss']} | {r['optimizer']} | {r['uv_step'] or '-'} | {r['final_test_acc']:.3f} | "
              f"{r['train_acc_given_labels']:.3f} | {r['wrong_labels_fitted']:.3f} | {r['max_abs_u'] or '-'} |"
              for r in rows]
    lines += ["", f"Command: `python experiments/sop_loss_optimizers.py --data-root DATA --epochs {args.epochs} "
              f"--uv-step {args.uv_step}`"]
    atomic_write_bytes(out / "results.md", ("\n".join(lines) + "\n").encode())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", required=True, help="folder with the four Fashion-MNIST idx files")
    p.add_argument("--out", default="runs/sop_loss_optimizers")
    p.add_argument("--subset", type=int, default=10000)
    p.add_argument("--noise-rate", type=float, default=0.5)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--uv-step", choices=("optimizer", "lr"), default="optimizer",
                   help="SOPLoss.step(optimizer=opt) or step(lr=theta's lr) (the report's loop)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if args.epochs < 1 or args.subset < 1:
        fail("sop_loss_optimizers", "--epochs and --subset must be >= 1")
        return 2
    torch.set_num_threads(args.threads)
    try:
        data = load(args.data_root, args.subset, args.noise_rate, args.seed)
    except (OSError, ValueError) as exc:
        fail("sop_loss_optimizers", f"cannot read Fashion-MNIST from {args.data_root}: {exc}")
        return 2
    rows = []
    for loss, optimizer in RUNS:
        rows.append(run(loss, optimizer, data, epochs=args.epochs, uv_step=args.uv_step, seed=args.seed))
        write(Path(args.out), rows, args)  # after every run: nothing lost on interruption
    print((Path(args.out) / "results.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
