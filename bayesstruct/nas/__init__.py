"""Bayesian architecture search (METHODS.md M2.6, M7; seed 003): a DARTS search space, the
structure posterior of variational DARTS, and four searchers through one interface.

>>> from bayesstruct import data, nas
>>> ds = data.load("fashion-mnist", train_size=5000)
>>> space = nas.SearchSpace(channels=8)
>>> found = nas.VariationalDARTS(epochs=10).search(ds, space, seed=0)
>>> score = nas.retrain(found.genotype, space, ds, epochs=10)
"""

from __future__ import annotations

from ..pruning.compression import count_parameters
from .networks import DerivedNet, SuperNet
from .ops import DEFAULT_OPS, OPS, MixedOp, make_op
from .searchers import (
    DARTS,
    SEARCHERS,
    SPOS,
    RandomSearch,
    Searcher,
    SearchResult,
    VariationalDARTS,
    build_searcher,
    make_searcher,
)
from .space import Genotype, SearchSpace, architecture_change, derive
from .stability import cross_seed_change, perturbation_change, plot_stability
from .structure import PRIORS, OperationChoice, relaxed_kl_integrand
from .train import RetrainResult, retrain

#: seed 003's table: Fashion-MNIST top-1 (%) of the retrained cell / search hours on a GPU
SEED_TABLE: dict[str, tuple[float, float]] = {
    "darts": (91.22, 2.0), "random": (90.79, 1.5), "spos": (89.54, 0.5),
    "vardarts": (91.36, 5.0)}

__all__ = ["DARTS", "DEFAULT_OPS", "OPS", "PRIORS", "SEARCHERS", "SEED_TABLE", "SPOS",
           "DerivedNet",
           "Genotype", "MixedOp", "OperationChoice", "RandomSearch", "RetrainResult",
           "SearchResult", "SearchSpace", "Searcher", "SuperNet", "VariationalDARTS",
           "architecture_change", "build_searcher", "count_parameters", "cross_seed_change",
           "derive", "make_op", "make_searcher", "perturbation_change", "plot_stability",
           "relaxed_kl_integrand", "retrain"]
