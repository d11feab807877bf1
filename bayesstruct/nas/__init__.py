"""Bayesian architecture search (METHODS.md M2.6, M7; seed 003): a DARTS search space, the
structure posterior of variational DARTS, and four searchers through one interface.

>>> from bayesstruct import data, nas
>>> ds = data.load("fashion-mnist", train_size=5000)
>>> space = nas.SearchSpace(channels=8)
>>> found = nas.VariationalDARTS(epochs=10).search(ds, space, seed=0)
>>> score = nas.retrain(found.genotype, space, ds, epochs=10)
"""

from __future__ import annotations

from .networks import DerivedNet, SuperNet, count_parameters
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

__all__ = ["DARTS", "DEFAULT_OPS", "OPS", "PRIORS", "SEARCHERS", "SPOS", "DerivedNet",
           "Genotype", "MixedOp", "OperationChoice", "RandomSearch", "RetrainResult",
           "SearchResult", "SearchSpace", "Searcher", "SuperNet", "VariationalDARTS",
           "architecture_change", "build_searcher", "count_parameters", "cross_seed_change",
           "derive", "make_op", "make_searcher", "perturbation_change", "plot_stability",
           "relaxed_kl_integrand", "retrain"]
