"""Fisher information and natural-gradient descent (CATALOGUE A5, J1, J2; S2:662-745).

The Fisher information of a parametric model p(x | θ) is the covariance of the score
s(x; θ) = ∇_θ log p(x | θ) under the model (B:3648-3672):

    F(θ) = E_{x ~ p(x|θ)}[s sᵀ] = −E[∇² log p] = ∇²_{θ′} KL(p_θ ‖ p_θ′) |_{θ′ = θ}     (J1)

so KL(p_θ ‖ p_{θ+h}) ≈ ½ hᵀ F h. Four ways to get it are here, each with its use:

* exactly, for an exponential family in its natural parameters: F(η) = ∇²A(η) = Cov[t]
  (``ExponentialFamily.fisher_information``); in other coordinates θ with η = η(θ):
  F(θ) = Jᵀ ∇²A J, J = ∂η/∂θᵀ (Eq. B.12) — ``exponential_family_fisher``;
* as the Hessian of a closed-form KL at θ′ = θ, for any model with one (``kl_hessian``);
* by Monte Carlo, E_model[s sᵀ] from samples of the model (``monte_carlo_fisher``);
* the *empirical* Fisher, the average of s sᵀ over the *data* (``empirical_fisher``). It is
  a different matrix (CATALOGUE §4 S2-17: the slide's E[∇L ∇Lᵀ] is this one), equal to the
  Fisher only when the model is the data distribution; kept because it is cheap and common.

Scores are computed per sample with ``torch.func.vmap(torch.func.grad(...))`` over a flat
parameter vector θ ∈ R^P; ``FlatParameters`` gives that view of a ``torch.nn.Module`` through
``torch.func.functional_call`` so that small networks get Fisher matrices too.

Natural-gradient descent (J2) steps along −F⁻¹∇L: the steepest descent direction when step
length is measured by KL rather than Euclidean distance, so (to first order in the step) the
trajectory in *distribution space* does not depend on how the model is parameterised
(Amari 1998). At a finite step size lr the invariance holds up to O(lr²) per step: two
parameterisations take steps that agree to first order and differ at second order through the
curvature of the map between them. ``NaturalGradient`` is a ``torch.optim.Optimizer`` that
solves (F + λI) d = ∇L with damping λ and takes θ ← θ − lr d.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from genmodels._validation import check_nonnegative_float, check_positive_int
from genmodels.families.base import ExponentialFamily
from genmodels.linalg import add_diagonal, psd_solve, symmetrize

#: log p(x | θ) for ONE datum: (θ: (P,), datum: a tensor or tuple of tensors) → 0-d tensor.
LogProb = Callable[[Tensor, Any], Tensor]

__all__ = [
    "FlatParameters",
    "LogProb",
    "NaturalGradient",
    "empirical_fisher",
    "exponential_family_fisher",
    "kl_hessian",
    "monte_carlo_fisher",
    "natural_gradient_step",
    "per_sample_scores",
    "score_outer_product",
]


# ------------------------------------------------------------------------- Fisher matrices
def per_sample_scores(log_prob: LogProb, theta: Tensor, data: Any) -> Tensor:
    """s(x_n; θ) = ∇_θ log p(x_n | θ) for every datum, by ``vmap(grad(log_prob))``.

    theta: (P,); data: a tensor (N, ...) or a tuple of tensors with leading N → (N, P)."""
    return torch.func.vmap(torch.func.grad(log_prob), in_dims=(None, 0))(theta, data)


def score_outer_product(scores: Tensor) -> Tensor:
    """(1/N) Σ_n s_n s_nᵀ. scores: (N, P) → (P, P)."""
    return symmetrize(scores.T @ scores / scores.shape[0])


def empirical_fisher(log_prob: LogProb, theta: Tensor, data: Any) -> Tensor:
    """The empirical Fisher (1/N) Σ_n s(x_n) s(x_n)ᵀ over the *data* x_n. → (P, P).

    Not the Fisher information unless the data come from p(x | θ) (CATALOGUE §4 S2-17)."""
    return score_outer_product(per_sample_scores(log_prob, theta.detach(), data))


def monte_carlo_fisher(log_prob: LogProb, sample: Callable[[Tensor, int, torch.Generator | None],
                                                          Any],
                       theta: Tensor, num_samples: int,
                       generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """F(θ) ≈ (1/S) Σ_s s(x_s) s(x_s)ᵀ with x_s ~ p(x | θ) (B:3654; S2:696 corrected).

    sample(θ, S, generator) draws S model samples (a tensor or tuple with leading S).
    Returns (F̂ (P, P), its elementwise standard error (P, P)) — the estimate is unbiased, and
    a check ``|F̂ − F| < 6 · se`` fails with probability ~1e-9 per entry under normality."""
    num_samples = check_positive_int(num_samples, "num_samples", minimum=2)
    theta = theta.detach()
    with torch.no_grad():
        x = sample(theta, num_samples, generator)
    s = per_sample_scores(log_prob, theta, x)
    prod = s[:, :, None] * s[:, None, :]  # (S, P, P)
    return score_outer_product(s), prod.std(0) / math.sqrt(num_samples)


def kl_hessian(kl: Callable[[Tensor, Tensor], Tensor], theta: Tensor) -> Tensor:
    """∇²_{θ′} KL(p_θ ‖ p_θ′) at θ′ = θ, by ``torch.func.hessian`` (J1; S2:700-745).

    kl(θ, θ′) → 0-d tensor, a differentiable KL divergence (e.g. ``bregman_kl`` through a
    parameter map, or ``torch.distributions.kl_divergence``). theta: (P,) → (P, P). This is the
    Fisher information of the model at θ for any parameterisation."""
    theta = theta.detach()

    def kl_to(theta2: Tensor) -> Tensor:
        return kl(theta, theta2)

    return symmetrize(torch.func.hessian(kl_to)(theta))


def exponential_family_fisher(family: type[ExponentialFamily],
                              to_natural: Callable[[Tensor], Tensor], theta: Tensor) -> Tensor:
    """F(θ) = Jᵀ ∇²A(η(θ)) J with J = ∂η/∂θᵀ (Eq. B.12), exact, for an exponential family
    parameterised by θ through η = to_natural(θ). theta: (P,) → (P, P)."""
    theta = theta.detach()
    eta = to_natural(theta)
    J = torch.func.jacfwd(to_natural)(theta)  # (P_η, P)
    return symmetrize(J.T @ family.fisher_from_natural(eta) @ J)


# ------------------------------------------------------------------ flat view of a module
class FlatParameters:
    """A flat vector θ ∈ R^P view of a module's parameters, for Fisher matrices of networks.

    ``vector()`` concatenates the parameters (in ``named_parameters`` order);
    ``call(θ, *inputs)`` runs the module with θ in their place (``functional_call``), which
    ``vmap`` and ``grad`` can transform; ``log_prob(fn)`` turns fn(output, target) → log p of
    one datum into a ``LogProb`` over data tuples (input, target)."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        if not named:
            raise ValueError("module has no trainable parameters.")
        self.names = [n for n, _ in named]
        self.shapes = [p.shape for _, p in named]
        self.sizes = [p.numel() for _, p in named]

    @property
    def size(self) -> int:
        """P."""
        return sum(self.sizes)

    def vector(self) -> Tensor:
        params = dict(self.module.named_parameters())
        return torch.cat([params[n].detach().reshape(-1) for n in self.names])

    def unflatten(self, theta: Tensor) -> dict[str, Tensor]:
        parts = torch.split(theta, self.sizes)
        return {n: p.reshape(s) for n, p, s in zip(self.names, parts, self.shapes)}

    def call(self, theta: Tensor, *inputs: Any) -> Any:
        return torch.func.functional_call(self.module, self.unflatten(theta), inputs)

    def log_prob(self, fn: Callable[[Any, Any], Tensor]) -> LogProb:
        """LogProb(θ, (input, target)) = fn(module_θ(input), target)."""

        def lp(theta: Tensor, datum: Any) -> Tensor:
            x, y = datum
            return fn(self.call(theta, x), y)

        return lp


# ---------------------------------------------------------------------- natural gradient
def natural_gradient_step(grad: Tensor, fisher: Tensor, lr: float,
                          damping: float = 1e-4) -> Tensor:
    """The update h = −lr (F + λI)⁻¹ ∇L (J2; S2:690), by a Cholesky solve.

    The damping λ ≥ 0 bounds the step where F is singular or poorly estimated (e.g. the
    overcomplete categorical or the flattened full-covariance Gaussian, whose Fisher is
    singular along directions that do not change the distribution). grad: (P,);
    fisher: (P, P) → (P,)."""
    if fisher.shape != (grad.shape[0], grad.shape[0]):
        raise ValueError(f"fisher must have shape ({grad.shape[0]}, {grad.shape[0]}) to match "
                         f"the {grad.shape[0]} parameters, got {tuple(fisher.shape)}.")
    if not bool(torch.isfinite(fisher).all()):
        raise ValueError("the Fisher matrix contains NaN or infinite entries.")
    a = add_diagonal(symmetrize(fisher), damping) if damping > 0 else fisher
    try:
        return -lr * psd_solve(a, grad[:, None])[:, 0]
    except ValueError:
        raise ValueError(
            f"the Fisher matrix plus damping {damping:g}·I is not positive definite (the Fisher "
            "is singular, or the parameters left the model's domain); increase damping or "
            "lower the step size."
        ) from None


class NaturalGradient(torch.optim.Optimizer):
    """Natural-gradient descent θ ← θ − lr (F + λI)⁻¹ ∇L(θ) (J2), as a torch optimiser.

    The Fisher information F is over the flat concatenation of every parameter handed to the
    optimiser (one parameter group, in order). Give it one of two ways:

    * ``fisher``: a callable returning the (P, P) Fisher at the current parameters — exact
      (``∇²A``, Eq. B.12, a Gauss–Newton form, ``kl_hessian``) or an estimate;
    * ``log_probs``: a closure returning a (S,) tensor of per-sample log-likelihoods
      log p(x_s | θ) at the current parameters; F = (1/S) Σ_s s_s s_sᵀ with the scores from
      batched autograd. Model samples x_s give the Monte Carlo Fisher; data give the
      empirical Fisher (not the Fisher; see the module docstring).

    lr: step size (1 gives Fisher scoring for a likelihood objective). damping: λ ≥ 0.
    ``step(closure)`` follows the torch convention: the closure re-evaluates the loss and calls
    ``backward`` (it is optional when the gradients are already in ``.grad``).
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float = 1.0,
                 damping: float = 1e-4, *, fisher: Callable[[], Tensor] | None = None,
                 log_probs: Callable[[], Tensor] | None = None) -> None:
        lr = check_nonnegative_float(lr, "lr", strictly=True)
        damping = check_nonnegative_float(damping, "damping")
        if (fisher is None) == (log_probs is None):
            raise ValueError("give exactly one of fisher= (a callable returning the Fisher "
                             "matrix) and log_probs= (a closure of per-sample log-likelihoods).")
        super().__init__(params, {"lr": lr, "damping": damping})
        if len(self.param_groups) != 1:
            raise ValueError("NaturalGradient takes one parameter group (the Fisher couples "
                             "all parameters).")
        self._fisher = fisher
        self._log_probs = log_probs
        #: the most recent update h = −lr (F + λI)⁻¹∇L, flat (P,).
        self.last_step: Tensor | None = None

    def _params(self) -> list[Tensor]:
        return list(self.param_groups[0]["params"])

    def fisher_matrix(self) -> Tensor:
        """F at the current parameters, from the callable or the log-likelihood closure."""
        if self._fisher is not None:
            return self._fisher()
        assert self._log_probs is not None
        params = self._params()
        with torch.enable_grad():
            lp = self._log_probs()
            if lp.dim() != 1 or lp.shape[0] < 1:
                raise ValueError("log_probs() must return a (S,) tensor of per-sample "
                                 f"log-likelihoods, got shape {tuple(lp.shape)}.")
            eye = torch.eye(lp.shape[0], dtype=lp.dtype, device=lp.device)
            grads = torch.autograd.grad(lp, params, grad_outputs=eye, is_grads_batched=True,
                                        allow_unused=True)
        s = torch.cat([(g if g is not None else torch.zeros(lp.shape[0], *p.shape,
                                                            dtype=lp.dtype, device=lp.device)
                        ).reshape(lp.shape[0], -1) for g, p in zip(grads, params)], 1)
        return score_outer_product(s)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        group = self.param_groups[0]
        params = self._params()
        grad = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                          for p in params])
        F = self.fisher_matrix().detach()
        h = natural_gradient_step(grad, F.to(grad), group["lr"], group["damping"])
        offset = 0
        for p in params:
            n = p.numel()
            p.add_(h[offset: offset + n].view_as(p))
            offset += n
        self.last_step = h
        return loss
