"""The ``genmodels`` command.

    genmodels fit gmm --data digits --components 10 --out report/
    genmodels list                  # models and data sets
    genmodels --help

Each ``fit`` target is a ``Recipe`` (in ``genmodels.recipes``): it adds its own options, fits with
a progress bar, prints a summary and writes a report folder (metrics.json, model/, plots).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Sequence

from genmodels.recipes import Recipe
from genmodels.reports import Report

__all__ = ["EXTRAS", "RECIPES", "Recipe", "build_parser", "main", "missing_package_message"]


#: ``fit`` targets → "module:attribute" of their Recipe (imported only when used).
RECIPES: dict[str, str] = {
    "gmm": "genmodels.recipes.mixture:gmm",
    "kmeans": "genmodels.recipes.mixture:kmeans_recipe",
    "lda": "genmodels.recipes.mixture:lda",
    "qda": "genmodels.recipes.mixture:qda",
    "fa": "genmodels.recipes.decomposition:FA",
    "pca": "genmodels.recipes.decomposition:PCA",
    "hmm": "genmodels.recipes.hmm:HMM_RECIPE",
    "lgssm": "genmodels.recipes.lgssm:recipe",
    "vae": "genmodels.recipes.vae:VAE_RECIPE",
    "glm": "genmodels.recipes.glm:GLM_RECIPE",
    "logistic": "genmodels.recipes.glm:LOGISTIC_RECIPE",
    "word2vec": "genmodels.recipes.word2vec:WORD2VEC_RECIPE",
    "diffusion": "genmodels.recipes.diffusion:DIFFUSION_RECIPE",
    "nice": "genmodels.recipes.nice:NICE_RECIPE",
    "rbm": "genmodels.recipes.rbm:RBM_RECIPE",
    "sparse-coding": "genmodels.recipes.sparse_coding:SPARSE_CODING_RECIPE",
}


#: Optional packages → the extra of pyproject.toml that installs them (module names as imported).
EXTRAS: dict[str, str] = {
    "scipy": "peers", "pandas": "peers", "hmmlearn": "peers", "pykalman": "peers",
    "statsmodels": "peers", "gensim": "peers", "diffusers": "peers", "pgmpy": "peers",
    "skimage": "peers", "PIL": "peers", "matplotlib": "plot", "pyro": "bench", "spams": "bench",
}


def missing_package_message(err: ModuleNotFoundError) -> str:
    """One line naming the package a run needs and the extra that installs it."""
    text = str(err)
    if "genmodels[" in text:  # the data loaders already name the extra
        return text
    package = (err.name or (text.split("'")[1] if "'" in text else "?")).split(".")[0]
    extra = EXTRAS.get(package)
    if extra is None:
        return f"the package '{package}' is not installed ({text})."
    return (f"this needs the optional package '{package}', which is not installed; install it "
            f"with `pip install 'genmodels[{extra}]'` (or `pip install {package}`).")


def _load_recipe(name: str) -> Recipe:
    module, _, attr = RECIPES[name].partition(":")
    recipe = getattr(importlib.import_module(module), attr)
    assert isinstance(recipe, Recipe)
    return recipe


def build_parser() -> argparse.ArgumentParser:
    from genmodels.data import available_datasets

    recipes = {name: _load_recipe(name) for name in RECIPES}
    epilog = "models (genmodels fit MODEL --help for its options):\n" + "".join(
        f"  {name:10s} {r.help}\n" for name, r in recipes.items())
    epilog += "data sets (--data NAME, or a path to a .csv/.npy file):\n  " + ", ".join(
        available_datasets())
    parser = argparse.ArgumentParser(
        prog="genmodels",
        description="Fit generative models to bundled real data or your own files, and write "
        "metrics, the fitted model and plots.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="fit a model and write a report",
                         description="Fit a model; `genmodels fit MODEL --help` for its options.")
    models = fit.add_subparsers(dest="model", required=True, metavar="MODEL")
    for name, recipe in recipes.items():
        p = models.add_parser(name, help=recipe.help, description=recipe.help)
        p.add_argument("--data", default=recipe.default_data,
                       help="a bundled data set (see `genmodels list`) or a .csv/.npy path "
                       f"(default: {recipe.default_data})")
        p.add_argument("--out", default="report", help="report folder (default: report/)")
        p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
        p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
        p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
        recipe.add_arguments(p)
    sub.add_parser("list", help="list the models and data sets")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "list":
        from genmodels.data import available_datasets

        print("models (genmodels fit MODEL):")
        for name in RECIPES:
            print(f"  {name:10s} {_load_recipe(name).help}")
        print("data sets (--data NAME):")
        print("  " + ", ".join(available_datasets()) + ", or a path to a .csv/.npy file")
        return 0
    recipe = _load_recipe(args.model)
    report = Report(args.out)
    start = time.perf_counter()
    try:
        metrics = recipe.run(args, report)
    except ValueError as err:
        print(f"genmodels: error: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:
        print(f"genmodels: error: {missing_package_message(err)}", file=sys.stderr)
        return 2
    metrics.setdefault("seconds", round(time.perf_counter() - start, 3))
    metrics.setdefault("model", args.model)
    metrics.setdefault("data", args.data)
    report.write_metrics(metrics)
    print(f"{args.model} on {args.data}:")
    for key, value in metrics.items():
        if isinstance(value, (int, float, str)):
            print(f"  {key:24s} {value}")
    print(f"wrote {report.out}/: " + ", ".join(report.files))
    for note in report.notes:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
