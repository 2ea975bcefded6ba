"""Deep belief nets: a stack of harmoniums (book §3.2, heading only, and §10.2.3, Eqs
10.24–10.27, Fig 10.2; CATALOGUE C5, I9 — filled from Hinton, Osindero & Teh 2006, "A fast
learning algorithm for deep belief nets", Neural Computation 18).

The model. Harmoniums ``rbms[0] … rbms[L−1]``, each one's visible layer the hidden layer of the
one below (h_0 = y the data). The top harmonium stays undirected; every lower one keeps only its
emission p̂(h_{l} | h_{l+1}; θ_l), so

    p̂(y, h_1, …, h_{L−1}) = p̂_top(h_{L−1}) Π_{l=0}^{L−2} p̂(h_l | h_{l+1}; θ_l),

with p̂_top(h_{L−1}) = exp{−F_top(h_{L−1})}/Z_top the visible marginal of the top harmonium
(its hidden layer h_L summed out, B:1056). Generation: a long block-Gibbs run in the top
harmonium, then one ancestral pass down (``sample``). Recognition: an upward pass through each
harmonium's posterior p̌(h_{l+1} | h_l; θ_l) (``recognize``) — exact for one layer, an
approximation (a factorial recognition model, B:1838) above.

Learning, greedily (§10.2.3). Train θ_0 on the data; keep its emission, replace its prior by a
new model p̂(h_1; θ_1) and use the old posterior as recognition. Its joint relative entropy is
(Eq. 10.25)

    JRE = KL{p̌(h_1 | y; θ_0) p(y) ‖ p̂(h_1; θ_1) p̂(y | h_1; θ_0)} = MRE + PRE
        = KL{p̌(h_1; θ_0) ‖ p̂(h_1; θ_1)} + c(θ_0),

with p̌(h_1; θ_0) = Σ_y p̌(h_1 | y; θ_0) p(y) the *aggregated posterior* (Eq. 10.24) and c free
of θ_1: so the second harmonium is trained, by CD, on draws from the aggregated posterior, and
recursively (Eqs 10.26–10.27) each new layer lowers a bound on the data's relative entropy.
"Unrolling" (Fig 10.2B): with θ_1 = θ_0ᵀ (W_1 = W_0ᵀ, the biases swapped) the new prior *is* the
old harmonium's hidden marginal, the two-layer DBN has exactly the old visible marginal and
PRE = 0, so the bound is tight there and a step that lowers the JRE cannot raise the MRE.
``jre_decomposition`` computes all of Eq. 10.25's terms exactly on a tiny model.

Evaluation. ``log_marginal`` by enumeration (tiny models); ``lower_bound`` the variational bound
log p̂(y) ≥ E_p̌[log p̂(y, h) − log p̌(h | y)] with log Z_top exact or by AIS (Salakhutdinov &
Murray 2008, §5). Fine-tuning by the up–down algorithm lives in ``learning``-style objects
here (``UpDown``), since it needs the untied recognition weights the DBN holds.

Shapes: N data, D = size of h_0, K_l = size of h_l; states bottom first: [y, h_1, …, h_L].
"""

from __future__ import annotations

from typing import Any, NamedTuple, cast

import torch
from torch import Tensor, nn

from genmodels._validation import check_positive_int
from genmodels.inference.partition import (
    PartitionEstimate,
    ais_log_partition,
    enumerate_layer,
    exact_log_partition,
)
from genmodels.io import SavableModule, class_path, import_class
from genmodels.models.harmonium import BernoulliRBM, Harmonium, Layer

__all__ = ["DBN", "DBNBound", "JREDecomposition", "bernoulli_dbn", "jre_decomposition",
           "layer_log_prob",
           "unrolled"]

#: The largest table of states the exact methods build (elements).
MAX_ENUMERATION = 2**24


def layer_log_prob(layer: Layer, natural: Tensor, x: Tensor) -> Tensor:
    """log p(x | η) = ηᵀT(x) + log h(x) − A(η) for a harmonium layer's conditional (Eq. 3.1):
    ``Layer.log_prob``, the layer family's log-density summed over units.
    natural: (*, S), x: (*, size), broadcasting → (*)."""
    return layer.log_prob(x, natural)


def unrolled(rbm: Harmonium) -> Harmonium:
    """The harmonium turned upside down (Fig 10.2B): its hidden layer becomes the visible one,
    W ↦ Wᵀ and the biases swap, so its *visible* marginal is ``rbm``'s *hidden* marginal."""
    flipped = Harmonium(rbm.visible.spec, rbm.hidden.spec, dtype=rbm.weight.dtype)
    flipped.set_parameters(weight=rbm.weight.detach().mT, b_x=rbm.b_y.detach(),
                           b_y=rbm.b_x.detach())
    return flipped.to(rbm.weight.device)


class DBNBound(NamedTuple):
    """The variational lower bound on log p̂(y) of a DBN.

    value: (N,) the bound per datum (a Monte Carlo estimate unless computed by enumeration).
    stderr: (N,) its Monte Carlo standard error over the recognition draws (0 if enumerated).
    log_z: the top harmonium's log Z it used (exact, or AIS with its own standard error).
    """

    value: Tensor
    stderr: Tensor
    log_z: PartitionEstimate

    def mean(self) -> tuple[float, float]:
        """The mean bound over data and its standard error: the recognition draws' error
        (independent per datum) and log Z's (shared by every datum) in quadrature."""
        n = self.value.numel()
        mc = self.stderr.detach().pow(2).sum() / n**2
        return float(self.value.detach().mean()), float((mc + self.log_z.stderr.pow(2)).sqrt())


class DBN(SavableModule):
    """A deep belief net over harmoniums ``rbms`` (bottom first).

    rbms: harmoniums with ``rbms[l].visible.size == rbms[l−1].hidden.size`` (or their saved
        form, ``{"class": ..., "config": ...}`` dicts).
    After ``untie()`` the lower layers' recognition weights are separate parameters
    (``rec_weights[l]``, ``rec_biases[l]``, initialised at the tied values), as the up–down
    algorithm needs; until then recognition uses each harmonium's own posterior.
    """

    def __init__(self, rbms: list[Any], *, untied: bool = False) -> None:
        super().__init__()
        if not isinstance(rbms, (list, tuple)) or not rbms:
            raise ValueError("rbms must be a non-empty list of harmoniums, bottom first.")
        built = []
        for i, r in enumerate(rbms):
            if isinstance(r, dict):
                cls = import_class(r["class"])
                r = cls(**r["config"])
            if not isinstance(r, Harmonium):
                raise ValueError(f"rbms[{i}] must be a Harmonium, got {type(r).__name__}.")
            built.append(r)
        for i in range(1, len(built)):
            below, above = built[i - 1], built[i]
            if above.visible.size != below.hidden.size or above.visible.kind != \
                    below.hidden.kind:
                raise ValueError(
                    f"rbms[{i}]'s visible layer ({above.visible.size} {above.visible.kind} "
                    f"units) must match rbms[{i - 1}]'s hidden layer ({below.hidden.size} "
                    f"{below.hidden.kind} units).")
        self.rbms = nn.ModuleList(built)
        self.rec_weights = nn.ParameterList()
        self.rec_biases = nn.ParameterList()
        if untied:
            self.untie()

    def get_config(self) -> dict[str, Any]:
        return {"rbms": [{"class": class_path(r), "config": r.get_config()}
                         for r in self.harmoniums], "untied": self.untied}

    # ------------------------------------------------------------------ structure
    @property
    def n_layers(self) -> int:
        """L, the number of harmoniums."""
        return len(self.rbms)

    def rbm(self, l: int) -> Harmonium:
        """The l-th harmonium (0 at the bottom; −1 the top)."""
        return cast(Harmonium, self.rbms[l])

    @property
    def harmoniums(self) -> list[Harmonium]:
        """The harmoniums, bottom first."""
        return [cast(Harmonium, r) for r in self.rbms]

    @property
    def top(self) -> Harmonium:
        return self.rbm(-1)

    @property
    def layer_sizes(self) -> list[int]:
        """[D, K_1, …, K_L]."""
        return [self.rbm(0).visible.size, *(r.hidden.size for r in self.harmoniums)]

    @property
    def untied(self) -> bool:
        return len(self.rec_weights) > 0

    def untie(self) -> DBN:
        """Give the lower layers recognition weights of their own (copies of the tied W_l and
        b_x,l), so generation and recognition can be fine-tuned apart. Returns self."""
        if self.untied:
            return self
        for r in self.harmoniums[:-1]:
            self.rec_weights.append(nn.Parameter(r.weight.detach().clone()))
            self.rec_biases.append(nn.Parameter(r.b_x.detach().clone()))
        return self

    def recognition_natural(self, l: int, h_below: Tensor) -> Tensor:
        """Natural parameters of p̌(h_{l+1} | h_l): the harmonium's η(h_l), or the untied
        R_l U(h_l) + r_l. (*, K_l) → (*, S_{l+1})."""
        rbm = self.rbm(l)
        if self.untied and l < self.n_layers - 1:
            return self.rec_biases[l] + rbm.visible.stats(h_below) @ self.rec_weights[l].mT
        return rbm.hidden_natural(h_below)

    def generative_natural(self, l: int, h_above: Tensor) -> Tensor:
        """Natural parameters of p̂(h_l | h_{l+1}; θ_l) = ζ_l(h_{l+1}). (*, K_{l+1}) → (*, S_l)."""
        return self.rbm(l).visible_natural(h_above)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def recognize(self, y: Tensor, generator: torch.Generator | None = None, *,
                  mean: bool = False) -> list[Tensor]:
        """The upward pass: [h_1, …, h_L] with h_{l+1} ~ p̌(h_{l+1} | h_l) (or, with ``mean``,
        the posterior means E[T(h_{l+1}) | h_l] propagated as if they were states)."""
        hs, h = [], y
        for l, rbm in enumerate(self.harmoniums):
            eta = self.recognition_natural(l, h)
            h = rbm.hidden.mean(eta) if mean else rbm.hidden.sample(eta, generator)
            hs.append(h)
        return hs

    @torch.no_grad()
    def sample(self, n: int, gibbs_steps: int = 1000, generator: torch.Generator | None = None
               ) -> tuple[list[Tensor], Tensor]:
        """Generation: ``gibbs_steps`` block-Gibbs sweeps in the top harmonium from random
        states, then one ancestral pass down. Returns ([h_1, …, h_L] each (n, K_l), y (n, D))."""
        state = self.top.sample(check_positive_int(n, "n"), gibbs_steps, generator)
        states = [state.y, state.x]  # [h_{L−1}, h_L]
        h = state.y
        for l in range(self.n_layers - 2, -1, -1):
            h = self.rbm(l).visible.sample(self.generative_natural(l, h), generator)
            states.insert(0, h)
        return states[1:], states[0]

    # ------------------------------------------------------------------ densities
    def top_log_partition(self, method: str = "exact", **kwargs: Any) -> PartitionEstimate:
        """log Z of the top harmonium: ``exact`` (enumeration) or ``ais`` (kwargs go to
        ``ais_log_partition``)."""
        if method == "exact":
            return exact_log_partition(self.top, **kwargs)
        if method == "ais":
            return ais_log_partition(self.top, **kwargs)
        raise ValueError(f"method must be 'exact' or 'ais', got {method!r}.")

    def log_joint(self, y: Tensor, hs: list[Tensor], log_z: Tensor) -> Tensor:
        """log p̂(y, h_1, …, h_{L−1}) = −F_top(h_{L−1}) − log Z_top + Σ_l log p̂(h_l | h_{l+1}).
        hs: [h_1, …, h_{L−1}] (at least L − 1 entries; h_L, if given, is ignored). → (*)."""
        states = [y, *hs[: self.n_layers - 1]]
        out = -self.top.free_energy(states[-1]) - log_z
        for l in range(self.n_layers - 1):
            rbm = self.rbm(l)
            out = out + layer_log_prob(rbm.visible, self.generative_natural(l, states[l + 1]),
                                       states[l])
        return out

    def log_recognition(self, y: Tensor, hs: list[Tensor]) -> Tensor:
        """log p̌(h_1, …, h_{L−1} | y) = Σ_l log p̌(h_{l+1} | h_l) over the lower layers."""
        states = [y, *hs[: self.n_layers - 1]]
        out = torch.zeros((), dtype=y.dtype, device=y.device)
        for l in range(self.n_layers - 1):
            out = out + layer_log_prob(self.rbm(l).hidden,
                                       self.recognition_natural(l, states[l]), states[l + 1])
        return out

    def _enumerate(self, l: int) -> Tensor:
        layer = self.rbm(l).visible if l < self.n_layers else self.rbm(-1).hidden
        n = layer.num_states
        if n is None or n > MAX_ENUMERATION:
            raise ValueError(f"layer {l} ({layer.size} {layer.kind} units) cannot be "
                             "enumerated; use lower_bound, which samples, for this model.")
        return layer.states(0, int(n))

    def log_marginal(self, y: Tensor) -> Tensor:
        """The exact log p̂(y), (*, D) → (*), by enumeration: the top harmonium's visible
        marginal (its log Z exact), then each emission summed out going down. Tiny models."""
        if self.n_layers == 1:
            return self.top.log_prob(y)
        states, probs = enumerate_layer(self.top, "visible")  # h_{L−1}
        log_m = probs.log()
        for l in range(self.n_layers - 2, 0, -1):  # down to h_1
            lower = self._enumerate(l)
            cond = layer_log_prob(self.rbm(l).visible, self.generative_natural(l, states)[:, None],
                                  lower[None])  # (M_above, M_below)
            log_m = torch.logsumexp(log_m[:, None] + cond, dim=0)
            states = lower
        emis = layer_log_prob(self.rbm(0).visible, self.generative_natural(0, states),
                              y[..., None, :])  # (*, M_1)
        return torch.logsumexp(log_m + emis, dim=-1)

    def lower_bound(self, y: Tensor, *, log_z: PartitionEstimate | None = None,
                    n_samples: int | None = 100, generator: torch.Generator | None = None
                    ) -> DBNBound:
        """The variational bound E_p̌[log p̂(y, h) − log p̌(h | y)] ≤ log p̂(y) (h the lower
        hidden layers, p̌ the upward pass). log_z: the top harmonium's (default exact).
        n_samples: recognition draws per datum, or None to enumerate h_1 (two-layer nets)."""
        lz = log_z if log_z is not None else self.top_log_partition("exact")
        if self.n_layers == 1:
            v = -self.top.free_energy(y) - lz.log_z
            return DBNBound(v, torch.zeros_like(v), lz)
        if n_samples is None:
            if self.n_layers != 2:
                raise ValueError("enumeration (n_samples=None) is for two-layer nets; give "
                                 "n_samples for deeper ones.")
            h1 = self._enumerate(1)[:, None]  # (M, 1, K_1)
            lp = self.log_joint(y, [h1], lz.log_z)  # (M, N)
            lq = layer_log_prob(self.rbm(0).hidden, self.recognition_natural(0, y), h1)
            q = lq.exp()
            v = (q * torch.where(q > 0, lp - lq, torch.zeros_like(lp))).sum(0)
            return DBNBound(v, torch.zeros_like(v), lz)
        S = check_positive_int(n_samples, "n_samples", minimum=2)
        with torch.no_grad():
            hs = self.recognize(y.expand(S, *y.shape), generator)
            lw = self.log_joint(y, hs, lz.log_z) - self.log_recognition(y, hs)  # (S, N)
        return DBNBound(lw.mean(0), lw.std(0) / S**0.5, lz)


# ------------------------------------------------------------------ Eq. 10.25, exactly
class JREDecomposition(NamedTuple):
    """Eq. 10.25's terms for a two-layer DBN on a data distribution, all exact (nats).

    jre: KL{p̌(h_1|y) p(y) ‖ p̂(h_1, y)}.  mre: KL{p(y) ‖ p̂(y)}.  pre: E_p(y) KL{p̌(h_1|y) ‖
    p̂(h_1|y)} ≥ 0.  prior_kl: KL{p̌(h_1) ‖ p̂(h_1; θ_1)} against the aggregated posterior.
    constant: c = jre − prior_kl, which depends on θ_0 only (Eq. 10.25).
    """

    jre: Tensor
    mre: Tensor
    pre: Tensor
    prior_kl: Tensor
    constant: Tensor


def jre_decomposition(dbn: DBN, y: Tensor, data_probs: Tensor) -> JREDecomposition:
    """Every term of Eq. 10.25 for a two-layer ``dbn`` and the data distribution putting mass
    ``data_probs`` (M,) on the rows of ``y`` (M, D), by enumeration of h_1 (differentiable)."""
    if dbn.n_layers != 2:
        raise ValueError(f"jre_decomposition is for two-layer DBNs, got {dbn.n_layers} layers.")
    p = data_probs / data_probs.sum()
    h1 = dbn._enumerate(1)  # (H, K_1)
    log_q = layer_log_prob(dbn.rbm(0).hidden, dbn.recognition_natural(0, y)[:, None],
                           h1[None])  # (M, H): log p̌(h_1 | y)
    log_prior = -dbn.top.free_energy(h1) - dbn.top_log_partition("exact").log_z  # (H,)
    log_emis = layer_log_prob(dbn.rbm(0).visible, dbn.generative_natural(0, h1)[None],
                              y[:, None])  # (M, H): log p̂(y | h_1)
    log_joint = log_prior + log_emis
    log_marg = torch.logsumexp(log_joint, dim=1)  # (M,)
    q = log_q.exp() * p[:, None]  # p̌(h_1, y) = p̌(h_1 | y) p(y)
    log_p = p.log()
    jre = (q * (log_q + log_p[:, None] - log_joint)).sum()
    mre = (p * (log_p - log_marg)).sum()
    pre = (q * (log_q - (log_joint - log_marg[:, None]))).sum()
    agg = q.sum(0)  # the aggregated posterior p̌(h_1) (Eq. 10.24)
    prior_kl = (agg * (agg.log() - log_prior)).sum()
    return JREDecomposition(jre, mre, pre, prior_kl, jre - prior_kl)


# ------------------------------------------------------------------ building nets
def bernoulli_dbn(layer_sizes: list[int], *, seed: int = 0, init_scale: float = 0.01,
                  dtype: torch.dtype | str = torch.float64) -> DBN:
    """A DBN of binary RBMs with ``layer_sizes`` [D, K_1, …, K_L]."""
    if not isinstance(layer_sizes, (list, tuple)) or len(layer_sizes) < 2:
        raise ValueError(f"layer_sizes must be [D, K_1, ...], got {layer_sizes!r}.")
    return DBN([BernoulliRBM(layer_sizes[i], layer_sizes[i + 1], seed=seed + i,
                             init_scale=init_scale, dtype=dtype)
                for i in range(len(layer_sizes) - 1)])
