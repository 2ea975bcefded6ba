"""Command-line recipes: one per ``genmodels fit MODEL``. Each module here defines ``Recipe``
objects; ``genmodels.cli.RECIPES`` names them so that the command imports only what it runs."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from genmodels.reports import Report


@dataclass(frozen=True)
class Recipe:
    """One ``genmodels fit NAME`` target.

    add_arguments: adds the recipe's own options to its sub-parser.
    run: fits and writes into the report; returns the metrics (also written to metrics.json).
    """

    name: str
    help: str
    default_data: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, Report], dict[str, Any]]
