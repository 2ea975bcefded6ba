"""The gradient through the posterior and the information-theoretic view of EM (book §6.2,
§6.3.2; CATALOGUE D3, D7, D8).

* **Eq. 6.3** (Fisher's identity): the gradient of the marginal cross entropy is the
  gradient of the joint one averaged under the *hybrid joint* p̂(x | y; θ) p(y) held fixed,

      d/dθ E_Y[−log p̂(Y; θ)] = E_{X̂,Y}[−d/dθ log p̂(X̂, Y; θ)].                    (6.3)

  ``marginal_gradient_via_posterior`` computes the right-hand side for a model with an exact
  posterior — discrete (a mixture: Σ_k r_nk with r detached) or Gaussian (factor analysis:
  the expectation of a log-joint that is quadratic in x, E f(x) = f(m) + ½ tr(∇²f S), exact)
  — and ``marginal_gradient_autograd`` the left-hand side.
* **Eqs. 6.7–6.9 and 6.10–6.15**: the cross entropies, entropies and relative entropies of a
  discrete-latent model with data p(y) (the empirical distribution of the rows given) and a
  recognition distribution p̌(x | y), each from its own definition
  (``entropy_decomposition``), so the identities can be checked to rounding:

      H_{pp̂}[Y] = H_{(pp̂)p̂}[X̂, Y] − H_{(pp̂)p̂}[X̂|Y]                                (6.7)
      H_{pp̂}[Y] = H_{(pp̌)p̂}[X̌, Y] − H_{(pp̌)p̂}[X̌|Y]                                (6.8a)
      H_{pp̂}[Y] + H_{pp̌}[X̌|Y] = H_{(pp̌)p̂}[X̌, Y] − D_KL{p̌ ‖ p̂(x|y)}                (6.8b)
      H_{pp̂}[Y] + D_KL{p̌ ‖ p̂(x|y)} = H_{(pp̌)p̂}[X̌, Y] − H_{pp̌}[X̌|Y]                (6.9)

  and the description lengths of the sender–receiver game: code cost H_{(pp̌)p̂}[X̌],
  reconstruction cost H_{(pp̌)p̂}[Y|X̌], their sum = PRE + H_{pp̌}[X̌|Y] + H_{pp̂}[Y] (6.12–6.13)
  and, after the bits-back refund H_{pp̌}[X̌|Y], PRE + H_{pp̂}[Y] (6.15).

Notation: N data, K latent states (or dims).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

__all__ = [
    "EntropyDecomposition",
    "entropy_decomposition",
    "gaussian_expectation",
    "marginal_gradient_autograd",
    "marginal_gradient_via_posterior",
]


@contextlib.contextmanager
def _differentiable(model: Any, names: Sequence[str]) -> Iterator[list[Tensor]]:
    """Swap the named tensors of ``model`` (dotted paths, e.g. "emission.means") for leaf
    copies that require grad; restore the originals afterwards."""
    owners, saved, leaves = [], [], []
    for name in names:
        *path, attr = name.split(".")
        owner = model
        for p in path:
            owner = getattr(owner, p)
        value = getattr(owner, attr)
        if not isinstance(value, Tensor):
            raise ValueError(f"{name!r} is not a tensor of the model.")
        leaf = value.detach().clone().requires_grad_(True)
        owners.append((owner, attr))
        saved.append(value)
        leaves.append(leaf)
        setattr(owner, attr, leaf)
    try:
        yield leaves
    finally:
        for (owner, attr), value in zip(owners, saved):
            setattr(owner, attr, value)


def marginal_gradient_autograd(model: Any, y: Tensor, params: Sequence[str]
                               ) -> dict[str, Tensor]:
    """d/dθ of the marginal cross entropy −(1/N) Σ_n log p̂(y_n; θ) by autograd (the left
    side of Eq. 6.3). model: anything with ``log_marginal(y) -> (N,)``."""
    with _differentiable(model, params) as leaves:
        loss = -model.log_marginal(y).mean()
        grads = torch.autograd.grad(loss, leaves)
    return dict(zip(params, grads))


def gaussian_expectation(f: Callable[[Tensor, Tensor], Tensor], mean: Tensor, cov: Tensor,
                         y: Tensor) -> Tensor:
    """E_{x ~ N(mean_n, cov)}[f(x, y_n)] = f(m_n, y_n) + ½ tr(∇²_x f(m_n, y_n) cov): (N,).

    Exact when f is at most quadratic in x (a linear-Gaussian log-joint); f maps (N, K) and
    (N, D) to (N,) row by row. mean: (N, K); cov: (K, K), the same for every datum.
    """
    def one(m: Tensor, yn: Tensor) -> Tensor:
        return f(m[None], yn[None])[0]

    hess = torch.func.vmap(torch.func.hessian(one), in_dims=(0, 0))(mean, y)  # (N, K, K)
    return f(mean, y) + 0.5 * (hess * cov).sum((-2, -1))


def marginal_gradient_via_posterior(model: Any, y: Tensor, params: Sequence[str]
                                    ) -> dict[str, Tensor]:
    """The right side of Eq. 6.3: E_{p̂(X|Y;θ)p(Y)}[−d/dθ log p̂(X, Y; θ)], the posterior
    computed at θ and then held fixed (p(Y) the rows of y).

    model: either a mixture (``posterior(y).responsibilities`` (N, K) and ``log_joint(y)``
    (N, K)) or a linear-Gaussian latent model (``posterior(y)`` with ``mean`` (N, K) and
    ``covariance`` (K, K), and ``log_joint(x, y) -> (N,)``, e.g. ``FactorAnalyzer``).
    """
    with torch.no_grad():
        post = model.posterior(y)
    with _differentiable(model, params) as leaves:
        if hasattr(post, "responsibilities"):  # discrete latents: Σ_k r_nk log p̂(k, y_n)
            r = post.responsibilities.detach()
            complete = (r * model.log_joint(y)).sum(-1)
        else:  # Gaussian latents: the expected complete-data log-likelihood, exactly
            complete = gaussian_expectation(model.log_joint, post.mean.detach(),
                                            post.covariance.detach(), y)
        grads = torch.autograd.grad(-complete.mean(), leaves)
    return dict(zip(params, grads))


class EntropyDecomposition(NamedTuple):
    """Terms of §6.3.2 for a discrete-latent model (nats, averaged over the data rows).

    marginal_cross_entropy: H_{pp̂}[Y] = −E_Y log p̂(Y).
    hybrid_joint_cross_entropy: H_{(pp̂)p̂}[X̂, Y] = −E_{p̂(x|y)p(y)} log p̂(X̂, Y) (Eq. 6.7).
    posterior_entropy: H_{(pp̂)p̂}[X̂|Y] = −E_{p̂(x|y)p(y)} log p̂(X̂|Y).
    joint_cross_entropy: H_{(pp̌)p̂}[X̌, Y] = −E_{p̌(x|y)p(y)} log p̂(X̌, Y) (Eq. 6.8a).
    posterior_cross_entropy: H_{(pp̌)p̂}[X̌|Y] = −E_{p̌p} log p̂(X̌|Y).
    recognition_entropy: H_{pp̌}[X̌|Y] = −E_{p̌p} log p̌(X̌|Y) (the bits-back refund).
    posterior_relative_entropy: E_Y D_KL{p̌(·|Y) ‖ p̂(·|Y)} (PRE).
    free_energy: H_{(pp̌)p̂}[X̌, Y] − H_{pp̌}[X̌|Y] (Eq. 6.9, both sides).
    code_cost: H_{(pp̌)p̂}[X̌] = −E log p̂(X̌);  reconstruction_cost: H_{(pp̌)p̂}[Y|X̌]
        (Eq. 6.12); bits_back_cost: code + reconstruction − recognition entropy (Eq. 6.15).
    """

    marginal_cross_entropy: Tensor
    hybrid_joint_cross_entropy: Tensor
    posterior_entropy: Tensor
    joint_cross_entropy: Tensor
    posterior_cross_entropy: Tensor
    recognition_entropy: Tensor
    posterior_relative_entropy: Tensor
    free_energy: Tensor
    code_cost: Tensor
    reconstruction_cost: Tensor
    bits_back_cost: Tensor


def _xlogy(p: Tensor, log_q: Tensor) -> Tensor:
    """p log q with 0 log 0 = 0 (entries with p = 0 contribute nothing)."""
    return torch.where(p > 0, p * log_q, torch.zeros_like(p))


def entropy_decomposition(log_joint: Tensor, recognition: Tensor, log_prior: Tensor
                          ) -> EntropyDecomposition:
    """Every term of §6.3.2 from its definition.

    log_joint: (N, K) log p̂(x = k, y_n); recognition: (N, K) p̌(x = k | y_n), rows summing
    to 1 (zeros allowed: a hard assignment is a one-hot row, Eq. 6.11); log_prior: (K,)
    log p̂(x = k), for the code and reconstruction costs.
    """
    if log_joint.shape != recognition.shape or log_joint.dim() != 2 \
            or log_prior.shape != log_joint.shape[-1:]:
        raise ValueError("log_joint and recognition must both be (N, K) and log_prior (K,); "
                         f"got {tuple(log_joint.shape)}, {tuple(recognition.shape)} and "
                         f"{tuple(log_prior.shape)}.")
    log_marg = torch.logsumexp(log_joint, -1)  # log p̂(y_n)
    log_post = log_joint - log_marg[:, None]  # log p̂(k | y_n)
    post = log_post.exp()
    q = recognition
    log_q = torch.where(q > 0, q.log(), torch.zeros_like(q))

    def mean(t: Tensor) -> Tensor:  # E_Y Σ_k
        return t.sum(-1).mean()

    h_marg = -log_marg.mean()
    h_hybrid = -mean(_xlogy(post, log_joint))
    h_post = -mean(_xlogy(post, log_post))
    h_joint = -mean(_xlogy(q, log_joint))
    h_post_cross = -mean(_xlogy(q, log_post))
    h_recog = -mean(_xlogy(q, log_q))
    pre = mean(_xlogy(q, log_q) - _xlogy(q, log_post))
    code = -mean(_xlogy(q, log_prior.expand_as(q)))
    recon = -mean(_xlogy(q, log_joint - log_prior))
    return EntropyDecomposition(h_marg, h_hybrid, h_post, h_joint, h_post_cross, h_recog, pre,
                                h_joint - h_recog, code, recon, code + recon - h_recog)
