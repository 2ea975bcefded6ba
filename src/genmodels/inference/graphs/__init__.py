"""General inference on discrete graphical models (book §3.5; CATALOGUE C8).

* ``factor``: discrete factors and factor graphs, with brute-force enumeration as an oracle.
* ``network``: Bayesian networks (conditional tables, evidence, ancestral sampling, BIF files).
* ``bp``: sum-product and max-product belief propagation, exact on trees, loopy with damping.
* ``junction``: the junction-tree algorithm (min-fill / min-weight triangulation,
  calibration, marginals, the MAP assignment, log Z).
"""

from genmodels.inference.graphs.bp import BPResult, belief_propagation, max_product, sum_product
from genmodels.inference.graphs.factor import (
    DiscreteFactor,
    FactorGraph,
    expand_to,
    joint_log_table,
)
from genmodels.inference.graphs.junction import (
    Calibration,
    JunctionTree,
    MAPAssignment,
    build_junction_tree,
    elimination_order,
)
from genmodels.inference.graphs.network import BayesianNetwork, TabularCPD, read_bif

__all__ = [
    "BPResult",
    "BayesianNetwork",
    "Calibration",
    "DiscreteFactor",
    "FactorGraph",
    "JunctionTree",
    "MAPAssignment",
    "TabularCPD",
    "belief_propagation",
    "build_junction_tree",
    "elimination_order",
    "expand_to",
    "joint_log_table",
    "max_product",
    "read_bif",
    "sum_product",
]
