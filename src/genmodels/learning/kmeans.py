"""K-means: the hard, zero-variance limit of the Gaussian mixture (§7.1.1, Eq. 7.1).

With every covariance equal to ε·I and ε → 0, the responsibilities of a Gaussian mixture
(Eq. 2.6) become one-hot on the nearest mean whatever the mixing weights, and the M step's
weighted means become plain cluster means (CATALOGUE F2; errata E-24: the limit needs an
isotropic shared covariance, a non-isotropic one would give Mahalanobis assignments). That is
Lloyd's algorithm:

    E step:  x̌_n = argmin_k ‖y_n − μ_k‖²                       (Eq. 7.1)
    M step:  μ_k^(i+1) = mean of the y_n assigned to k

Both steps are vectorised: distances are one matrix product (‖y‖² − 2 y·μ + ‖μ‖²), means one
``index_add_``. Initialisation is k-means++ (Arthur & Vassilvitskii 2007, with the greedy
"several candidates per step" variant scikit-learn also uses), the "better alternative" the book
promises at B:1872.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import Tensor

from genmodels._validation import check_nonnegative_float, check_positive_int, make_generator


class KMeansResult(NamedTuple):
    """A K-means fit.

    centers: (K, D) cluster means μ_k.
    labels: (N,) the nearest centre of each datum (Eq. 7.1).
    inertia: Σ_n ‖y_n − μ_{labels_n}‖², a 0-d tensor.
    n_iter: Lloyd iterations run.
    converged: whether the centres stopped moving (shift² ≤ tol) or the labels stopped changing.
    """

    centers: Tensor
    labels: Tensor
    inertia: Tensor
    n_iter: int
    converged: bool


def squared_distances(y: Tensor, centers: Tensor) -> Tensor:
    """‖y_n − μ_k‖² by one matrix product, clamped at 0 against rounding.

    y: (N, D); centers: (K, D) → (N, K).
    """
    d = y.square().sum(-1, keepdim=True) - 2.0 * (y @ centers.T) + centers.square().sum(-1)
    return d.clamp_min(0.0)


def assign(y: Tensor, centers: Tensor) -> tuple[Tensor, Tensor]:
    """E step of K-means (Eq. 7.1): nearest centre and its squared distance. → (N,), (N,)."""
    d2, labels = squared_distances(y, centers).min(-1)
    return labels, d2


def cluster_means(y: Tensor, labels: Tensor, k: int, weights: Tensor | None = None
                  ) -> tuple[Tensor, Tensor]:
    """M step of K-means: per-cluster (weighted) sums and counts. → sums (K, D), counts (K,)."""
    yw = y if weights is None else y * weights[:, None]
    sums = torch.zeros(k, y.shape[1], dtype=y.dtype, device=y.device).index_add_(0, labels, yw)
    if weights is None:
        counts = torch.bincount(labels, minlength=k).to(y.dtype)
    else:
        counts = torch.zeros(k, dtype=y.dtype, device=y.device).index_add_(0, labels, weights)
    return sums, counts


def kmeans_plusplus(
    y: Tensor, k: int, generator: torch.Generator | None = None,
    n_local_trials: int | None = None, weights: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Greedy k-means++ seeding: the first centre uniformly, each next one among
    ``n_local_trials`` candidates drawn ∝ D(y)² (squared distance to the chosen centres),
    keeping the candidate that lowers the potential Σ_n D(y_n)² most (each term weighted by
    ``weights`` when given).

    y: (N, D) → (centers (K, D), indices (K,)).
    """
    n = y.shape[0]
    w = torch.ones(n, dtype=y.dtype, device=y.device) if weights is None else weights
    if k > n:
        raise ValueError(f"cannot choose {k} centres from {n} samples; need n_samples >= {k}.")
    trials = n_local_trials if n_local_trials is not None else 2 + int(math.log(k))
    idx = torch.empty(k, dtype=torch.long)
    idx[0] = torch.multinomial((w / w.sum()).cpu(), 1, generator=generator).item()
    closest = squared_distances(y, y[idx[:1]]).squeeze(-1)  # (N,)
    for c in range(1, k):  # sequential by nature: each centre depends on the previous ones
        total = (w * closest).sum()
        if float(total) <= 0.0:  # every point already sits on a centre: pick by weight
            cand = torch.multinomial((w / w.sum()).cpu(), trials, replacement=True,
                                     generator=generator)
        else:
            cand = torch.multinomial((w * closest).cpu() / total.cpu(), trials,
                                     replacement=True, generator=generator)
        d_cand = squared_distances(y, y[cand.to(y.device)])  # (N, trials)
        pot = torch.minimum(closest[:, None], d_cand)  # (N, trials)
        best = int((w[:, None] * pot).sum(0).argmin())
        idx[c] = cand[best]
        closest = pot[:, best]
    idx = idx.to(y.device)
    return y[idx].clone(), idx


def lloyd(y: Tensor, centers: Tensor, *, max_iter: int = 300, tol: float = 1e-4,
          weights: Tensor | None = None) -> KMeansResult:
    """Lloyd iterations from the given centres until the squared centre shift is at most
    ``tol · mean_d Var[y_d]`` (scikit-learn's relative tolerance) or the labels stop changing.

    An empty cluster is moved to the datum farthest from its own centre (so no centre is
    ever NaN). y: (N, D); centers: (K, D); weights: optional (N,) sample weights.
    """
    k = centers.shape[0]
    abs_tol = tol * float(y.var(0, unbiased=False).mean())
    centers = centers.clone()
    labels_old: Tensor | None = None
    converged = False
    it = 0
    while it < max_iter:
        it += 1
        labels, d2 = assign(y, centers)  # Eq. 7.1
        if labels_old is not None and bool((labels == labels_old).all()):
            converged = True
            break
        sums, counts = cluster_means(y, labels, k, weights)
        empty = counts == 0
        if bool(empty.any()):
            far = d2.argsort(descending=True)[: int(empty.sum())]
            sums[empty] = y[far]
            counts[empty] = 1.0
        new = sums / counts[:, None]
        shift = float((new - centers).square().sum())
        centers = new
        labels_old = labels
        if shift <= abs_tol:
            converged = True
            break
    labels, _ = assign(y, centers)  # labels consistent with the final centres
    sq = (y - centers[labels]).square().sum(-1)
    inertia = sq.sum() if weights is None else (weights * sq).sum()
    return KMeansResult(centers, labels, inertia, it, converged)


def kmeans(
    y: Tensor,
    k: int,
    *,
    init: str | Tensor = "k-means++",
    n_init: int = 1,
    max_iter: int = 300,
    tol: float = 1e-4,
    seed: Any = None,
    sample_weight: Tensor | None = None,
) -> KMeansResult:
    """K-means with ``n_init`` restarts, keeping the lowest inertia.

    init: "k-means++", "random" (k distinct data points), or initial centres (K, D) (then one
    run). y: (N, D); sample_weight: optional (N,).
    """
    k = check_positive_int(k, "n_clusters")
    n_init = check_positive_int(n_init, "n_init")
    max_iter = check_positive_int(max_iter, "max_iter")
    tol = check_nonnegative_float(tol, "tol")
    if y.shape[0] < k:
        raise ValueError(f"n_samples={y.shape[0]} should be >= n_clusters={k}.")
    generator = make_generator(seed)
    best: KMeansResult | None = None
    runs = 1 if isinstance(init, Tensor) else n_init
    for _ in range(runs):
        if isinstance(init, Tensor):
            if tuple(init.shape) != (k, y.shape[1]):
                raise ValueError(
                    f"init centres must have shape {(k, y.shape[1])}, got {tuple(init.shape)}."
                )
            start = init.to(y)
        elif init == "k-means++":
            start, _ = kmeans_plusplus(y, k, generator, weights=sample_weight)
        elif init == "random":
            start = y[torch.randperm(y.shape[0], generator=generator)[:k].to(y.device)].clone()
        else:
            raise ValueError(f"init must be 'k-means++', 'random' or an array, got {init!r}.")
        res = lloyd(y, start, max_iter=max_iter, tol=tol, weights=sample_weight)
        if best is None or float(res.inertia) < float(best.inertia):
            best = res
    assert best is not None
    return best


__all__ = [
    "KMeansResult",
    "assign",
    "cluster_means",
    "kmeans",
    "kmeans_plusplus",
    "lloyd",
    "squared_distances",
]
