"""The pieces of the fast CIFAR recipe, each against an independent computation.

FastNet's whitening stem, the triangle schedule, the BatchNorm parameter group (airbench's bias
lr scale with the weight decay per step kept), reflect-padded crops, test-time flip and label
smoothing; then the arch through the trainer.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sopdeep.augment import random_crop_flip
from sopdeep.config import TrainConfig
from sopdeep.datasets import make_synthetic
from sopdeep.datasets.npz import save_npz
from sopdeep.fast_net import WHITENING_EPS, FastNet, init_whitening, patch_whitening_filters
from sopdeep.methods import Batch, get_method
from sopdeep.models import build_model
from sopdeep.training import learning_rate, train
from sopdeep.training.setup import theta_groups


#: relative error of a short fp32 reduction (eps 6e-8 times a few terms)
FP32_RTOL = 1e-6


def _correlated_images(n=64, seed=0):
    """Images whose channels and neighbouring pixels are strongly correlated (as natural ones)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, 1, 17, 17, generator=g, dtype=torch.float64)
    smooth = F.avg_pool2d(base, 2, stride=1)  # neighbouring pixels share 2 of 4 inputs
    mix = torch.tensor([[1.0], [0.8], [0.5]], dtype=torch.float64)[None, :, :, None]
    return 3.0 * smooth * mix + 0.3 * torch.randn(n, 3, 16, 16, generator=g, dtype=torch.float64)


def test_whitening_filters_give_the_patches_identity_covariance():
    x = _correlated_images()
    filters = patch_whitening_filters(x.float())
    assert filters.shape == (12, 3, 2, 2)
    # independent: patches cut by slicing in numpy, outputs by the convolution itself
    a = x.numpy()
    patches = np.stack([a[:, :, i:i + 2, j:j + 2].reshape(len(a), -1) for i in range(15) for j in range(15)])
    eigenvalues = np.linalg.eigvalsh(np.einsum("pni,pnj->ij", patches, patches) / (patches.shape[0] * len(a)))
    out = F.conv2d(x, filters.double()).permute(0, 2, 3, 1).reshape(-1, 12)
    cov = (out.T @ out / out.shape[0]).numpy()
    # expected diag(λ/(λ+eps)), λ descending; off-diagonal 0 up to the float32 filters (rel. 1e-6 of
    # values of size ~1 after whitening: 1e-4 is two orders above)
    expected = np.diag(np.sort(eigenvalues)[::-1] / (np.sort(eigenvalues)[::-1] + WHITENING_EPS))
    assert np.abs(cov - expected).max() < 1e-4
    assert eigenvalues.min() > 100 * WHITENING_EPS  # so the target is the identity to 1 %
    assert np.abs(cov - np.eye(12)).max() < 1e-2


def test_init_whitening_sets_the_frozen_stem_to_plus_and_minus_filters():
    net = FastNet(10)
    x = _correlated_images().float()
    init_whitening(net, x)
    filters = patch_whitening_filters(x)
    assert torch.equal(net.whiten.weight[:12], filters) and torch.equal(net.whiten.weight[12:], -filters)
    assert not net.whiten.weight.requires_grad and net.whiten.bias.requires_grad
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    # stem bias, six 3x3 convs (24->64->64, 64->256->256, 256->256->256), six BN shifts, the linear
    assert trainable == (24 + 9 * (24 * 64 + 64 * 64 + 64 * 256 + 3 * 256 * 256) + 2 * 64 + 4 * 256
                         + 256 * 10)
    assert build_model("fast", 10)(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="image_size"):
        build_model("fast", 10, image_size=8)


def test_triangle_schedule_rises_then_falls_linearly():
    c = TrainConfig(lr=1.0, lr_start=0.2, lr_min=0.1, schedule="triangle", warmup_fraction=0.2, epochs=10)
    values = [learning_rate(c, s, 10) for s in (0, 10, 20, 60, 100)]  # T = 100 steps, peak at 20
    assert values == pytest.approx([0.2, 0.6, 1.0, 0.55, 0.1], rel=1e-12)
    with pytest.raises(ValueError, match="lr_start"):
        TrainConfig(lr=0.1, lr_start=0.2, schedule="triangle")


def test_norm_group_has_its_lr_scale_and_the_same_decay_per_step():
    torch.manual_seed(0)
    net = FastNet(10, width=8)
    config = TrainConfig(arch="fast", lr=0.1, weight_decay=0.01, bias_lr_scale=64.0, momentum=0.0)
    groups = theta_groups(net, config)
    norm_biases = [m.bias for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert [id(p) for p in groups[1]["params"]] == [id(p) for p in norm_biases]
    assert all(p.requires_grad for g in groups for p in g["params"])
    assert sum(len(g["params"]) for g in groups) == sum(1 for p in net.parameters() if p.requires_grad)
    # one SGD step on zero gradients is pure weight decay: every parameter shrinks by lr * wd
    opt = torch.optim.SGD(groups, lr=config.lr)
    for g in opt.param_groups:
        g["lr"] = config.lr * g["lr_scale"]
    before = [p.detach().clone() for g in groups for p in g["params"]]
    for g in groups:
        for p in g["params"]:
            p.grad = torch.zeros_like(p)
    opt.step()
    after = [p.detach() for g in groups for p in g["params"]]
    for b, a in zip(before, after):
        torch.testing.assert_close(a, b * (1 - config.lr * config.weight_decay), rtol=1e-6, atol=1e-9)
    # the default: one group of every trainable parameter (the recipe of every other arch)
    one = theta_groups(net, config.replace(bias_lr_scale=1.0))
    assert len(one) == 1 and len(one[0]["params"]) == sum(1 for p in net.parameters() if p.requires_grad)


def test_reflect_padded_crop_is_a_crop_of_the_reflected_image():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.uint8).view(2, 3, 6, 6)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    out = random_crop_flip(x, generator=g1, pad=2, padding_mode="reflect")
    offsets = torch.randint(0, 5, (2, 2), generator=g2)
    flips = torch.rand(2, generator=g2) < 0.5
    a = x.numpy()
    for b in range(2):
        padded = np.pad(a[b], ((0, 0), (2, 2), (2, 2)), mode="reflect")  # numpy's reflect = torch's
        dy, dx = offsets[:, b].tolist()
        ref = padded[:, dy:dy + 6, dx:dx + 6]
        assert np.array_equal(out[b].numpy(), ref[:, :, ::-1] if flips[b] else ref)
    with pytest.raises(ValueError, match="smaller than the image"):
        random_crop_flip(x, generator=g1, pad=6, padding_mode="reflect")


def test_label_smoothing_is_the_smoothed_target_cross_entropy():
    eps, k = 0.2, 5
    method = get_method(TrainConfig(method="ce", label_smoothing=eps))
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(7, k, generator=g, dtype=torch.float64)
    labels = torch.randint(0, k, (7,), generator=g)
    batch = Batch(indices=torch.arange(7), images=logits, labels=labels, raw=None, normalize=None, mean=None)
    loss = method.batch_loss(lambda x: x, batch, {}).loss
    log_p = torch.log_softmax(logits, 1)
    target = torch.full((7, k), eps / k, dtype=torch.float64)
    target[torch.arange(7), labels] += 1 - eps
    # the method computes its loss in fp32 (logits.float()): a few fp32 roundings of a sum of 7 terms
    assert float(loss) == pytest.approx(float(-(target * log_p).sum(1).mean()), rel=FP32_RTOL)


def _fast_run(tmp_path, **kw):
    data = make_synthetic(n_train=96, n_test=48, num_classes=4, image_size=16, channels=3, seed=0)
    path = save_npz(data, tmp_path / "data.npz")
    base = dict(dataset="npz", data_root=str(path), arch="fast", width=8, epochs=2, batch_size=32, lr=0.2,
                noise="sym", noise_rate=0.25, method="ce", label_smoothing=0.2, schedule="triangle",
                lr_start=0.05, lr_min=0.01, bias_lr_scale=8.0, crop_pad=2, crop_padding="reflect",
                augment="crop_flip", device="cpu", amp="off", progress=False, out=str(tmp_path / "run"))
    base.update(kw)
    return TrainConfig(**base), data


def test_fast_arch_trains_with_whitened_stem_and_flip_tta(tmp_path):
    config, data = _fast_run(tmp_path, tta="flip")
    result = train(config)
    assert all(math.isfinite(row["train_loss"]) for row in result.history)
    net = result.model.eval()
    # the stem holds the whitening of the normalised training images (frozen: training left it)
    x = torch.tensor(data.x_train).permute(0, 3, 1, 2).float().div(255)
    mean, std = x.mean((0, 2, 3), keepdim=True), x.std((0, 2, 3), keepdim=True)
    filters = patch_whitening_filters((x - mean) / std)
    torch.testing.assert_close(net.whiten.weight[:12], filters, rtol=1e-3, atol=1e-3)
    # test-time flip: the saved predictions are the mean of the logits of x and of its mirror
    xt = (torch.tensor(data.x_test).permute(0, 3, 1, 2).float().div(255) - mean) / std
    with torch.no_grad():
        logits = 0.5 * (net(xt) + net(xt.flip(-1)))
    acc = float((logits.argmax(1) == torch.tensor(data.y_test)).double().mean())
    assert result.summary["final_test_acc"] == pytest.approx(acc, abs=1.5 / len(xt))


# ------------------------------------------------------------------------------------------------
# airbench's other switches: lookahead, the stem bias freeze, the alternating flip, translate TTA


def test_lookahead_step_is_the_lerp_then_restart_of_every_float_entry():
    from sopdeep.lookahead import init_lookahead, lookahead_decay, lookahead_step_

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    net(torch.randn(8, 3))  # running statistics move off their start
    slow = init_lookahead(net)
    phi = {k: v.double().numpy().copy() for k, v in slow.items()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p))
    net(torch.randn(8, 3))
    w = {k: v.double().numpy().copy() for k, v in net.state_dict().items() if v.is_floating_point()}
    decay = lookahead_decay(30, 40, 5)
    assert decay == pytest.approx(0.95 ** 5 * (30 / 40) ** 3, rel=1e-15)
    lookahead_step_(slow, net, decay)
    assert "num_batches_tracked" not in slow  # the integer counter is left alone
    for key, value in net.state_dict().items():
        if key in phi:
            expected = decay * phi[key] + (1 - decay) * w[key]  # numpy, float64
            np.testing.assert_allclose(value.numpy(), expected, rtol=FP32_RTOL, atol=FP32_RTOL)
            assert torch.equal(value, slow[key])  # the network restarts from the slow copy
    with pytest.raises(ValueError, match="decay"):
        lookahead_step_(slow, net, 1.5)


def test_trainer_applies_lookahead_every_k_steps_and_ends_on_the_slow_copy(tmp_path, monkeypatch):
    import sopdeep.hooks as hooks

    calls = []
    real = hooks.lookahead_step_

    def recording(slow, model, decay):
        calls.append(decay)
        real(slow, model, decay)

    monkeypatch.setattr(hooks, "lookahead_step_", recording)
    config, _ = _fast_run(tmp_path, lookahead=2, epochs=3)  # 96 samples / 32 = 3 steps per epoch, T = 9
    train(config)
    expected = [0.95 ** 2 * (t / 9) ** 3 for t in (2, 4, 6, 8)] + [1.0]
    assert calls == pytest.approx(expected, rel=1e-15)


def _interrupt_after_first_epoch(epoch, row):
    if epoch == 0:
        raise KeyboardInterrupt


@pytest.mark.parametrize("switches", [dict(lookahead=2), dict(flip="alternate", stem_bias_epochs=1)])
def test_resume_with_the_airbench_switches_is_bit_identical(tmp_path, switches):
    config, _ = _fast_run(tmp_path, epochs=3, **switches)
    with pytest.raises(KeyboardInterrupt):
        train(config, callbacks={"epoch": _interrupt_after_first_epoch})
    resumed = train(config, resume=True)
    straight = train(config.replace(out=str(tmp_path / "straight")))
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert [r["test_acc"] for r in straight.history] == [r["test_acc"] for r in resumed.history]


def test_stem_bias_stops_training_after_its_epochs(tmp_path):
    # a constant lr: the first epoch is the same whatever the number of epochs
    one, _ = _fast_run(tmp_path, epochs=1, schedule="constant", out=str(tmp_path / "one"))
    three, _ = _fast_run(tmp_path, epochs=3, schedule="constant", stem_bias_epochs=1, out=str(tmp_path / "three"))
    a, b = train(one).model, train(three).model
    assert torch.equal(a.whiten.bias, b.whiten.bias)  # frozen after epoch 1: no step, no decay
    assert float(a.whiten.bias.detach().abs().max()) > 0  # it did train in epoch 1 (from zeros)
    assert not torch.equal(a.linear.weight, b.linear.weight)  # the rest trained on
    with pytest.raises(ValueError, match="arch 'fast'"):
        TrainConfig(arch="cnn", stem_bias_epochs=3)


def test_alternating_flip_mirrors_every_image_again_on_even_epochs(tmp_path, monkeypatch):
    import sopdeep.training.loop as loop

    flipped = []  # per epoch, per sample: was its view the mirror image? (one step = one epoch)
    real = loop.Batch

    def recording(**kw):
        raw, idx = kw["raw"], kw["indices"]
        is_flip = torch.tensor([torch.equal(kw["images"][i], kw["normalize"](raw[i:i + 1].flip(-1))[0])
                               for i in range(len(idx))])
        out = torch.zeros(len(idx), dtype=torch.bool)
        out[idx] = is_flip
        flipped.append(out)
        return real(**kw)

    monkeypatch.setattr(loop, "Batch", recording)

    def per_epoch(flip):
        flipped.clear()
        config, _ = _fast_run(tmp_path, epochs=3, batch_size=96, augment="flip", flip=flip, out=str(tmp_path / flip))
        train(config)
        return list(flipped)

    rand, alt = per_epoch("random"), per_epoch("alternate")
    assert 20 < int(rand[0].sum()) < 76  # about half of the 96 (binomial sd 4.9: 5.7 sd either side)
    assert torch.equal(alt[0], rand[0])  # epoch 1: the random flip's own coins
    assert torch.equal(alt[1], ~rand[0]) and torch.equal(alt[2], rand[0])
    assert not torch.equal(rand[1], ~rand[0])  # the random flip redraws instead


def test_flip_translate_tta_is_the_weighted_mean_of_six_views(tmp_path):
    config, data = _fast_run(tmp_path, tta="flip_translate")
    result = train(config)
    net = result.model.eval()
    x = torch.tensor(data.x_train).permute(0, 3, 1, 2).float().div(255)
    mean, std = x.mean((0, 2, 3), keepdim=True), x.std((0, 2, 3), keepdim=True)
    xt = ((torch.tensor(data.x_test).permute(0, 3, 1, 2).float().div(255) - mean) / std).numpy()
    padded = np.pad(xt, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="reflect")
    h = xt.shape[-1]
    views = [xt, padded[..., :h, :h], padded[..., 2:, 2:]]  # as is, shifted up-left, down-right

    def mirrored(v):
        v = torch.tensor(np.ascontiguousarray(v))
        with torch.no_grad():
            return 0.5 * (net(v) + net(v.flip(-1)))

    logits = 0.5 * mirrored(views[0]) + 0.25 * (mirrored(views[1]) + mirrored(views[2]))
    acc = float((logits.argmax(1) == torch.tensor(data.y_test)).double().mean())
    assert result.summary["final_test_acc"] == pytest.approx(acc, abs=1.5 / len(xt))


def test_tta_on_last_test_augments_the_last_test_evaluation_only(tmp_path):
    every, _ = _fast_run(tmp_path, epochs=2, schedule="constant", tta="flip_translate", out=str(tmp_path / "every"))
    last = every.replace(tta_on="last_test", out=str(tmp_path / "last"))
    plain = every.replace(tta="none", out=str(tmp_path / "plain"))
    a, b, c = train(every), train(last), train(plain)
    for key, value in c.model.state_dict().items():  # evaluation never changes the training
        assert torch.equal(value, b.model.state_dict()[key]) and torch.equal(value, a.model.state_dict()[key])
    assert b.history[0]["test_acc"] == c.history[0]["test_acc"]    # epoch 1: un-augmented
    assert b.history[-1]["test_acc"] == a.history[-1]["test_acc"]  # the last: with the six views
    assert np.array_equal(b.samples["pred_prob"], c.samples["pred_prob"])  # train-set outputs: plain
    assert not np.array_equal(a.samples["pred_prob"], c.samples["pred_prob"])
