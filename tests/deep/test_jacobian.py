"""The Jacobian Gram matrix of sopdeep.jacobian against closed forms and finite differences."""

import numpy as np
import pytest
import torch

from soptheory import coherence, numerical_rank
from sopdeep.jacobian import gram_factor_from_gram, jacobian_gram, jacobian_singular_values, rank_and_coherence

# float64 throughout: the closed forms are evaluated in float64 too, so the two sides differ by
# summation-order rounding only (~1e-15 relative); 1e-10 leaves a wide margin.
RTOL_EXACT = 1e-10


@pytest.mark.parametrize("method", ["vmap", "linear"])
def test_linear_model_gram_is_weighted_input_gram(method):
    # f_i = w_i^T (A x_i + b): d f_i / dA = w_i x_i^T, d f_i / db = w_i, so
    # K_ij = (w_i . w_j) (x_i . x_j + 1)
    torch.manual_seed(0)
    lin = torch.nn.Linear(5, 3)
    x = torch.randn(7, 5, dtype=torch.float64)
    w = torch.randn(7, 3, dtype=torch.float64)
    K = jacobian_gram(lin, x, w, method=method)
    X, W = x.numpy(), w.numpy()
    expected = (W @ W.T) * (X @ X.T + 1.0)
    np.testing.assert_allclose(K, expected, rtol=RTOL_EXACT, atol=RTOL_EXACT * np.abs(expected).max())


@pytest.mark.parametrize("method", ["vmap", "linear"])
def test_one_hidden_layer_network_closed_form(method):
    # f_i = w_i^T (B relu(A x_i + a) + b); with h_i = relu(A x_i + a), D_i = diag(1[A x_i + a > 0]),
    # grad_B = w_i h_i^T, grad_b = w_i, grad_A = D_i B^T w_i x_i^T, grad_a = D_i B^T w_i, so
    # K_ij = (w_i.w_j)(h_i.h_j + 1) + (g_i.g_j)(x_i.x_j + 1) with g_i = D_i B^T w_i.
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2))
    x = torch.randn(9, 4, dtype=torch.float64)
    w = torch.randn(9, 2, dtype=torch.float64)
    # tiny blocks: exercises the block pairs of "vmap"
    K = jacobian_gram(net, x, w, method=method, max_block_bytes=200)
    A, a = net[0].weight.detach().double().numpy(), net[0].bias.detach().double().numpy()
    B = net[2].weight.detach().double().numpy()
    X, W = x.numpy(), w.numpy()
    pre = X @ A.T + a
    H = np.maximum(pre, 0)
    G = (pre > 0) * (W @ B)
    expected = (W @ W.T) * (H @ H.T + 1) + (G @ G.T) * (X @ X.T + 1)
    np.testing.assert_allclose(K, expected, rtol=RTOL_EXACT, atol=RTOL_EXACT * np.abs(expected).max())


def test_cnn_with_batchnorm_against_finite_differences():
    # J by central differences of the eval-mode network (float64), one parameter at a time on a
    # tiny CNN; truncation error O(h^2 |f'''|) ~ 1e-12 and rounding ~ eps/h ~ 1e-10 at h = 1e-5,
    # so 1e-6 relative is safe.
    from sopdeep.models import build_model

    torch.manual_seed(2)
    net = build_model("cnn", 3, in_channels=1, image_size=8, width=2).double()
    net.train()
    with torch.no_grad():
        net(torch.randn(16, 1, 8, 8, dtype=torch.float64))  # non-trivial running statistics
    net.eval()
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    w = torch.tensor([[1.0, -1.0, 0.0]] * 4, dtype=torch.float64)
    params = [p for p in net.parameters()]
    h = 1e-5
    rows = []
    with torch.no_grad():
        for p in params:
            flat = p.view(-1)
            for j in range(flat.numel()):
                old = flat[j].item()
                flat[j] = old + h
                fp = (net(x) * w).sum(1)
                flat[j] = old - h
                fm = (net(x) * w).sum(1)
                flat[j] = old
                rows.append(((fp - fm) / (2 * h)).numpy())
    J = np.stack(rows, axis=1)
    K = jacobian_gram(net, x, w)
    np.testing.assert_allclose(K, J @ J.T, rtol=1e-6, atol=1e-6 * np.abs(K).max())
    assert not net.training  # eval mode restored


def test_factor_rank_and_coherence_match_those_of_j():
    rng = np.random.default_rng(3)
    J = rng.standard_normal((30, 4)) @ rng.standard_normal((4, 50))  # rank 4
    J[0] *= 10.0  # a coherent row
    K = J @ J.T
    F = gram_factor_from_gram(K)
    np.testing.assert_allclose(F @ F.T, K, rtol=1e-10, atol=1e-10 * np.abs(K).max())
    sv = np.linalg.svd(J, compute_uv=False)
    # eigenvalues of K carry ~eps*lambda_max absolute error, i.e. ~1e-8 sigma_max on the
    # singular values of the zero part; the nonzero ones agree to ~1e-12 relative
    np.testing.assert_allclose(jacobian_singular_values(K)[:4], sv[:4], rtol=1e-10)
    (row,) = rank_and_coherence(K, rtols=(1e-6,))
    assert row["rank"] == numerical_rank(J, rtol=1e-6) == 4
    assert row["mu"] == pytest.approx(coherence(J, rtol=1e-6), rel=1e-9)


@pytest.mark.parametrize("bad", [np.zeros((2, 3)), np.full((2, 2), np.nan)])
def test_bad_gram_refused(bad):
    with pytest.raises(ValueError, match="K must"):
        gram_factor_from_gram(bad)


def test_bad_weights_refused():
    with pytest.raises(ValueError, match="weights"):
        jacobian_gram(torch.nn.Linear(2, 2), torch.zeros(3, 2), torch.zeros(2, 2))


def test_linear_method_refuses_conv_nets():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="method='linear'"):
        jacobian_gram(net, torch.zeros(2, 1, 3, 3), torch.zeros(2, 2), method="linear")


def test_mlp_of_the_package_both_methods_agree():
    # the MLP of sopdeep.models (Flatten + Linear/ReLU): the fast path equals the generic one
    from sopdeep.models import build_model

    torch.manual_seed(4)
    net = build_model("mlp", 3, in_channels=1, image_size=4, width=5, depth=2)
    x = torch.randn(6, 1, 4, 4)
    w = torch.randn(6, 3)
    K1 = jacobian_gram(net, x, w, method="vmap")
    K2 = jacobian_gram(net, x, w, method="linear")
    np.testing.assert_allclose(K1, K2, rtol=RTOL_EXACT, atol=RTOL_EXACT * np.abs(K1).max())
