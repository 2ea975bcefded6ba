"""The models over the one exponential-family core, against another source tree (issue 18).

    python benchmarks/bench_families.py                        # this tree's timings (JSON)
    python benchmarks/bench_families.py --against ../main/src  # side by side, interleaved

Workloads (float64, torch limited to ``--threads`` threads): the README's speed rows that run
through family code — logistic regression by IRLS (N = 200,000, D = 50: the binomial family's
variance function and deviance every step), one GaussianMixture EM iteration (N = 50,000,
D = 16, K = 16, full), GaussianHMM ``score_samples`` (200 × T = 100, K = 8) — and the family
emissions themselves: a Bernoulli mixture EM iteration (N = 100,000, D = 64, K = 16), PoissonHMM
and CategoricalHMM ``score_samples`` and one Baum–Welch iteration (200 × T = 100, K = 8); then
(unless ``BENCH_FAMILIES_ONLY_README`` is set) one E + M step of the Gaussian emission for
every covariance structure (N = 50,000, K = 16; diag also at D = 32, past the compiled
kernel), one VAE epoch (bench_vae's row),
and 50 block Gibbs sweeps and a free energy of Bernoulli, Gaussian–Bernoulli and softmax
harmoniums (64 × 64; skipped in a tree without the harmonium).

With ``--against SRC`` the script runs itself as subprocesses, alternately with this tree's
``src`` and with ``SRC`` first on ``PYTHONPATH`` (``--rounds`` each), and prints the median
seconds of each side and their ratio (other ÷ this: above 1 means this tree is faster). On a
shared machine both sides suffer the same load; compare the ratio column.

    python benchmarks/bench_families.py --ab-against ../main/src --repeats 15

times both trees in ONE process instead (the other imported as a renamed copy): every repeat
runs this tree's call and the other's back to back, in alternating order, and the table gives
each side's median and the median of the per-pair ratios — on a loaded machine the steadiest
of the three comparisons, since the two calls of a pair are milliseconds apart.

    python benchmarks/bench_families.py --ops-against ../main/src

counts instead, in one process, the tensor operations (aten kernels other than views) that
the same calls run in both trees (the other tree is imported as a renamed copy): a
load-independent check that a rewrite runs the same kernels as the code it replaced.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _median_time(f: Callable[[], Any], repeats: int) -> float:
    f()  # warm-up
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def _data() -> dict[str, Any]:
    """The workloads' data, made once (and shared by both trees in ``--ab-against``)."""
    import numpy as np
    import torch

    g = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    d: dict[str, Any] = {"g": g}
    n, p = 200_000, 50
    X = torch.cat([torch.ones(n, 1, dtype=torch.float64),
                   torch.randn(n, p, generator=g, dtype=torch.float64)], 1)
    beta = torch.randn(p + 1, generator=g, dtype=torch.float64) * (0.3 * (10 / p) ** 0.5)
    d["X"], d["y"] = X, (torch.rand(n, generator=g, dtype=torch.float64)
                         < torch.sigmoid(X @ beta)).double()
    d["Xg"] = np.concatenate([rng.normal(size=(50_000 // 16, 16)) + 4 * rng.normal(size=16)
                              for _ in range(16)])
    k, T, B = 8, 100, 200
    d["lengths"] = [T] * B
    A = rng.random((k, k)) + np.eye(k) * k
    d["A"] = A / A.sum(1, keepdims=True)
    d["start"] = np.full(k, 1.0 / k)
    z = np.zeros(B * T, dtype=int)
    for t in range(1, B * T):
        z[t] = rng.choice(k, p=d["A"][z[t - 1]])
    d["Yg"] = rng.normal(size=(B * T, 4)) + 2 * rng.normal(size=(k, 4))[z]
    d["hmm_means"], d["hmm_covars"] = rng.normal(size=(k, 4)) * 2, rng.uniform(0.5, 1.5, (k, 4))
    d["rates"] = rng.uniform(0.5, 10, (k, 6))
    d["Yp"] = rng.poisson(d["rates"][z])
    d["emis"] = rng.dirichlet(np.ones(12), k)
    d["Yc"] = np.array([rng.choice(12, p=d["emis"][s]) for s in z])[:, None]
    d["probs"] = torch.rand(16, 64, generator=g, dtype=torch.float64) * 0.8 + 0.1
    z16 = torch.randint(16, (100_000,), generator=g)
    d["Yb"] = (torch.rand(100_000, 64, generator=g, dtype=torch.float64)
               < d["probs"][z16]).double()
    tg = torch.from_numpy(d["Xg"])
    d["tg"], d["td"] = tg, torch.cat([tg, tg.flip(1) + 1.0], 1)  # (N, 16), (N, 32)
    return d


def calls(pkg: str, d: dict[str, Any], readme_only: bool = False
          ) -> dict[str, Callable[[], Any]]:
    """The workloads as callables over the package named ``pkg`` (``genmodels``, or the
    other tree imported as ``genmodels_other``), on the shared data ``d``."""
    import importlib

    import torch

    def mod(name: str) -> Any:
        return importlib.import_module(f"{pkg}.{name}")

    hmm, mix = mod("estimators.hmm"), mod("estimators.mixture")
    em_mod, irls_mod = mod("learning.em"), mod("learning.irls")
    fe, glm, mm = mod("models.family_emissions"), mod("models.glm_families"), \
        mod("models.mixture")
    out: dict[str, Callable[[], Any]] = {}

    # logistic regression by IRLS
    fam, link = glm.Binomial(), glm.Logit()
    out["glm logistic IRLS fit"] = lambda: irls_mod.irls(d["X"], d["y"], fam, link, tol=1e-10)

    # GaussianMixture (full) fits of 3 and 1 EM iterations (their difference / 2: one iteration)
    def gmm(m: int) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mix.GaussianMixture(16, max_iter=m, tol=0.0, random_state=0).fit(d["Xg"])

    out["gmm fit, 3 EM iterations"] = lambda: gmm(3)
    out["gmm fit, 1 EM iteration"] = lambda: gmm(1)

    # HMMs on 200 sequences × T = 100, K = 8
    k, lengths = 8, d["lengths"]
    gh = hmm.GaussianHMM(k, "diag", init_params="", n_iter=1, tol=0.0)
    gh.startprob_, gh.transmat_ = d["start"], d["A"]
    gh.means_, gh.covars_ = d["hmm_means"], d["hmm_covars"]
    out["gaussian hmm score_samples"] = lambda: gh.score_samples(d["Yg"], lengths)

    def poisson_hmm() -> Any:
        m = hmm.PoissonHMM(k, init_params="", n_iter=1, tol=0.0)
        m.startprob_, m.transmat_, m.lambdas_ = d["start"], d["A"], d["rates"]
        return m

    ph = poisson_hmm()
    out["poisson hmm score_samples"] = lambda: ph.score_samples(d["Yp"], lengths)
    out["poisson hmm Baum-Welch iteration"] = lambda: poisson_hmm().fit(d["Yp"], lengths)

    def categorical_hmm() -> Any:
        m = hmm.CategoricalHMM(k, n_features=12, init_params="", n_iter=1, tol=0.0)
        m.startprob_, m.transmat_, m.emissionprob_ = d["start"], d["A"], d["emis"]
        return m

    ch = categorical_hmm()
    out["categorical hmm score_samples"] = lambda: ch.score_samples(d["Yc"], lengths)
    out["categorical hmm Baum-Welch iteration"] = lambda: categorical_hmm().fit(d["Yc"],
                                                                                lengths)

    # Bernoulli mixture, two EM iterations through the shared engine
    def bern() -> None:
        m = mm.MixtureModel(torch.ones(16, dtype=torch.float64),
                            fe.BernoulliEmission(16, 64, d["probs"].flip(0)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # two iterations on purpose, not convergence
            em_mod.run_em(m, [d["Yb"]], max_iter=2, tol=0.0)

    out["bernoulli mixture 2 EM iterations"] = bern
    if readme_only:
        return out

    # the Gaussian emission's E + M step (log-density table, responsibilities, statistics,
    # M step; features cached as in EM) for every structure at N = 50,000, K = 16: diag at
    # D = 16 (the compiled kernel) and D = 32 (past it: the families' DiagonalNormal table),
    # full, spherical and tied at D = 16
    cov_mod = mod("models.covariance")
    for cov, data in (("diag", d["tg"]), ("diag", d["td"]), ("full", d["tg"]),
                      ("spherical", d["tg"]), ("tied", d["tg"])):
        em = cov_mod.GaussianEmission(16, data.shape[1], cov)
        em.set_parameters(means=data[:: data.shape[0] // 16][:16])
        em.set_center(data)

        def step(em: Any = em, data: Any = data) -> None:
            r = torch.softmax(em.log_likelihood(data), -1)
            em.maximize(em.expected_stats(data, r))

        out[f"gaussian emission E+M step, {cov}, D = {data.shape[1]}"] = step

    # one VAE epoch (bench_vae's README row: binarised digits, H = 128, K = 8, batch 64)
    Xv = (mod("data").load_dataset("digits").X >= 8).to(torch.float32)
    vae = mod("models.vae").VAE(64, 8, hidden=[128], likelihood="bernoulli", seed=0)
    trainer = mod("learning.trainer").Trainer
    out["vae epoch"] = lambda: trainer(vae, epochs=1, batch_size=64, lr=1e-3, seed=0,
                                       progress=False).fit(Xv)

    # harmonium layers: block Gibbs sweeps and free energies through the layers' families
    try:
        harm = mod("models.harmonium")
    except ImportError:  # a tree from before the harmonium
        return out
    g = d["g"]
    rbms = {"bernoulli": harm.Harmonium(("bernoulli", 64), ("bernoulli", 64), seed=0,
                                        init_scale=0.1),
            "gaussian-bernoulli": harm.GaussianBernoulliRBM(64, 64, seed=0, init_scale=0.1),
            "softmax-visible": harm.Harmonium(("bernoulli", 64),
                                              {"kind": "softmax", "size": 16, "categories": 4},
                                              seed=0, init_scale=0.1)}
    for name, rbm in rbms.items():
        with torch.no_grad():
            init = rbm.visible.sample(rbm.b_y.detach().expand(500, -1), g)
            data = rbm.visible.sample(rbm.b_y.detach().expand(10_000, -1), g)
        out[f"{name} harmonium 50 Gibbs sweeps (500 chains)"] = \
            lambda rbm=rbm, init=init: rbm.gibbs(init, 50, g)

        def free(rbm: Any = rbm, data: Any = data) -> Any:
            with torch.no_grad():
                return rbm.free_energy(data)

        out[f"{name} harmonium free energy (10,000 data)"] = free
    return out


def workloads(repeats: int) -> dict[str, float]:
    """Median seconds of every workload in this process's ``genmodels``."""
    fs = calls("genmodels", _data(), bool(os.environ.get("BENCH_FAMILIES_ONLY_README")))
    out = {name: _median_time(f, repeats) for name, f in fs.items()}
    out["gmm EM iteration"] = max(out.pop("gmm fit, 3 EM iterations")
                                  - out.pop("gmm fit, 1 EM iteration"), 0.0) / 2
    return out


def _renamed_copy(other_src: str) -> None:
    """Import the other tree as ``genmodels_other`` (a renamed copy on sys.path)."""
    import re
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp())
    shutil.copytree(Path(other_src) / "genmodels", tmp / "genmodels_other")
    for f in (tmp / "genmodels_other").rglob("*.py"):
        text = f.read_text()
        text = re.sub(r"\bgenmodels\.", "genmodels_other.", text)
        text = text.replace("from genmodels import", "from genmodels_other import")
        text = text.replace('"genmodels"', '"genmodels_other"')
        f.write_text(text)
    sys.path.insert(0, str(tmp))


def compare_times(other_src: str, repeats: int, readme_only: bool, only: str | None = None
                  ) -> None:
    """Both trees in ONE process, every repeat timing this tree's call and the other's back
    to back (order alternating), after a warm-up of each: per workload the median seconds of
    each side and the median of the per-pair ratios (other ÷ this; above 1: this tree is
    faster). Pairs a few milliseconds apart see the same load."""
    import torch

    _renamed_copy(other_src)
    warnings.simplefilter("ignore")
    d = _data()
    this, other = calls("genmodels", d, readme_only), calls("genmodels_other", d, readme_only)
    print(f"| workload ({torch.get_num_threads()} thread(s), {repeats} back-to-back pairs, "
          "one process) | this tree s | other tree s | other ÷ this (of the medians) | "
          "other ÷ this (median of pairs) |")
    print("|---|---|---|---|---|")
    for name, f in this.items():
        if name not in other or (only is not None and not re.search(only, name)):
            continue  # a workload the other tree cannot run, or one not asked for
        g = other[name]
        f(), g()  # warm-up (and Numba compilation)
        ta, tb, ratios = [], [], []
        for r in range(repeats):
            pair = []
            for h in ((f, g) if r % 2 == 0 else (g, f)):
                t0 = time.perf_counter()
                h()
                pair.append(time.perf_counter() - t0)
            a, b = pair if r % 2 == 0 else pair[::-1]
            ta.append(a)
            tb.append(b)
            ratios.append(b / a)
        a, b = statistics.median(ta), statistics.median(tb)
        print(f"| {name} | {a:.4f} | {b:.4f} | {b / a:.3f} | {statistics.median(ratios):.3f} |",
              flush=True)


_VIEWS = {"aten::view", "aten::unsqueeze", "aten::squeeze", "aten::select", "aten::slice",
          "aten::as_strided", "aten::t", "aten::transpose", "aten::expand", "aten::unflatten",
          "aten::flatten", "aten::reshape", "aten::alias", "aten::lift_fresh", "aten::detach",
          "aten::_unsafe_view", "aten::numpy_T", "aten::permute", "aten::resolve_conj",
          "aten::resolve_neg", "aten::item", "aten::_local_scalar_dense", "aten::is_nonzero",
          "aten::empty", "aten::empty_strided", "aten::to", "aten::_to_copy",
          "aten::result_type"}


def _op_counts(f: Callable[[], Any]) -> Any:
    """The top-level non-view aten ops one call of ``f`` runs, counted by name."""
    import collections

    from torch.profiler import ProfilerActivity, profile

    f()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        f()
    c: collections.Counter[str] = collections.Counter()
    for e in prof.events():
        parent = e.cpu_parent
        if (e.name.startswith("aten::") and e.name not in _VIEWS
                and (parent is None or not parent.name.startswith("aten::"))):
            c[e.name] += 1
    return c


def compare_ops(other_src: str) -> None:
    """Print, per call, the tensor-op counts of this tree and of ``other_src``."""
    import importlib

    import numpy as np
    import torch

    _renamed_copy(other_src)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")

    def both(name: str) -> tuple[Any, Any]:
        return (importlib.import_module("genmodels." + name),
                importlib.import_module("genmodels_other." + name))

    rows: list[tuple[str, Callable[[Any], Any]]] = []
    irls1, irls0 = both("learning.irls")
    fam1, fam0 = both("models.glm_families")
    g = torch.Generator().manual_seed(0)
    X = torch.cat([torch.ones(2000, 1, dtype=torch.float64),
                   torch.randn(2000, 10, generator=g, dtype=torch.float64)], 1)
    beta = torch.randn(11, generator=g, dtype=torch.float64) * 0.3
    y = (torch.rand(2000, generator=g, dtype=torch.float64) < torch.sigmoid(X @ beta)).double()
    yc = torch.poisson(torch.exp(0.5 * X @ beta), generator=g)
    mods = {"irls": (irls1, irls0), "glm": (fam1, fam0), "mix": both("estimators.mixture"),
            "hmm": both("estimators.hmm"), "fe": both("models.family_emissions")}
    rows.append(("logistic IRLS fit", lambda m: m["irls"].irls(
        X, y, m["glm"].Binomial(), m["glm"].Logit(), tol=1e-10)))
    rows.append(("Poisson IRLS fit", lambda m: m["irls"].irls(
        X, yc, m["glm"].Poisson(), m["glm"].Log(), tol=1e-10)))
    rng = np.random.default_rng(0)
    Xg = rng.normal(size=(2000, 4)) + 3 * rng.normal(size=(4, 4))[rng.integers(4, size=2000)]
    rows.append(("GaussianMixture fit, 5 EM iterations", lambda m: m["mix"].GaussianMixture(
        4, max_iter=5, tol=0.0, random_state=0).fit(Xg)))
    k, T, B = 3, 50, 10
    A = rng.random((k, k)) + np.eye(k) * k
    A /= A.sum(1, keepdims=True)
    z = rng.integers(k, size=B * T)
    lengths = [T] * B
    Y = rng.normal(size=(B * T, 2)) + 2 * rng.normal(size=(k, 2))[z]
    means = rng.normal(size=(k, 2))
    rates = rng.uniform(0.5, 10, (k, 3))
    Yp = rng.poisson(rates[z])
    emis = rng.dirichlet(np.ones(5), k)
    Yc = rng.integers(5, size=(B * T, 1))

    def hmm(m: Any, kind: str) -> Any:
        h = m["hmm"]
        est = {"gaussian": lambda: h.GaussianHMM(k, "diag", init_params="", n_iter=2, tol=0.0),
               "poisson": lambda: h.PoissonHMM(k, init_params="", n_iter=2, tol=0.0),
               "categorical": lambda: h.CategoricalHMM(k, n_features=5, init_params="",
                                                       n_iter=2, tol=0.0)}[kind]()
        est.startprob_, est.transmat_ = np.full(k, 1 / k), A
        if kind == "gaussian":
            est.means_, est.covars_ = means, np.ones((k, 2))
        elif kind == "poisson":
            est.lambdas_ = rates
        else:
            est.emissionprob_ = emis
        return est

    data = {"gaussian": Y, "poisson": Yp, "categorical": Yc}
    for kind in data:
        rows.append((f"{kind} HMM Baum-Welch, 2 iterations",
                     lambda m, kind=kind: hmm(m, kind).fit(data[kind], lengths)))
    rows.append(("gaussian HMM score_samples", lambda m: hmm(m, "gaussian").score_samples(
        Y, lengths)))
    yb = (torch.rand(1000, 8, generator=g, dtype=torch.float64) < 0.5).double()
    w = torch.softmax(torch.randn(1000, 4, generator=g, dtype=torch.float64), -1)
    p = torch.rand(4, 8, generator=g, dtype=torch.float64) * 0.8 + 0.1
    this = {key: v[0] for key, v in mods.items()}
    other = {key: v[1] for key, v in mods.items()}
    built = {id(m): (m["fe"].BernoulliEmission(4, 8, p), m["fe"].PoissonEmission(4, 8, 5 * p))
             for m in (this, other)}
    for i, name in enumerate(("Bernoulli", "Poisson")):
        yy = yb if i == 0 else torch.poisson(5 * yb + 1, generator=g)
        rows.append((f"{name}Emission log_likelihood + expected_stats + maximize",
                     lambda m, i=i, yy=yy: built[id(m)][i].maximize(
                         built[id(m)][i].expected_stats(yy, w))
                     or built[id(m)][i].log_likelihood(yy)))
    print("| call | tensor ops, this tree | tensor ops, other tree | the same ops? |")
    print("|---|---|---|---|")
    for name, f in rows:
        c1, c0 = _op_counts(lambda f=f: f(this)), _op_counts(lambda f=f: f(other))
        same = "yes" if c0 == c1 else (f"no: this only {dict(c1 - c0)}, other only "
                                       f"{dict(c0 - c1)}")
        print(f"| {name} | {sum(c1.values())} | {sum(c0.values())} | {same} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--against", type=str, default=None,
                   help="another tree's src folder to run side by side")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--ops-against", type=str, default=None,
                   help="another tree's src folder whose tensor-op counts to compare")
    p.add_argument("--ab-against", type=str, default=None,
                   help="another tree's src folder to time in this process, pair by pair")
    p.add_argument("--only", type=str, default=None,
                   help="with --ab-against: time only the workloads whose name matches")
    args = p.parse_args()
    if args.ops_against is not None:
        compare_ops(args.ops_against)
        return
    if args.ab_against is not None:
        import torch

        torch.set_num_threads(args.threads)
        compare_times(args.ab_against, args.repeats,
                      bool(os.environ.get("BENCH_FAMILIES_ONLY_README")), args.only)
        return
    if args.against is None:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(workloads(args.repeats)))
        return
    sides = {"this": str(HERE.parent / "src"), "other": str(Path(args.against).resolve())}
    results: dict[str, list[dict[str, float]]] = {s: [] for s in sides}
    for r in range(args.rounds):
        for side in (("this", "other") if r % 2 == 0 else ("other", "this")):
            env = dict(os.environ, PYTHONPATH=sides[side])
            cmd = [sys.executable, __file__, "--threads", str(args.threads), "--repeats",
                   str(args.repeats)]
            res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            results[side].append(json.loads(res.stdout.strip().splitlines()[-1]))
    print(f"| workload ({args.threads} thread(s), median of {args.rounds} interleaved rounds "
          f"× {args.repeats} repeats) | this tree s | other tree s | other ÷ this |")
    print("|---|---|---|---|")
    for name in results["this"][0]:
        if name not in results["other"][0]:
            continue  # a workload the other tree cannot run
        a = statistics.median(r[name] for r in results["this"])
        b = statistics.median(r[name] for r in results["other"])
        print(f"| {name} | {a:.4f} | {b:.4f} | {b / a if a > 0 else float('nan'):.3f} |")


if __name__ == "__main__":
    main()
