"""The Jacobian Gram matrix (empirical NTK) of a network with one scalar output per sample.

For samples :math:`x_1..x_n` and output weights :math:`w_i \\in \\mathbb R^K`, the scalar output
is :math:`f_i(\\theta) = w_i^\\top \\mathrm{logits}(x_i; \\theta)` (``w_i = e_a - e_b``: a logit
difference; ``w_i = e_{y_i}``: the output at the given label), its Jacobian
:math:`J \\in \\mathbb R^{n \\times P}` (row i = :math:`\\nabla_\\theta f_i`) and the Gram matrix

.. math:: K = J J^\\top \\in \\mathbb R^{n \\times n} .

``J`` itself is never held. Two exact ways to form K:

- ``"vmap"`` (any network): per-sample gradients of a block of rows come from
  ``torch.func.vmap(grad(...))`` and the blocks are multiplied pairwise (a block is recomputed
  rather than stored, so memory is bounded by ``max_block_bytes`` whatever P is); cost
  O(n² P).
- ``"linear"`` (networks whose parameters all sit in ``nn.Linear`` layers, e.g. an MLP): the
  gradient of :math:`f_i` with respect to a layer's weight is the outer product
  :math:`\\delta_i a_i^\\top` of the gradient at its output and its input, so the layer adds
  :math:`(\\Delta\\Delta^\\top)\\odot(AA^\\top + 1)` to K (the 1: its bias). In eval mode samples do not
  interact, so one batched forward and one backward of :math:`\\sum_i f_i` give all
  :math:`\\delta_i, a_i`; cost O(n² Σ (in + out)) instead of O(n² Σ in·out).

Everything that depends on J only through its column space and singular values — the singular values
:math:`\\sigma_i(J) = \\sqrt{\\lambda_i(K)}`, the numerical rank, the coherence :math:`\\mu(J)` of
``soptheory.coherence`` and the sparse part ``s`` of the convex program (25) — is computed
from a factor ``F`` with :math:`FF^\\top = K` (same column space and singular values as J).

The network is evaluated in eval mode (BatchNorm with its running statistics), so each
:math:`f_i` depends on :math:`x_i` and θ only.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["jacobian_gram", "gram_factor_from_gram", "jacobian_singular_values", "rank_and_coherence"]


def _check_inputs(model, x, weights):
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not torch.is_tensor(x) or x.ndim < 1 or x.shape[0] < 1:
        raise ValueError("x must be a tensor with at least one sample along dim 0")
    weights = torch.as_tensor(weights)
    if weights.ndim != 2 or weights.shape[0] != x.shape[0]:
        raise ValueError(f"weights must have shape (n, K) with n = {x.shape[0]}, got {tuple(weights.shape)}")
    if not torch.isfinite(weights).all() or not torch.isfinite(x).all():
        raise ValueError("x and weights must be finite")
    return weights


def _linear_only(model):
    own = [m for m in model.modules() if any(True for _ in m.parameters(recurse=False))]
    return bool(own) and all(isinstance(m, torch.nn.Linear) for m in own)


def _gram_linear_layers(model, x, weights, dtype):
    """K = sum over nn.Linear layers of (Δ Δᵀ) ⊙ (A Aᵀ + 1[bias]) from one forward/backward."""
    params = {m: (m.weight.detach().to(dtype).requires_grad_(),
                  None if m.bias is None else m.bias.detach().to(dtype).requires_grad_())
              for m in model.modules() if isinstance(m, torch.nn.Linear)}
    inputs, outputs = {}, {}

    def hook(module, args, out):
        if args[0].ndim != 2:
            raise ValueError("method='linear' needs every nn.Linear to act on (batch, features) inputs")
        inputs[module] = args[0].detach()
        out.retain_grad()
        outputs[module] = out
        return out.clone()  # an in-place op after the layer (ReLU(inplace=True)) must not alter `out`

    from torch.func import functional_call

    handles = [m.register_forward_hook(hook) for m in params]
    try:
        state = {}
        for name, m in model.named_modules():
            if m in params:
                state[f"{name}.weight" if name else "weight"] = params[m][0]
                if params[m][1] is not None:
                    state[f"{name}.bias" if name else "bias"] = params[m][1]
        buffers = {k: (v.detach().to(dtype) if v.is_floating_point() else v) for k, v in model.named_buffers()}
        with torch.enable_grad():
            logits = functional_call(model, (state, buffers), (x,))
            (logits * weights).sum().backward()
    finally:
        for h in handles:
            h.remove()
    K = torch.zeros(x.shape[0], x.shape[0], dtype=dtype)
    for m in params:
        A, D = inputs[m], outputs[m].grad
        K += (D @ D.T) * (A @ A.T + (1.0 if params[m][1] is not None else 0.0))
    return K


def jacobian_gram(model, x, weights, *, method="auto", dtype=torch.float64, max_block_bytes=256 * 2**20,
                  progress=False):
    """Gram matrix :math:`K = JJ^\\top` of the scalar outputs :math:`f_i = w_i^\\top\\mathrm{logits}(x_i)`.

    Parameters
    ----------
    model : torch.nn.Module
        Maps (B, ...) to logits (B, K); evaluated in eval mode on a copy of its parameters.
    x : torch.Tensor of shape (n, ...)
        The inputs (already normalised as the model expects).
    weights : array_like of shape (n, K)
        Output weights per sample.
    method : {"auto", "vmap", "linear"}, default "auto"
        See the module docstring; "auto" is "linear" when every parameter sits in an
        ``nn.Linear`` layer, else "vmap". Both are exact (they agree to rounding).
    dtype : torch.dtype, default torch.float64
        Precision of the computation (float64: eigenvalues of K are resolved down to ~1e-13
        of the largest, so singular values of J down to ~1e-6 of the largest).
    max_block_bytes : int, default 256 MiB
        Memory of one block of per-sample gradients (rows of J); two blocks are alive at once.
    progress : bool, default False
        A tqdm bar over the block pairs.

    Returns
    -------
    ndarray of shape (n, n), float64, symmetric positive semi-definite.

    Examples
    --------
    >>> lin = torch.nn.Linear(3, 2, bias=False)
    >>> K = jacobian_gram(lin, torch.eye(3), torch.tensor([[1.0, -1.0]] * 3))
    >>> bool(np.allclose(K, 2 * np.eye(3)))  # row i of J: (e_i, -e_i), so K = 2 I
    True
    """
    from torch.func import functional_call, grad, vmap

    weights = _check_inputs(model, x, weights)
    if method not in ("auto", "vmap", "linear"):
        raise ValueError(f"method must be 'auto', 'vmap' or 'linear', got {method!r}")
    if method == "auto":
        method = "linear" if _linear_only(model) else "vmap"
    elif method == "linear" and not _linear_only(model):
        raise ValueError("method='linear' needs a model whose parameters all sit in nn.Linear layers")
    was_training = model.training
    model.eval()
    try:
        if method == "linear":
            K = _gram_linear_layers(model, x.to(dtype), weights.to(dtype), dtype).detach()
            K = K.double().numpy()
            return (K + K.T) / 2.0
        params = {k: v.detach().to(dtype) for k, v in model.named_parameters()}
        buffers = {k: (v.detach().to(dtype) if v.is_floating_point() else v) for k, v in model.named_buffers()}
        names = list(params)
        n_params = sum(p.numel() for p in params.values())
        x = x.to(dtype)
        weights = weights.to(dtype)

        def output(p, xi, wi):
            return (functional_call(model, (p, buffers), (xi[None],))[0] * wi).sum()

        per_sample = vmap(grad(output), in_dims=(None, 0, 0))
        itemsize = torch.finfo(dtype).bits // 8
        block = int(max(1, min(x.shape[0], max_block_bytes // max(1, n_params * itemsize))))

        def rows(lo):
            g = per_sample(params, x[lo:lo + block], weights[lo:lo + block])
            return torch.cat([g[name].reshape(g[name].shape[0], -1) for name in names], dim=1)

        n = x.shape[0]
        starts = list(range(0, n, block))
        K = torch.zeros(n, n, dtype=dtype)
        pairs = len(starts) * (len(starts) + 1) // 2
        from tqdm.auto import tqdm

        with torch.no_grad(), tqdm(total=pairs, desc="J J^T blocks", disable=not progress) as bar:
            for a, lo in enumerate(starts):
                Ja = rows(lo)
                K[lo:lo + block, lo:lo + block] = Ja @ Ja.T
                bar.update(1)
                for lo2 in starts[a + 1:]:
                    Jb = rows(lo2)
                    blk = Ja @ Jb.T
                    K[lo:lo + block, lo2:lo2 + block] = blk
                    K[lo2:lo2 + block, lo:lo + block] = blk.T
                    bar.update(1)
    finally:
        model.train(was_training)
    K = K.double().numpy()
    return (K + K.T) / 2.0


def _check_gram(K):
    K = np.asarray(K, dtype=float)
    if K.ndim != 2 or K.shape[0] != K.shape[1] or K.shape[0] == 0:
        raise ValueError(f"K must be a non-empty square matrix, got shape {K.shape}")
    if not np.all(np.isfinite(K)):
        raise ValueError("K must be finite")
    return K


def jacobian_singular_values(K):
    """Singular values of J from :math:`K = JJ^\\top`, descending: :math:`\\sqrt{\\max(\\lambda_i(K), 0)}`.

    Parameters
    ----------
    K : array_like of shape (n, n)

    Returns
    -------
    ndarray of shape (n,)
    """
    lam = np.linalg.eigvalsh(_check_gram(K))[::-1]
    return np.sqrt(np.clip(lam, 0.0, None))


def gram_factor_from_gram(K, rtol=0.0):
    """A factor F with :math:`FF^\\top = K` and the column space of J: ``F = V diag(σ)``.

    Parameters
    ----------
    K : array_like of shape (n, n)
        Symmetric positive semi-definite (small negative eigenvalues from rounding are set to 0).
    rtol : float, default 0.0
        Drop the columns with σ <= ``rtol * σ_max``. The eigenvalues of a float64 K carry an
        absolute error of about ``n * eps * λ_max``, so σ below ~``sqrt(n * eps) * σ_max`` (about
        5e-7 for n = 1000) is rounding, not J: pass e.g. 1e-6 before solving with F.

    Returns
    -------
    ndarray of shape (n, r)
        Columns ordered by decreasing σ; its singular values are those of J (r = n when
        ``rtol = 0``).

    Examples
    --------
    >>> J = np.array([[1.0, 2.0, 0.0], [0.0, 1.0, 1.0]])
    >>> F = gram_factor_from_gram(J @ J.T)
    >>> bool(np.allclose(F @ F.T, J @ J.T))
    True
    """
    lam, V = np.linalg.eigh(_check_gram(K))
    sig = np.sqrt(np.clip(lam[::-1], 0.0, None))
    keep = sig > float(rtol) * sig[0] if rtol > 0 else np.ones(sig.size, bool)
    return V[:, ::-1][:, keep] * sig[keep]


def rank_and_coherence(K, rtols=(1e-1, 1e-2, 1e-3)):
    """Numerical rank r and coherence μ(J) (``soptheory.coherence``) at relative tolerances.

    Rank at ``rtol``: the number of singular values of J above ``rtol * σ_max`` (σ from K).

    Parameters
    ----------
    K : array_like of shape (n, n)
    rtols : sequence of float in (0, 1)

    Returns
    -------
    list of dict
        One ``{"rtol", "rank", "mu"}`` per tolerance.
    """
    from soptheory import coherence

    F = gram_factor_from_gram(K)
    sv = jacobian_singular_values(K)
    if sv[0] <= 0:
        raise ValueError("K is zero: the rank is 0 and the coherence undefined")
    out = []
    for rtol in rtols:
        out.append({"rtol": float(rtol), "rank": int(np.sum(sv > rtol * sv[0])), "mu": coherence(F, rtol=rtol)})
    return out
