"""Named presets, the one place they are defined: every runnable setting of Table A.1 and every
cell of Tables 1, 2 and 4.

A preset is a dict of :class:`sopdeep.config.TrainConfig` overrides; ``sop-train --preset NAME``
applies one, then the flags override it. This module imports nothing from ``sopdeep`` (its tests
build a ``TrainConfig`` from every preset). The transcription of Table A.1 and the choices made
where it is ambiguous are in ``docs/deep.md``.

>>> PRESETS["table1-cifar10-sym40"]["noise_rate"], PRESETS["table1-cifar10-sym40"]["train_subset"]
(0.4, 45000)
"""

from __future__ import annotations

from typing import Any

__all__ = ["effective_alpha", "FAST_REASON", "FAST_SOP_ALPHA", "FAST_SOP_ALPHA_CIFAR100", "PRESETS", "PRESET_REASONS", "PUBLISHED_BY", "RECIPE_REASONS", "REFERENCE_ONLY", "list_presets",
           "preset_rows", "describe"]

_SOP_PLUS = dict(lambda_c=0.9, lambda_b=0.1)

#: Why a preset uses its recipe (``recipe`` key of every preset; ``sopdeep.sop_loss.RECIPES``).
RECIPE_REASONS = {
    "paper": "recipe=paper: Algorithm 1 as the paper writes it (Table A.1's u, v rates as alpha * tau_t, "
             "projection to [-1, 1]); the method as published, not necessarily its published numbers",
    "authors": "recipe=authors: the authors' released code (shengliu66/SOP 4d991ce), which produced the "
               "paper's numbers: constant lr_u/lr_v, u learns from MSE, clamped corrections, their "
               "PreActResNet18, noise generators, fixed normalisation, cosine per epoch to 2e-4",
}

#: Table A.1 columns (the runnable four), without the noise model.
_COLUMNS: dict[str, dict[str, Any]] = {
    "cifar10-sop": dict(
        dataset="cifar10", arch="resnet34", batch_size=128, lr=0.02, schedule="multistep",
        milestones=[40, 80], lr_decay=0.1, weight_decay=5e-4, epochs=120, train_subset=45000, subset_split="per_class",
        init_std=1e-8, method="sop",
    ),
    "cifar10-sopplus": dict(
        dataset="cifar10", arch="preact18", batch_size=128, lr=0.02, schedule="cosine",
        weight_decay=5e-4, epochs=300, train_subset=0, init_std=1e-8, method="sop+", **_SOP_PLUS,
    ),
    "cifar100-sop": dict(
        dataset="cifar100", arch="resnet34", batch_size=128, lr=0.02, schedule="multistep",
        milestones=[80, 120], lr_decay=0.1, weight_decay=5e-4, epochs=150, train_subset=45000, subset_split="per_class",
        init_std=1e-8, method="sop",
    ),
    "cifar100-sopplus": dict(
        dataset="cifar100", arch="preact18", batch_size=128, lr=0.02, schedule="cosine",
        weight_decay=5e-4, epochs=300, train_subset=0, init_std=1e-8, method="sop+", **_SOP_PLUS,
    ),
}

#: (alpha_u, alpha_v) per dataset and noise kind (Table A.1's "lr for {u_i, v_i}" row).
_ALPHA = {
    ("cifar10", "sym"): (10.0, 10.0),
    ("cifar10", "asym"): (10.0, 100.0),
    ("cifar100", "sym"): (1.0, 10.0),
    ("cifar100", "asym"): (1.0, 100.0),
}


def _with_noise(column: str, noise: str, rate: float | None) -> dict[str, Any]:
    base = dict(_COLUMNS[column])
    au, av = _ALPHA[(base["dataset"], "asym" if noise == "asym" else "sym")]
    base.update(alpha_u=au, alpha_v=av, noise=noise, recipe="paper")
    if rate is not None:
        base["noise_rate"] = rate
    return base


def _authors(column: str, noise: str, rate: float | None) -> dict[str, Any]:
    """A cell as the authors' code runs it: Table A.1's u, v rates as constant ``lr_u``, ``lr_v``,
    their noise generators, fixed normalisation, fp32 (their training has no autocast), CIFAR-100
    asymmetric with ``lr_u=0.1`` (their README: ``--lr_u 0.1 --lr_v 100``, "0.1 rather than 1 in
    the paper"). SOP+ columns (their ``config_cifar100.json``): their PreActResNet18, cosine per
    epoch to 2e-4, weight decay 1e-3 on CIFAR-100, their strong view per sample. SOP columns
    (Table 1): Table A.1's ResNet34, multistep schedule and epochs (their configuration for those
    runs is not released), on all 50,000 training images: their ``train_val_split`` keeps every
    index for training (``train_idxs.extend(idxs[:])``), so Table A.1's 45,000 is not what their
    code trains on."""
    base = _with_noise(column, noise, rate)
    au, av = base.pop("alpha_u"), base.pop("alpha_v")
    if (base["dataset"], noise) == ("cifar100", "asym"):
        au = 0.1  # their README's CIFAR-100 asymmetric command, not Table A.1's 1.0
    kind = {"sym": "sym-authors", "asym": "asym-authors"}.get(noise, noise)
    base.update(recipe="authors", lr_u=au, lr_v=av, noise=kind, normalization="fixed", amp="off", train_subset=0)
    base.pop("subset_split", None)
    if base["method"] == "sop+":
        base.update(arch="preact18_authors", schedule="cosine_epoch", lr_min=2e-4, strong_backend="torchvision",
                    weight_decay=1e-3 if base["dataset"] == "cifar100" else 5e-4)
    return base


#: The fast recipe on clean CIFAR-10: an airbench94-shaped net (``arch="fast"``) with its optimiser
#: settings rewritten for the mean loss torch's SGD steps on: airbench's lr 11.5 per 1024 examples
#: divided by its Nesterov step scale 1 + 1/(1 - 0.85) gives lr 1.5; its decay per step
#: 0.0153 * 1024 / 7850 = 0.0020 divided by that lr gives weight_decay 0.00133. Batch 1024, 10 epochs,
#: label smoothing 0.2, BatchNorm parameters at 64x the lr, reflect-padded 2-pixel crops, test-time
#: flip. ``docs/deep.md`` lists each switch and its effect.
_FAST: dict[str, Any] = dict(
    dataset="cifar10", arch="fast", method="ce", label_smoothing=0.2, noise="none", epochs=10,
    batch_size=1024, lr=1.5, momentum=0.85, nesterov=True, weight_decay=0.00133, schedule="triangle",
    lr_start=0.3, lr_min=0.105, warmup_fraction=0.23, bias_lr_scale=64.0, crop_pad=2, crop_padding="reflect",
    augment="crop_flip", tta="flip", train_subset=0,
)

#: airbench's other switches, on in ``fast-cifar10`` (measured one by one in docs/deep.md): the
#: alternating flip, lookahead every 5 steps, the stem bias frozen after 3 epochs, the six-view
#: test-time augmentation on the last test evaluation; and more epochs than airbench's 10, as the
#: JPEG export and bf16 on this CPU reach less per epoch. The noisy ``fast-*`` presets keep
#: :data:`_FAST` alone: the recipe of the committed full-scale table (experiments/cifar10_full_scale.py).
FAST_AIRBENCH_SWITCHES: dict[str, Any] = dict(flip="alternate", lookahead=5, stem_bias_epochs=3,
                                              tta="flip_translate", tta_on="last_test", epochs=16)

#: SOP's u, v rate on the fast recipe: Table A.1's alpha = 10 at batch 128, momentum 0.9 has the
#: effective ratio alpha * B * (1 - beta) = 128 (docs/bridge.md); at batch 1024 and momentum 0.85
#: the same ratio is 128 / (1024 * 0.15).
def effective_alpha(alpha: float, batch_size: int, momentum: float) -> float:
    """The u, v rate that keeps Table A.1's effective ratio ``alpha * B * (1 - beta)`` (set at batch
    128, momentum 0.9) at another batch size and momentum (``docs/bridge.md``): the one rule the
    fast presets, the grid and the experiments use.

    >>> round(effective_alpha(10.0, 1024, 0.85), 4)
    0.8333
    """
    return alpha * 128 * (1 - 0.9) / (batch_size * (1 - momentum))


FAST_SOP_ALPHA = effective_alpha(10.0, 1024, 0.85)

#: (alpha_u, alpha_v) of SOP on the CIFAR-100 fast recipe: Table A.1's CIFAR-100 symmetric rates
#: (alpha_u 1, alpha_v 10, where CIFAR-10 has 10 and 10) by the same effective-alpha rule as
#: :data:`FAST_SOP_ALPHA`; the paper lowers u's rate for 100 classes, and so does this recipe.
FAST_SOP_ALPHA_CIFAR100 = tuple(effective_alpha(a, 1024, 0.85) for a in _ALPHA[("cifar100", "sym")])


def _fast_noisy(method: str, *, dataset: str = "cifar10", alpha: tuple[float, float] = (FAST_SOP_ALPHA, FAST_SOP_ALPHA),
                **noise: Any) -> dict[str, Any]:
    """The fast recipe on ``dataset`` with plain CE (no label smoothing) or SOP at ``alpha``
    (alpha_u, alpha_v; default :data:`FAST_SOP_ALPHA` for both)."""
    base = {k: v for k, v in _FAST.items() if k != "label_smoothing"}
    base.update(noise, method=method, dataset=dataset)
    if method == "sop":
        base.update(alpha_u=alpha[0], alpha_v=alpha[1], init_std=1e-8, recipe="paper")
    return base


def _build() -> dict[str, dict[str, Any]]:
    presets: dict[str, dict[str, Any]] = {}
    # Table A.1 settings, one per column and noise kind; noise_rate left to the user.
    for column in _COLUMNS:
        for kind in ("sym", "asym"):
            d = _with_noise(column, kind, 0.4 if kind == "asym" else None)
            presets[f"a1-{column}-{kind}"] = d
    # Table 1: SOP, ResNet34, symmetric 20/40/60/80 % on CIFAR-10 and CIFAR-100.
    for ds in ("cifar10", "cifar100"):
        for pct in (20, 40, 60, 80):
            presets[f"table1-{ds}-sym{pct}"] = _with_noise(f"{ds}-sop", "sym", pct / 100)
    # Table 2: SOP+, PreActResNet18, symmetric 20/50/80 % and asymmetric 40 %.
    for ds in ("cifar10", "cifar100"):
        for pct in (20, 50, 80):
            presets[f"table2-{ds}-sym{pct}"] = _with_noise(f"{ds}-sopplus", "sym", pct / 100)
        presets[f"table2-{ds}-asym40"] = _with_noise(f"{ds}-sopplus", "asym", 0.4)
    # Table 4: SOP+, PreActResNet18, CIFAR-10N / CIFAR-100N human labels (and the clean labels).
    # (the user gives cifar_n_path, the CIFAR-N label file)
    presets["table4-cifar10n-clean"] = _with_noise("cifar10-sopplus", "none", None)
    for cell in ("aggregate", "random1", "random2", "random3", "worst"):
        presets[f"table4-cifar10n-{cell}"] = {**_with_noise("cifar10-sopplus", "cifar10n", None), "cifar_n_label": cell}
    presets["table4-cifar100n-clean"] = _with_noise("cifar100-sopplus", "none", None)
    presets["table4-cifar100n-noisy"] = _with_noise("cifar100-sopplus", "cifar100n", None)
    # the same cells (Tables 1, 2 and 4) under the authors' recipe: the code that made the numbers
    for ds in ("cifar10", "cifar100"):
        for pct in (20, 40, 60, 80):
            presets[f"authors-table1-{ds}-sym{pct}"] = _authors(f"{ds}-sop", "sym", pct / 100)
    for ds in ("cifar10", "cifar100"):
        for pct in (20, 50, 80):
            presets[f"authors-table2-{ds}-sym{pct}"] = _authors(f"{ds}-sopplus", "sym", pct / 100)
        presets[f"authors-table2-{ds}-asym40"] = _authors(f"{ds}-sopplus", "asym", 0.4)
    for cell in ("aggregate", "random1", "random2", "random3", "worst"):
        presets[f"authors-table4-cifar10n-{cell}"] = {**_authors("cifar10-sopplus", "cifar10n", None),
                                                      "cifar_n_label": cell}
    presets["authors-table4-cifar100n-noisy"] = _authors("cifar100-sopplus", "cifar100n", None)
    # the fast recipe (not the paper's): full CIFAR-10 in minutes on a CPU (README, issue 20)
    presets["fast-cifar10"] = {**_FAST, **FAST_AIRBENCH_SWITCHES}
    for method in ("ce", "sop"):
        for pct in (40, 80):
            presets[f"fast-cifar10-{method}-sym{pct}"] = _fast_noisy(method, noise="sym", noise_rate=pct / 100)
        for cell in ("worst", "aggregate"):
            presets[f"fast-cifar10n-{method}-{cell}"] = _fast_noisy(method, noise="cifar10n", cifar_n_label=cell)
    # the same recipe on CIFAR-100 from the lossless PNG export (the user gives cache_path; cifar_n_path
    # for CIFAR-100N): the same network, epochs and switches, SOP at Table A.1's CIFAR-100 rates
    presets["fast-cifar100"] = {**_FAST, **FAST_AIRBENCH_SWITCHES, "dataset": "cifar100-png"}
    for method in ("ce", "sop"):
        c100 = dict(dataset="cifar100-png", alpha=FAST_SOP_ALPHA_CIFAR100)
        for pct in (20, 40, 60, 80):
            presets[f"fast-cifar100-{method}-sym{pct}"] = _fast_noisy(method, noise="sym", noise_rate=pct / 100, **c100)
        presets[f"fast-cifar100n-{method}"] = _fast_noisy(method, noise="cifar100n", **c100)
    # short names used in the README: the Table A.1 CIFAR-10 / ResNet34 settings
    presets["cifar10-sym"] = dict(presets["a1-cifar10-sop-sym"])
    presets["cifar10-asym"] = dict(presets["a1-cifar10-sop-asym"])
    return presets


#: All runnable presets, name -> TrainConfig overrides.
PRESETS: dict[str, dict[str, Any]] = _build()

#: Why each preset uses its recipe, name -> one line (shown by :func:`list_presets`).
FAST_REASON = ("recipe=fast: our own speed recipe (airbench94-shaped net, batch 1024; 16 epochs with airbench's "
               "other switches clean, 10 without them noisy), not the "
               "paper's setting; SOP steps u, v as recipe=paper does, alpha by the effective-alpha rule "
               "(docs/bridge.md) from Table A.1's rates of the dataset (CIFAR-100: alpha_u 1, alpha_v 10)")
PRESET_REASONS: dict[str, str] = {name: FAST_REASON if name.startswith("fast-") else RECIPE_REASONS[p["recipe"]]
                                  for name, p in PRESETS.items()}

#: Table A.1 columns this package cannot run (architectures / datasets not provided).
REFERENCE_ONLY: dict[str, dict[str, Any]] = {
    "a1-clothing1m": dict(arch="resnet50 (ImageNet-pretrained)", batch_size=64, lr=0.002,
                          milestones=[5], weight_decay=1e-3, epochs=10, alpha_u=0.1, alpha_v=1.0,
                          lambda_c=0.0, lambda_b=0.0, reason="dataset and pretrained model not provided"),
    "a1-webvision": dict(arch="inception_resnet_v2", batch_size=32, lr=0.02, milestones=[50],
                         weight_decay=5e-4, epochs=100, alpha_u=0.1, alpha_v=1.0,
                         lambda_c=0.0, lambda_b=0.0, reason="dataset and architecture not provided"),
}


def describe(overrides: dict[str, Any]) -> str:
    """One line summarising a preset's overrides (``key=value`` pairs, sorted)."""
    return " ".join(f"{k}={v}" for k, v in sorted(overrides.items()))


#: Which code made each table's published number (the listing's "published by" column).
PUBLISHED_BY = "the authors' code (shengliu66/SOP); recipe=authors reproduces it, recipe=paper follows the text"

#: Notes shown beside presets whose name prefix matches (the listing's last column).
_TABLE_NOTES = {
    "table2-": "Table 2's caption says ResNet34; these use PreActResNet18, Table A.1's SOP+ column",
    "authors-table2-": "Table 2's caption says ResNet34; their SOP+ code and Table A.1 use PreActResNet18",
    "table1-": "update=batch; Algorithm 1 as printed updates u, v in a pass after each epoch (update=epoch)",
    "authors-table1-": "Table A.1's network and schedule: their configuration of the Table 1 runs is not "
                       "released (their code's update rules, noise and normalisation)",
}


def _recipe_of(name: str, preset: dict[str, Any]) -> str:
    """The recipe column of a preset: its ``recipe`` key, ``fast`` for the fast family (whose CE
    presets have no u, v and so no ``recipe``)."""
    return "fast" if name.startswith("fast-") else preset["recipe"]


def preset_rows() -> list[dict[str, Any]]:
    """One row per preset for the ``--list-presets`` table, sorted by name.

    Returns
    -------
    list of dict
        Keys ``name``, ``method``, ``dataset``, ``noise``, ``rate`` (None where the preset leaves it
        to the user or the noise is human), ``recipe``, ``published_by``, ``reason`` (why that
        recipe), ``note`` (a table-specific caveat or "") and ``overrides`` (the preset itself).
    """
    rows = []
    for name, ov in sorted(PRESETS.items()):
        note = next((text for prefix, text in _TABLE_NOTES.items() if name.startswith(prefix)), "")
        rows.append(dict(name=name, method=ov["method"], dataset=ov["dataset"], noise=ov["noise"],
                         rate=ov.get("noise_rate"), recipe=_recipe_of(name, ov),
                         published_by="" if name.startswith("fast-") else PUBLISHED_BY,
                         reason=PRESET_REASONS[name], note=note, overrides=dict(ov)))
    return rows


def list_presets() -> str:
    """The text ``sop-train --list-presets`` prints: every preset, then the reference-only ones."""
    rows = preset_rows()
    cols = ("name", "method", "dataset", "noise", "rate", "recipe", "note")
    cells = [[("" if r[c] is None else str(r[c])) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    lines.append("")
    lines.append(f"Published numbers (Tables 1, 2, 4) were made by {PUBLISHED_BY}.")
    lines.append("")
    lines.append("Overrides:")
    lines += [f"  {name}: {describe(ov)}" for name, ov in sorted(PRESETS.items())]
    lines.append("")
    lines.append("Recipes:")
    lines += [f"  {reason}" for reason in (*RECIPE_REASONS.values(), FAST_REASON)]
    lines.append("")
    lines.append("Table A.1 settings recorded for reference (not runnable here):")
    lines += [f"  {name}: {describe(ov)}" for name, ov in sorted(REFERENCE_ONLY.items())]
    return "\n".join(lines)
