"""Command line: ``sop-train`` / ``python -m sopdeep``.

Example::

    sop-train --dataset cifar10 --data-root ../shared/data --noise sym --noise-rate 0.4 \\
        --method sop --arch preact18 --epochs 120 --out runs/x [--resume] [--set key=value ...]

Precedence: defaults < ``--preset`` < named flags < ``--set key=value`` (values parsed as JSON,
e.g. ``--set milestones=[40,80]``). Every key of :class:`sopdeep.config.TrainConfig` can be set.
"""

from __future__ import annotations

import argparse
import json
import sys

from sopdeep.config import PRESETS, TrainConfig

__all__ = ["main", "build_parser", "config_from_args"]

# named flags: (flag, config key, type)
_FLAGS = (
    ("--dataset", "dataset", str), ("--data-root", "data_root", str), ("--noise", "noise", str),
    ("--noise-rate", "noise_rate", float), ("--noise-seed", "noise_seed", int),
    ("--method", "method", str), ("--arch", "arch", str), ("--epochs", "epochs", int),
    ("--batch-size", "batch_size", int), ("--lr", "lr", float), ("--seed", "seed", int),
    ("--device", "device", str), ("--out", "out", str),
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sop-train", description="Train CE or SOP on noisy labels.")
    for flag, key, typ in _FLAGS:
        p.add_argument(flag, dest=key, type=typ, default=None, help=f"config key {key}")
    p.add_argument("--preset", default=None, help=f"named override set, one of {sorted(PRESETS)}")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="any config key (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--list-presets", action="store_true", help="print the presets and exit")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    config = TrainConfig()
    if args.preset is not None:
        if args.preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {args.preset!r}")
        config = config.replace(**PRESETS[args.preset])
    named = {key: getattr(args, key) for _, key, _ in _FLAGS if getattr(args, key) is not None}
    if args.no_progress:
        named["progress"] = False
    config = config.replace(**named)
    return TrainConfig.from_overrides(args.overrides, base=config)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_presets:
        for name, overrides in sorted(PRESETS.items()):
            print(f"{name}: {json.dumps(overrides)}")
        from sopdeep.presets import REFERENCE_ONLY  # Table A.1 columns this package cannot run

        for name, overrides in sorted(REFERENCE_ONLY.items()):
            print(f"{name} (not runnable): {json.dumps(overrides)}")
        return 0
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    if args.print_config:
        print(config.to_json())
        return 0
    from sopdeep.trainer import train

    result = train(config, resume=args.resume)
    print(json.dumps(result.summary, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
