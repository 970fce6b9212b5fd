"""The SOP u/v update (per batch and per epoch), end-to-end runs, exact resume after SIGKILL,
and the stop on a non-finite loss."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from sopdeep.config import TrainConfig
from sopdeep.label_issues import run_label_issues
from sopdeep.methods import SOP, Batch
from sopdeep.runs import RunFolderError, load_checkpoint
from sop_reference import closed_form_grads
from sopdeep.training import NonFiniteLossError, learning_rate, train

REPO = Path(__file__).resolve().parents[2]


def _tiny(tmp_path, **kw):
    base = dict(dataset="synthetic", arch="mlp", width=32, epochs=2, batch_size=32, lr=0.05,
                schedule="constant", weight_decay=5e-4, noise="sym", noise_rate=0.4, device="cpu",
                progress=False, out=str(tmp_path / "run"))
    base.update(kw)
    return TrainConfig(**base)


class _Linear(torch.nn.Module):
    def __init__(self, d, k):
        super().__init__()
        self.lin = torch.nn.Linear(d, k, dtype=torch.float64)

    def forward(self, x):
        return self.lin(x.flatten(1))


def _sop_setup(update, n=12, k=5, b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    cfg = TrainConfig(method="sop", u_shape="vector", v_shape="vector", update=update,
                      alpha_u=3.0, alpha_v=7.0)
    method = SOP(cfg)
    # |u|, |v| <= 0.1 so that prob + s stays above phi's floor (the closed forms' domain)
    state = {"u": (torch.rand(n, k, generator=g, dtype=torch.float64) - 0.5) * 0.2,
             "v": (torch.rand(n, k, generator=g, dtype=torch.float64) - 0.5) * 0.2}
    model = _Linear(6, k)
    x = torch.randn(n, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, k, (n,), generator=g)
    idx = torch.tensor([7, 2, 9, 0])[:b]
    batch = Batch(indices=idx, images=x[idx], labels=y[idx], raw=x[idx], normalize=lambda t: t)
    return method, state, model, x, y, batch


def test_batch_update_is_the_hand_written_projected_step_and_touches_only_batch_rows():
    method, state, model, x, y, batch = _sop_setup("batch")
    before = {key: val.clone() for key, val in state.items()}
    out = method.batch_loss(model, batch, state)
    out.loss.backward()
    lr = 0.05
    method.after_backward(batch, out, state, lr)
    with torch.no_grad():
        logits = model(batch.images)
    prob = torch.softmax(logits, 1)
    hard = torch.nn.functional.one_hot(logits.argmax(1), prob.shape[1]).double()
    u0, v0 = before["u"][batch.indices], before["v"][batch.indices]
    ref = closed_form_grads(prob, batch.labels, u0, v0, hard)
    # Algorithm 1, lines 12-13, per sample, lr alpha * tau, then clamp to [-1, 1]
    u_exp = (u0 - 3.0 * lr * ref["ce_u"]).clamp(-1, 1)
    v_exp = (v0 - 7.0 * lr * ref["mse_v"]).clamp(-1, 1)
    # float64; closed form vs autograd of a batch mean times B: a few ulps
    torch.testing.assert_close(state["u"][batch.indices], u_exp, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(state["v"][batch.indices], v_exp, rtol=1e-12, atol=1e-14)
    assert not torch.equal(state["u"][batch.indices], u0)
    others = torch.ones(state["u"].shape[0], dtype=torch.bool)
    others[batch.indices] = False
    for key in state:  # rows outside the batch: bit for bit unchanged
        assert torch.equal(state[key][others], before[key][others])


def test_epoch_update_holds_u_v_during_theta_pass_then_steps_every_sample():
    method, state, model, x, y, batch = _sop_setup("epoch")
    before = {key: val.clone() for key, val in state.items()}
    out = method.batch_loss(model, batch, state)
    out.loss.backward()
    method.after_backward(batch, out, state, 0.05)
    for key in state:
        assert torch.equal(state[key], before[key])
    assert model.lin.weight.grad is not None  # θ still learns from the corrected CE

    def predict():
        with torch.no_grad():
            yield torch.arange(x.shape[0]), model(x), y

    method.end_of_epoch(predict(), state, 0.05)
    with torch.no_grad():
        logits = model(x)
    hard = torch.nn.functional.one_hot(logits.argmax(1), 5).double()
    ref = closed_form_grads(torch.softmax(logits, 1), y, before["u"], before["v"], hard)
    torch.testing.assert_close(state["u"], (before["u"] - 3.0 * 0.05 * ref["ce_u"]).clamp(-1, 1),
                               rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(state["v"], (before["v"] - 7.0 * 0.05 * ref["mse_v"]).clamp(-1, 1),
                               rtol=1e-12, atol=1e-14)


def test_learning_rate_schedules():
    c = TrainConfig(lr=0.1, epochs=10, schedule="multistep", milestones=[3, 6], lr_decay=0.1)
    assert [learning_rate(c, e * 5, 5) for e in (0, 2, 3, 5, 6, 9)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rel=1e-12)
    c = c.replace(schedule="cosine")
    assert learning_rate(c, 0, 5) == 0.1
    assert learning_rate(c, 25, 5) == pytest.approx(0.05, rel=1e-12)  # half way: cos(pi/2) = 0


def test_weak_view_keeps_the_trainer_draws_crop_offsets_then_coins():
    # resumed runs stay bit-identical only if the draws from the epoch generator keep their
    # order: after the epoch's permutation, N row offsets, N column offsets, then N flip coins
    # (one table per epoch, indexed by sample; sopdeep.training.loop.train_one_epoch)
    from sopdeep.augment import crop_flip_draws, random_crop_flip

    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.uint8).view(2, 3, 8, 8)
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    out = random_crop_flip(x, pad=4, draws=crop_flip_draws(2, generator=g1, pad=4))
    dy = torch.randint(0, 9, (2,), generator=g2)
    dx = torch.randint(0, 9, (2,), generator=g2)
    flip = torch.rand(2, generator=g2) < 0.5
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(2):
        ref = padded[i, :, dy[i]:dy[i] + 8, dx[i]:dx[i] + 8]
        assert torch.equal(out[i], ref.flip(2) if flip[i] else ref)
    assert torch.equal(g1.get_state(), g2.get_state())
    # the layout stays the input's (a permuted view changes the conv kernel's rounding)
    for img in (x, x[:, :1].contiguous()):
        assert random_crop_flip(img, pad=4, draws=crop_flip_draws(2, generator=g1, pad=4)).stride() == img.stride()


def _strict_loads(text):
    def reject(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=reject)


def test_undefined_metrics_are_written_as_json_null(tmp_path):
    from sopdeep.runs import write_summary

    path = tmp_path / "summary.json"
    write_summary(tmp_path, {"precision": float("nan"), "x": [1.5, float("inf")], "n": {"a": -float("inf")}})
    assert _strict_loads(path.read_text()) == {"precision": None, "x": [1.5, None], "n": {"a": None}}


def res_method_score(cfg, res):
    """The method's own noise score of a finished run, recomputed from its returned state (None: it has none)."""
    from sopdeep.methods import get_method

    probs = torch.as_tensor(res.samples["pred_prob"])
    method = get_method(cfg)
    method.load_state_dict(res.method_state)
    score = method.noise_scores(res.state, torch.as_tensor(res.samples["given_label"]), probs)
    return None if score is None else score.numpy()


@pytest.mark.parametrize("method, update", [("ce", None), ("sop", "batch"), ("sop", "epoch"), ("gce", None),
                                            ("elr", None)])
def test_tiny_end_to_end_run_writes_everything(tmp_path, method, update, capsys):
    cfg = _tiny(tmp_path, method=method, **({"update": update} if update else {}))
    if method == "ce":  # through the command line, which must build the same config
        from sopdeep.cli import main

        assert main(["--dataset", "synthetic", "--arch", "mlp", "--epochs", "2", "--out", cfg.out,
                     "--method", "ce", "--batch-size", "32", "--lr", "0.05", "--device", "cpu",
                     "--no-progress", "--set", "width=32", "--set", "schedule=constant",
                     "--set", "weight_decay=5e-4"]) == 0
        printed = json.loads(capsys.readouterr().out)
        res = train(cfg.replace(out=cfg.out + "-api"))
        assert printed["final_test_acc"] == res.summary["final_test_acc"]
        cfg = cfg.replace(out=cfg.out + "-api")
    else:
        res = train(cfg)
    out = Path(cfg.out)
    for name in ("config.json", "metrics.csv", "metrics.jsonl", "summary.json", "samples.npz",
                 "checkpoint.pt"):
        assert (out / name).is_file(), name
    assert len(res.history) == 2 and len((out / "metrics.jsonl").read_text().splitlines()) == 2
    # user-facing files are strict JSON (no NaN/Infinity tokens), readable by any JSON tool
    _strict_loads((out / "summary.json").read_text())
    for line in (out / "metrics.jsonl").read_text().splitlines():
        _strict_loads(line)
    assert TrainConfig.from_dict(json.loads((out / "config.json").read_text())) == cfg
    s = np.load(out / "samples.npz")
    n = 256
    assert s["noise_score"].shape == (n,) and s["is_label_issue"].dtype == bool
    # the mask of sopdeep.label_issues (count estimated without clean labels), not a fixed threshold,
    # from the method's own noise score exactly when the method gives one (the detection protocol)
    own = res_method_score(cfg, res)
    assert bool(s["has_method_score"].all()) == (own is not None) and not (s["has_method_score"].any() ^ s["has_method_score"].all())
    if own is not None:
        assert np.allclose(s["noise_score"], own, rtol=1e-6, atol=0)
        assert res.summary["label_quality_from"].startswith(f"rank mean of {method}'s noise score")
    else:
        assert np.allclose(s["noise_score"], 1 - s["pred_prob"][np.arange(256), s["given_label"]], atol=1e-6)
        assert "has no per-sample noise score" in res.summary["label_quality_from"]
    quality, ranked = run_label_issues(s["given_label"], s["pred_prob"], s["noise_score"] if own is not None else None)
    assert np.array_equal(s["label_quality"], quality) and np.array_equal(np.flatnonzero(s["is_label_issue"]), np.sort(ranked))
    assert 0 <= res.summary["final_issues_auroc"] <= 1
    assert np.array_equal(s["corrected_label"], s["pred_prob"].argmax(1))
    assert 0.3 < s["is_noisy"].mean() < 0.5
    assert 0 <= res.summary["final_issues_auroc"] <= 1
    assert "monitor_auroc" in res.history[-1] and "final_det_auroc" not in res.summary
    if method == "sop":
        # documented per-sample outputs: score u^2 at the given label (u scalar), correction s
        u, v = res.state["u"].double().numpy(), res.state["v"].double().numpy()
        assert np.allclose(s["noise_score"], u[:, 0] ** 2, rtol=1e-6, atol=0)
        y = np.eye(4)[s["given_label"]]
        assert np.allclose(s["correction"], u ** 2 * y - v ** 2 * (1 - y), rtol=1e-6, atol=1e-30)
        assert res.state["u"].shape == (n, 1) and res.state["v"].shape == (n, 4)
        assert float(res.state["v"].abs().max()) <= 1.0
        # v moved from its initialisation (drawn after u from the seed's generator) and grew
        # where the network's prediction disagrees with the label (growth factor per visit
        # 1 + 4 alpha_v lr = 3 at most here, so two epochs give a clear but small change)
        from sopdeep.sop_loss import init_sample_variables
        g = torch.Generator().manual_seed(cfg.seed)
        init_sample_variables(n, 4, "scalar", 1e-8, g)
        v0 = init_sample_variables(n, 4, "vector", 1e-8, g)
        assert not torch.equal(res.state["v"], v0)
        assert float((res.state["v"].abs() / v0.abs()).max()) > 2
    ck = load_checkpoint(out / "checkpoint.pt")
    assert ck["epoch"] == 2 and TrainConfig.from_dict(json.loads(ck["config"])) == cfg


_KILL_SCRIPT = textwrap.dedent("""
    import json, os, signal, sys
    sys.path.insert(0, {repo!r})
    from sopdeep.config import TrainConfig
    from sopdeep.training import train

    def step(epoch, i):
        if epoch == 1 and i == 3:  # mid-way through the second epoch, after checkpoint 1
            os.kill(os.getpid(), signal.SIGKILL)

    train(TrainConfig.from_dict(json.loads({cfg!r})), callbacks={{"step": step}})
""")


def _strip_times(history):
    # JSON text: compares floats exactly and treats NaN (precision with nothing flagged) as equal
    return json.dumps([{k: v for k, v in row.items() if k != "epoch_time"} for row in history])


@pytest.mark.parametrize("method, update", [("sop", "batch"), ("sop", "epoch"), ("elr", None)])
def test_resume_after_sigkill_is_bit_identical(tmp_path, method, update):
    # ELR's per-sample targets are checkpointed like SOP's u, v
    cfg = _tiny(tmp_path, method=method, epochs=3, schedule="cosine", out=str(tmp_path / "killed"),
                **({"update": update} if update else {}))
    script = _KILL_SCRIPT.format(repo=str(REPO), cfg=cfg.to_json())
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr  # really killed by SIGKILL
    ck = load_checkpoint(Path(cfg.out) / "checkpoint.pt")
    assert ck["epoch"] == 1  # the second epoch was lost mid-way
    resumed = train(cfg, resume=True)
    ref = train(cfg.replace(out=str(tmp_path / "straight")))
    for key, val in ref.model.state_dict().items():
        assert torch.equal(val, resumed.model.state_dict()[key]), key
    for key in ref.state:
        assert torch.equal(ref.state[key], resumed.state[key]), key
    assert _strip_times(ref.history) == _strip_times(resumed.history)
    for key in ref.samples:
        assert np.array_equal(ref.samples[key], resumed.samples[key]), key
    with pytest.raises(ValueError, match="differs from the checkpoint"):
        train(cfg.replace(lr=0.1), resume=True)
    with pytest.raises(RunFolderError, match="resume"):  # a finished run is never overwritten
        train(cfg)


def test_non_finite_loss_stops_with_clear_error_and_keeps_last_good_checkpoint(tmp_path):
    cfg = _tiny(tmp_path, method="sop", epochs=3)

    def inject(epoch, step, loss):
        return loss * float("nan") if (epoch, step) == (1, 2) else loss

    with pytest.raises(NonFiniteLossError, match="non-finite training loss .* epoch 2.*checkpoint of epoch 1"):
        train(cfg, callbacks={"loss": inject})
    ck = load_checkpoint(Path(cfg.out) / "checkpoint.pt")
    assert ck["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())
    assert len(json.loads(ck["history"])) == 1
    # and the run can be resumed from it (without the fault) to the end
    res = train(cfg, resume=True)
    assert len(res.history) == 3


@pytest.mark.data
def test_fashion_mnist_experiment_script_runs_at_small_size(shared_data, tmp_path):
    # the evidence script end to end on real data, cut to 600 images and 2 epochs
    out = tmp_path / "fm"
    proc = subprocess.run(
        [sys.executable, str(REPO / "experiments" / "fashion_mnist_noise.py"), "--data-root",
         str(shared_data / "fashion-mnist"), "--out", str(out), "--subset", "600", "--epochs", "2",
         "--width", "64"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())["results"]
    assert set(summary) == {"ce", "sop"}
    assert all(len(r["test_acc"]) == 2 for r in summary.values())
    assert (out / "test_accuracy.png").stat().st_size > 0 and (out / "summary.md").is_file()


def test_bf16_autocast_path_keeps_u_v_and_loss_in_float32(tmp_path):
    # the mixed-precision code path (used on CUDA) exercised on the CPU: the SOP terms are
    # computed in float32 from bf16 logits and u, v stay float32
    cfg = _tiny(tmp_path, method="sop", arch="cnn", width=8, epochs=1, amp="bf16")
    res = train(cfg)
    assert res.state["u"].dtype == torch.float32 and res.state["v"].dtype == torch.float32
    assert np.isfinite(res.history[0]["train_loss"])
    assert not torch.equal(res.state["v"], train(cfg.replace(amp="off", out=cfg.out + "-fp32")).state["v"])


def test_a_trailing_single_sample_batch_is_merged_so_batchnorm_trains(tmp_path):
    # 256 = 3 * 85 + 1: without merging, the last batch would hold one sample, and PreAct18's
    # last BatchNorm (1x1 feature maps for 8x8 inputs) raises on a single value per channel
    res = train(_tiny(tmp_path, method="sop", arch="preact18", width=0, epochs=1, batch_size=85))
    assert np.isfinite(res.history[0]["train_loss"])


def test_per_class_subset_keeps_n_over_k_random_samples_of_each_clean_class():
    # the ELR-style split of the "45,000 training examples" columns, checked on the synthetic set
    from sopdeep.datasets import make_synthetic
    from sopdeep.training import load_data

    full = make_synthetic(seed=3)  # the synthetic images depend on the run's seed
    k = full.num_classes
    n = (full.n_train // (2 * k)) * k  # a multiple of K below the balanced class sizes
    cfg = TrainConfig(dataset="synthetic", train_subset=n, subset_split="per_class", noise="sym",
                      noise_rate=0.4, seed=3)
    ds, noisy = load_data(cfg)
    counts = np.bincount(np.asarray(noisy.clean_labels), minlength=k)
    assert ds.n_train == n and np.all(counts == np.round(n * np.bincount(full.y_train, minlength=k) / full.n_train))
    # random, not the first n: the kept images are not a prefix of the training set
    first, _ = load_data(cfg.replace(subset_split="first"))
    assert not np.array_equal(ds.x_train, first.x_train)
    # the noise was drawn on the full set first: the kept noisy labels are the full set's
    _, full_noisy = load_data(cfg.replace(train_subset=0))
    same_rows = [np.flatnonzero((full.x_train == x).all(axis=(1, 2, 3)))[0] for x in ds.x_train[:20]]
    assert np.array_equal(np.asarray(full_noisy.noisy_labels)[same_rows], np.asarray(noisy.noisy_labels)[:20])
    # reproducible: the same config keeps the same samples
    again, _ = load_data(cfg)
    assert np.array_equal(again.x_train, ds.x_train)


@pytest.mark.parametrize("split", ["first", "per_class"])
def test_subset_indices_name_the_kept_images_and_the_held_out_rest(split):
    # checked against the images themselves: which rows of the full set load_data kept
    from sopdeep.training import load_data, subset_indices

    cfg = TrainConfig(dataset="synthetic", train_subset=100, subset_split=split, noise="sym", noise_rate=0.4, seed=5)
    full, full_noisy = load_data(cfg.replace(train_subset=0))
    ds, noisy = load_data(cfg)
    kept, held = subset_indices(cfg, full.y_train)
    rows = [np.flatnonzero((full.x_train == x).all(axis=(1, 2, 3))) for x in ds.x_train]
    assert all(len(r) == 1 for r in rows)  # the synthetic images are distinct
    assert np.array_equal(kept, np.sort([r[0] for r in rows]))
    assert np.array_equal(np.sort(np.concatenate([kept, held])), np.arange(full.n_train))
    assert np.array_equal(np.asarray(full_noisy.noisy_labels)[kept], np.asarray(noisy.noisy_labels))


def test_without_progress_bar_one_line_per_epoch_goes_to_stderr(tmp_path, capsys):
    train(_tiny(tmp_path, method="ce", epochs=2))
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"]
    assert all("test acc" in line and "loss" in line and line.endswith(" s") for line in lines)


def test_elr_label_quality_comes_from_its_own_score_not_self_confidence(tmp_path):
    # the detection protocol: ELR's 1 - t_{i,y_i} feeds label_quality (before, only methods with a
    # correction did, and ELR fell back to self-confidence without a word)
    res = train(_tiny(tmp_path, method="elr"))
    s = res.samples
    labels = torch.as_tensor(s["given_label"])
    own = (1.0 - res.state["target"].gather(1, labels[:, None])[:, 0]).numpy()
    expected, _ = run_label_issues(s["given_label"], s["pred_prob"], own)
    fallback, _ = run_label_issues(s["given_label"], s["pred_prob"], None)
    np.testing.assert_allclose(s["label_quality"], expected, rtol=0, atol=1e-12)
    assert not np.allclose(s["label_quality"], fallback)  # so the check above can tell the two apart
    assert res.summary["label_quality_from"].startswith("rank mean of elr's noise score")


def test_eval_every_measures_every_kth_and_the_last_epoch_and_trains_the_same_network(tmp_path):
    every = train(_tiny(tmp_path, epochs=5, out=str(tmp_path / "every")))
    sparse = train(_tiny(tmp_path, epochs=5, eval_every=2, out=str(tmp_path / "sparse")))
    # the test set is only read: the trained network and every training metric are the same
    assert [r["train_loss"] for r in sparse.history] == [r["train_loss"] for r in every.history]
    measured = [r["test_acc"] for r in every.history]
    assert [r["test_acc"] for r in sparse.history] == [None, measured[1], None, measured[3], measured[4]]
    best_epoch = max((2, 4, 5), key=lambda e: measured[e - 1])  # the first epoch of the maximum
    assert sparse.summary["best_epoch"] == best_epoch
    assert sparse.summary["best_test_acc"] == measured[best_epoch - 1]
    assert sparse.summary["final_test_acc"] == measured[4]
    # the files say "not measured", never a number: empty in the csv, null in the jsonl
    rows = (tmp_path / "sparse" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert rows[1].split(",")[header.index("test_acc")] == ""
    assert json.loads((tmp_path / "sparse" / "metrics.jsonl").read_text().splitlines()[0])["test_acc"] is None
    assert (tmp_path / "sparse" / "curves.png").stat().st_size > 0


def test_eval_every_line_shows_a_dash_for_an_epoch_not_measured(tmp_path, capsys):
    train(_tiny(tmp_path, epochs=2, eval_every=2))
    lines = [l for l in capsys.readouterr().err.splitlines() if l.startswith("epoch ")]
    assert "test acc -" in lines[0] and "test acc -" not in lines[1]
