"""Architectures: output shapes, parameter counts from the architecture description, gradients, channels_last."""

from __future__ import annotations

import pytest
import torch

from sopdeep.models import ARCHITECTURES, build_model, count_parameters

@pytest.fixture(autouse=True)
def _one_thread():
    # These tests are tiny; on a small shared machine one intra-op thread avoids oversubscription
    # (measured: a ResNet34 step 5x faster under load). Restored afterwards.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# The ResNets end in global average pooling, so 8x8 inputs (one spatial position in the last stage)
# exercise every layer at 1/16 of the cost of 32x32; the 32x32 case is checked once below.
CASES = [
    ("preact18", 3, 8),
    ("preact18_authors", 3, 8),
    ("resnet34", 3, 8),
    ("cnn", 3, 32),
    ("cnn", 1, 28),
    ("mlp", 1, 28),
    ("mlp", 3, 32),
]


@pytest.mark.parametrize("arch,channels,size", CASES)
def test_output_is_logits_of_shape_batch_by_classes(arch, channels, size):
    torch.manual_seed(0)
    net = build_model(arch, 7, in_channels=channels, image_size=size)
    out = net(torch.randn(3, channels, size, size))
    assert out.shape == (3, 7) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("arch", ["preact18", "resnet34"])
def test_resnets_accept_cifar_sized_inputs(arch):
    net = build_model(arch, 10).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def _bn(c):
    return 2 * c  # weight and bias


def _preact_resnet_count(blocks, k, cin=3, widths=(64, 128, 256, 512)):
    total, c = 9 * cin * widths[0], widths[0]
    for i, (n, w) in enumerate(zip(blocks, widths)):
        for j in range(n):
            total += _bn(c) + 9 * c * w + _bn(w) + 9 * w * w
            if (i > 0 and j == 0) or c != w:
                total += c * w  # 1x1 projection, no BN in the pre-activation block
            c = w
    return total + _bn(c) + c * k + k


def _resnet_count(blocks, k, cin=3, widths=(64, 128, 256, 512)):
    total, c = 9 * cin * widths[0] + _bn(widths[0]), widths[0]
    for i, (n, w) in enumerate(zip(blocks, widths)):
        for j in range(n):
            total += 9 * c * w + _bn(w) + 9 * w * w + _bn(w)
            if (i > 0 and j == 0) or c != w:
                total += c * w + _bn(w)  # 1x1 projection + BN
            c = w
    return total + c * k + k


@pytest.mark.parametrize("k", [10, 100])
def test_parameter_counts_follow_the_architecture_description(k):
    assert count_parameters(build_model("preact18", k)) == _preact_resnet_count((2, 2, 2, 2), k)
    assert count_parameters(build_model("resnet34", k)) == _resnet_count((3, 4, 6, 3), k)


def test_parameter_counts_are_in_the_published_ballpark():
    # widely quoted sizes of the CIFAR variants with 10 classes: PreActResNet18 ~11.2M, ResNet34 ~21.3M;
    # 1% covers the rounding of those quotes
    assert count_parameters(build_model("preact18", 10)) == pytest.approx(11.2e6, rel=0.01)
    assert count_parameters(build_model("resnet34", 10)) == pytest.approx(21.3e6, rel=0.01)


def test_mlp_size_is_set_by_width_and_depth():
    net = build_model("mlp", 10, in_channels=1, image_size=28, width=64, depth=3)
    assert count_parameters(net) == (784 * 64 + 64) + 2 * (64 * 64 + 64) + (64 * 10 + 10)


@pytest.mark.parametrize("arch,channels,size", CASES)
def test_gradient_reaches_every_parameter(arch, channels, size):
    torch.manual_seed(0)
    net = build_model(arch, 5, in_channels=channels, image_size=size)
    x = torch.randn(4, channels, size, size, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(net(x), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("arch,channels,size", [("preact18", 3, 16), ("resnet34", 3, 8), ("cnn", 1, 28), ("mlp", 1, 28)])
def test_channels_last_gives_the_same_logits(arch, channels, size):
    torch.manual_seed(0)
    net = build_model(arch, 10, in_channels=channels, image_size=size).eval()
    x = torch.randn(2, channels, size, size)
    with torch.no_grad():
        ref = net(x)
        net_cl = net.to(memory_format=torch.channels_last)
        out = net_cl(x.contiguous(memory_format=torch.channels_last))
    assert out.shape == ref.shape
    # same maths, different summation order in the convolution kernels: float32 round-off only
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_invalid_arguments_raise_valueerror():
    with pytest.raises(ValueError, match="arch must be one of"):
        build_model("vgg16", 10)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['depth'\] for arch='cnn'"):
        build_model("cnn", 10, depth=3)
    with pytest.raises(ValueError, match="num_classes must be >= 2"):
        build_model("mlp", 1)
    with pytest.raises(ValueError, match="in_channels must be a positive integer"):
        build_model("cnn", 10, in_channels=0)
    with pytest.raises(ValueError, match="image_size must be >= 8"):
        build_model("cnn", 10, image_size=4)
    with pytest.raises(ValueError, match="MLP expects inputs with"):
        build_model("mlp", 10, in_channels=1, image_size=28)(torch.zeros(1, 3, 32, 32))
    assert set(ARCHITECTURES) == {"preact18", "preact18_authors", "resnet34", "cnn", "mlp", "fast"}


def _authors_preact18_layers(k):
    """The parameterised layers of PreActResNet18 in the authors' model/PreResNet.py, in order, as
    (kind, weight shape) read off that file: conv1 + bn1 stem; per block bn1, conv1, bn2, conv2
    (+ a bias-free 1x1 shortcut conv when the shape changes, no shortcut BN); linear; no final BN."""
    layers = [("conv", (64, 3, 3, 3)), ("bn", (64,))]
    cin = 64
    for stage, w in enumerate((64, 128, 256, 512)):
        for j in range(2):
            stride = 2 if stage > 0 and j == 0 else 1
            layers += [("bn", (cin,)), ("conv", (w, cin, 3, 3)), ("bn", (w,)), ("conv", (w, w, 3, 3))]
            if stride != 1 or cin != w:
                layers.append(("conv", (w, cin, 1, 1)))
            cin = w
    return layers + [("linear", (k, 512))]


@pytest.mark.parametrize("k", [10, 100])
def test_preact18_authors_has_the_released_layer_list(k):
    net = build_model("preact18_authors", k)
    kinds = {torch.nn.Conv2d: "conv", torch.nn.BatchNorm2d: "bn", torch.nn.Linear: "linear"}
    got = [(kinds[type(m)], tuple(m.weight.shape)) for m in net.modules() if type(m) in kinds]
    assert got == _authors_preact18_layers(k)
    assert all(m.bias is None for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    # He et al.'s variant minus its final BN (2 * 512) plus the stem BN (2 * 64)
    assert count_parameters(net) == count_parameters(build_model("preact18", k)) - 1024 + 128
    # and the count from the layer list itself: weights, BN weight + bias, linear bias
    expected = sum(int(torch.tensor(shape).prod()) * (2 if kind == "bn" else 1) for kind, shape in _authors_preact18_layers(k))
    assert count_parameters(net) == expected + k


def test_preact18_authors_shortcut_carries_the_preactivated_input():
    torch.manual_seed(0)
    net = build_model("preact18_authors", 10).eval()
    block = net.layers[1]  # an identity block of the first stage
    with torch.no_grad():
        for bn in (block.bn1, block.bn2):  # non-trivial BN statistics so ReLU(BN(x)) != x
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
        x = torch.randn(2, 64, 8, 8)
        pre = torch.relu(block.bn1(x))
        expected = block.conv2(torch.relu(block.bn2(block.conv1(pre)))) + pre
        torch.testing.assert_close(block(x), expected, rtol=0, atol=0)  # the same ops in the same order
        # the whole net: stem conv-BN-ReLU, blocks, pooling, linear, no final BN-ReLU
        z = torch.randn(2, 3, 32, 32)
        out = net.layers(torch.relu(net.bn1(net.conv1(z))))
        torch.testing.assert_close(net(z), net.linear(out.mean(dim=(2, 3))), rtol=1e-6, atol=1e-6)
