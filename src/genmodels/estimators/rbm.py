"""``BernoulliRBM``: scikit-learn's ``BernoulliRBM`` interface over genmodels' harmonium.

Switching from scikit-learn is an import change::

    from genmodels import BernoulliRBM   # instead of sklearn.neural_network.BernoulliRBM
    H = BernoulliRBM(n_components=64, random_state=0).fit_transform(X)

The same names and defaults (``n_components``, ``learning_rate``, ``batch_size``, ``n_iter``,
``verbose``, ``random_state``; ``fit``, ``partial_fit``, ``transform``, ``score_samples`` as the
pseudo-likelihood, ``gibbs``; ``components_``, ``intercept_hidden_``, ``intercept_visible_``),
and beyond them: ``method="pcd" | "cd" | "exact"`` with ``k`` Gibbs sweeps (book §10.2.2;
Tieleman 2008), ``momentum`` and ``weight_decay``, Gaussian or Poisson visible units
(``visible=``), and a true ``log_likelihood`` — exact when a layer can be enumerated, else
annealed importance sampling with its standard error (``genmodels.inference.partition``).

Training runs through ``learning.trainer`` (SGD on the Boltzmann gradient, Eq. 10.16, whose
learning rate multiplies the *mean* statistics of a batch, as scikit-learn's does), so
``verbose`` shows its progress bar. scikit-learn's PCD keeps ``batch_size`` persistent hidden
chains; here ``batch_size`` persistent *visible* chains (the same Markov chain, observed one
half-step later).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin

from genmodels._validation import (
    check_choice,
    check_nonnegative_float,
    check_positive_int,
    make_generator,
)
from genmodels.estimators._base import TorchEstimatorMixin, check_fitted, to_numpy
from genmodels.inference.partition import (
    PartitionEstimate,
    ais_log_partition,
    exact_log_partition,
)
from genmodels.learning.contrastive import (
    BoltzmannLearner,
    CDNegative,
    ExactNegative,
    NegativePhase,
    PersistentNegative,
)
from genmodels.learning.trainer import Trainer
from genmodels.models.harmonium import Harmonium

__all__ = ["BernoulliRBM"]

_VISIBLE = {"bernoulli": ("bernoulli", {}), "gaussian": ("gaussian", {"learn_scale": False}),
            "gaussian-learned": ("gaussian", {"learn_scale": True}), "poisson": ("poisson", {})}


def _epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The data order of one epoch of ``learning.trainer`` on one process: the permutation
    seeded by seed + epoch that ``sharded_batches`` splits into consecutive minibatches. (N,)"""
    g = torch.Generator()
    g.manual_seed(seed + epoch)
    return torch.randperm(n, generator=g).numpy().astype(np.int64)


class BernoulliRBM(ClassNamePrefixFeaturesOutMixin, TransformerMixin, TorchEstimatorMixin,
                   BaseEstimator):
    """A restricted Boltzmann machine with binary hidden units (book §3.1, §10.2).

    Parameters (scikit-learn's names and defaults first):
        n_components: number of hidden units H.
        learning_rate: SGD step on the mean batch gradient.
        batch_size: examples per minibatch (and the number of persistent chains).
        n_iter: epochs.
        verbose: > 0 shows the trainer's progress bar.
        random_state: seeds the initial weights (N(0, 0.01²)), the data order and the chains.
        method: ``"pcd"`` (default, as scikit-learn), ``"cd"`` (CD-k from the data) or
            ``"exact"`` (the exact gradient; a layer must be small enough to enumerate).
        k: Gibbs sweeps per update for CD/PCD.
        visible: ``"bernoulli"`` (binary data; values in [0, 1] are accepted as
            probabilities when fitting, as scikit-learn does), ``"gaussian"`` (unit variance;
            standardise the data first), ``"gaussian-learned"`` (σ learned) or ``"poisson"``
            (counts).
        momentum, weight_decay: of the SGD optimiser (Hinton 2010, §9–10).
        solver: ``"trainer"`` (the Boltzmann gradient through ``learning.trainer``),
            ``"compiled"`` (the same SGD update as a Numba kernel, ``models._rbm_numba``:
            binary visibles, CD/PCD, dtype float64 on the CPU: float64 parameters and SGD,
            float32 passes) or ``"auto"`` (compiled where it applies). The two draw
            different random numbers, so their fits differ by Monte Carlo noise, not in
            expectation.
        dtype, device: of the computation.

    Fitted attributes: ``components_`` (H, D) W; ``intercept_hidden_`` (H,) b_x;
    ``intercept_visible_`` (D,) b_y; ``model_`` the ``Harmonium``; ``persistent_chains_`` (PCD);
    ``n_features_in_``; ``train_history_`` (per epoch: the mean surrogate loss on the trainer
    path, the mean ‖ΔW‖² of the compiled kernel).
    """

    def __init__(self, n_components: int = 256, *, learning_rate: float = 0.1,
                 batch_size: int = 10, n_iter: int = 10, verbose: int = 0,
                 random_state: Any = None, method: str = "pcd", k: int = 1,
                 visible: str = "bernoulli", momentum: float = 0.0, weight_decay: float = 0.0,
                 solver: str = "auto", dtype: Any = "float64", device: Any = None) -> None:
        self.n_components = n_components
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.verbose = verbose
        self.random_state = random_state
        self.method = method
        self.k = k
        self.visible = visible
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.solver = solver
        self.dtype = dtype
        self.device = device

    # ------------------------------------------------------------------ validation
    def _check_params(self) -> None:
        check_positive_int(self.n_components, "n_components")
        check_nonnegative_float(self.learning_rate, "learning_rate", strictly=True)
        check_positive_int(self.batch_size, "batch_size")
        check_positive_int(self.n_iter, "n_iter")
        check_choice(self.method, "method", ("pcd", "cd", "exact"))
        check_positive_int(self.k, "k")
        check_choice(self.visible, "visible", tuple(_VISIBLE))
        check_nonnegative_float(self.momentum, "momentum")
        check_nonnegative_float(self.weight_decay, "weight_decay")
        check_choice(self.solver, "solver", ("auto", "compiled", "trainer"))
        if self.solver == "compiled" and not self._compiled_applies():
            raise ValueError("solver='compiled' needs visible='bernoulli', method 'cd' or 'pcd', "
                             "dtype float64 and a CPU device; use solver='trainer'.")

    def _compiled_applies(self) -> bool:
        return (self.visible == "bernoulli" and self.method in ("cd", "pcd")
                and self._torch_dtype == torch.float64
                and (self.device is None or torch.device(self.device).type == "cpu"))

    def _use_compiled(self) -> bool:
        return self.solver == "compiled" or (self.solver == "auto" and self._compiled_applies())

    def _seed(self) -> int:
        rs = self.random_state
        if rs is None:
            return int(torch.randint(0, 2**31 - 1, ()).item())
        if isinstance(rs, np.random.RandomState):
            return int(rs.randint(0, 2**31 - 1))
        return int(rs)

    def _data(self, X: Any, *, reset: bool, strict: bool = False) -> torch.Tensor:
        """X as (N, D); values checked for the visible units (for Bernoulli units, binary when
        ``strict`` — a likelihood — else in [0, 1])."""
        t = self._validate_X(X, reset=reset)
        if self.visible == "bernoulli" and not strict:
            if t.device.type == "cpu":  # one pass; the entries are located only when needed
                a = t.numpy()
                lo, hi = float(a.min()), float(a.max())
            else:
                lo, hi = (float(v) for v in torch.aminmax(t))
            if lo < 0 or hi > 1:
                bad = (t < 0) | (t > 1)
                idx = tuple(int(i) for i in torch.nonzero(bad)[0])
                raise ValueError(
                    f"X must hold values in [0, 1] for Bernoulli visible units (binary data or "
                    f"probabilities); {int(bad.sum())} entries do not, the first "
                    f"{float(t[idx])!r} at index {idx}. Binarise or rescale X, or use "
                    "visible='gaussian'.")
        elif hasattr(self, "model_"):
            self.model_.check_visible(t, "X")
        else:
            Harmonium(("bernoulli", 1), self._visible_spec(t.shape[1]),
                      dtype=self._torch_dtype).check_visible(t, "X")
        return t

    def _visible_spec(self, d: int) -> dict[str, Any]:
        kind, extra = _VISIBLE[self.visible]
        return {"kind": kind, "size": d, **extra}

    # ------------------------------------------------------------------ fitting
    def _init(self, d: int) -> None:
        seed = self._seed()
        self._generator = make_generator(seed)
        self.model_ = Harmonium(("bernoulli", int(self.n_components)), self._visible_spec(d),
                                seed=seed, dtype=self._torch_dtype)
        if self.device is not None:
            self.model_.to(self.device)
        negative: NegativePhase
        if self.method == "pcd":
            init = None
            if self.visible == "bernoulli":  # the layer's draw Bernoulli(σ(b_y)), made directly
                b_y = self.model_.b_y.detach()
                u = torch.rand(int(self.batch_size), d, generator=make_generator(seed + 1,
                               b_y.device), dtype=b_y.dtype, device=b_y.device)
                init = (u < torch.sigmoid(b_y)).to(b_y.dtype)
            negative = PersistentNegative(self.model_, int(self.batch_size), int(self.k),
                                          seed=seed + 1, init=init)
        elif self.method == "cd":
            negative = CDNegative(int(self.k))
        else:
            negative = ExactNegative()
            exact_log_partition(self.model_)  # fail now (ValueError) if not enumerable
        self._learner = BoltzmannLearner(self.model_, negative)
        self._epoch_seed = seed
        if hasattr(self, "_buffers"):
            del self._buffers
        self.train_history_: list[float] = []

    def _train(self, X: torch.Tensor, epochs: int, batch_size: int) -> None:
        lr, mom, wd = float(self.learning_rate), float(self.momentum), float(self.weight_decay)
        if self._use_compiled():
            self._train_compiled(X, epochs, batch_size, lr, mom, wd)
            return
        res = Trainer(self._learner, epochs=epochs, batch_size=batch_size, lr=lr,
                      optimizer=lambda p: torch.optim.SGD(p, lr=lr, momentum=mom,
                                                          weight_decay=wd, foreach=True),
                      seed=self._epoch_seed, progress=bool(self.verbose)).fit(X)
        self._epoch_seed += epochs
        self.train_history_ += res.history["train_loss"]
        self._publish()

    def _train_compiled(self, X: torch.Tensor, epochs: int, batch_size: int, lr: float,
                        mom: float, wd: float) -> None:
        """``epochs`` epochs of the compiled kernel, in place on the model's parameters, with
        the trainer's batch order (``sharded_batches``: a permutation seeded by seed + epoch)."""
        from genmodels.models._rbm_numba import cd_epochs

        m = self.model_
        n = X.shape[0]
        orders = np.stack([_epoch_order(n, self._epoch_seed, e) for e in range(epochs)])
        if not hasattr(self, "_buffers"):
            self._buffers = [np.zeros(tuple(p.shape)) for p in (m.weight, m.b_x, m.b_y)]
            self._first_step = True
        neg = self._learner.negative
        persistent = isinstance(neg, PersistentNegative)
        chains = (neg.chains.detach().numpy() if isinstance(neg, PersistentNegative)
                  else np.zeros((1, X.shape[1])))
        buf_w, buf_x, buf_y = self._buffers
        k = int(self.k)
        seed = int(torch.randint(0, 2**31 - 1, (), generator=self._generator))
        bar = None
        if self.verbose:
            from tqdm.auto import tqdm

            bar = tqdm(total=epochs, desc=type(self).__name__, unit="epoch")
        with torch.no_grad():
            W, bx, by = (p.detach().numpy() for p in (m.weight, m.b_x, m.b_y))
            # one kernel call for all epochs, or one per epoch for the progress bar (the
            # same numbers: the kernel draws epoch e from the stream seed + e)
            step = 1 if bar is not None else epochs
            for e in range(0, epochs, step):
                stat = cd_epochs(X.numpy(), orders[e:e + step], batch_size, W, bx, by, buf_w,
                                 buf_x, buf_y, chains, k, persistent, lr, mom, wd,
                                 self._first_step, seed + e)
                self._first_step = False
                self.train_history_ += [float(v) for v in stat]
                if bar is not None:
                    bar.update(1)
        if bar is not None:
            bar.close()
        self._epoch_seed += epochs
        self._publish()

    def _publish(self) -> None:
        m = self.model_  # copies: the compiled kernel updates the parameters in place
        self.components_ = to_numpy(m.weight).copy()
        self.intercept_hidden_ = to_numpy(m.b_x).copy()
        self.intercept_visible_ = to_numpy(m.b_y).copy()
        self._n_features_out = self.components_.shape[0]
        neg = self._learner.negative
        if isinstance(neg, PersistentNegative):
            self.persistent_chains_ = to_numpy(neg.chains).copy()

    def fit(self, X: Any, y: Any = None) -> BernoulliRBM:
        """Fit to X (N, D) for ``n_iter`` epochs of minibatch SGD."""
        self._check_params()
        t = self._data(X, reset=True)
        self._init(t.shape[1])
        self._train(t, int(self.n_iter), int(self.batch_size))
        return self

    def partial_fit(self, X: Any, y: Any = None) -> BernoulliRBM:
        """One gradient step on X as a single batch (as scikit-learn's ``partial_fit``); the
        persistent chains carry over between calls."""
        first = not hasattr(self, "model_")
        if first:
            self._check_params()
        t = self._data(X, reset=first)
        if first:
            self._init(t.shape[1])
        self._train(t, 1, t.shape[0])
        return self

    # ------------------------------------------------------------------ using the model
    def transform(self, X: Any) -> np.ndarray:
        """p̂(h = 1 | v), the hidden units' conditional means. (N, D) → (N, H)."""
        check_fitted(self, "components_")
        t = self._data(X, reset=False)
        with torch.no_grad():
            return to_numpy(self.model_.hidden.mean(self.model_.hidden_natural(t)))

    def gibbs(self, v: Any) -> np.ndarray:
        """One block Gibbs sweep v → h → v′ (scikit-learn's ``gibbs``). (N, D) → (N, D)."""
        check_fitted(self, "components_")
        t = self._data(v, reset=False)
        with torch.no_grad():
            h = self.model_.sample_hidden(t, self._generator)
            return to_numpy(self.model_.sample_visible(h, self._generator))

    def free_energy(self, X: Any) -> np.ndarray:
        """F(v), the free energy (B:1056): log p̂(v) = −F(v) − log Z. (N, D) → (N,)."""
        check_fitted(self, "components_")
        with torch.no_grad():
            return to_numpy(self.model_.free_energy(self._data(X, reset=False)))

    def score_samples(self, X: Any) -> np.ndarray:
        """For binary visible units, the pseudo-likelihood as scikit-learn computes it:
        D · log σ(F(ṽ) − F(v)) with ṽ the datum with one randomly chosen unit flipped
        (random_state seeds the choice) — a noisy proxy; ``log_likelihood`` is the real thing.
        For Gaussian or Poisson visible units (no flip), log p̂(v) = −F(v) − log Z with log Z
        from ``log_partition()`` (exact for H ≤ 24, else AIS)."""
        check_fitted(self, "components_")
        t = self._data(X, reset=False)
        m = self.model_
        if self.visible != "bernoulli":
            with torch.no_grad():
                return to_numpy(-m.free_energy(t) - self.log_partition().log_z)
        g = make_generator(self._seed() if self.random_state is not None else None)
        idx = torch.randint(0, t.shape[1], (t.shape[0],), generator=g)
        rows = torch.arange(t.shape[0])
        t_ = t.clone()
        t_[rows, idx] = 1 - t_[rows, idx]
        with torch.no_grad():
            diff = m.free_energy(t_) - m.free_energy(t)
            return to_numpy(t.shape[1] * torch.nn.functional.logsigmoid(diff))

    def log_partition(self, *, method: str = "auto", num_chains: int = 100,
                      num_temperatures: int = 10_000, data: Any = None,
                      seed: int = 0) -> PartitionEstimate:
        """log Z: exact when the hidden layer has at most 2²⁴ states (``method="auto"`` or
        ``"exact"``), else AIS (``"ais"``) from the base rates of ``data`` (default the
        visible biases' independent model)."""
        check_fitted(self, "components_")
        check_choice(method, "method", ("auto", "exact", "ais"))
        if method == "exact" or (method == "auto" and self.n_components <= 24):
            with torch.no_grad():
                return exact_log_partition(self.model_)
        base = None if data is None else self._data(data, reset=False, strict=True)
        return ais_log_partition(self.model_, num_chains=num_chains,
                                 num_temperatures=num_temperatures, data=base, seed=seed)

    def log_likelihood(self, X: Any, **kwargs: Any) -> tuple[float, float]:
        """The mean log p̂(v) over X and its standard error (0 when log Z is exact; for AIS the
        error of log Ẑ). Keyword arguments go to ``log_partition``. Binary data for Bernoulli
        visible units (ValueError otherwise)."""
        t = self._data(X, reset=False, strict=True)
        est = self.log_partition(**kwargs)
        with torch.no_grad():
            ll = -self.model_.free_energy(t).mean() - est.log_z
        return float(ll), float(est.stderr)

    def score(self, X: Any, y: Any = None) -> float:
        """The mean log-likelihood of X (``log_likelihood(X)[0]``: exact for H ≤ 24, else AIS
        with the defaults). scikit-learn's BernoulliRBM has no ``score``; this one is the true
        likelihood, not the pseudo-likelihood of ``score_samples``."""
        return self.log_likelihood(X)[0]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64"]
        return tags
