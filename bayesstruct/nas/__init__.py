"""Bayesian architecture search (Liu et al. 2019, with a Gumbel-softmax operation choice): a
DARTS search space, the structure posterior of variational DARTS, and four searchers through
one interface.

>>> from bayesstruct import data, nas
>>> ds = data.load("fashion-mnist", train_size=5000)
>>> space = nas.SearchSpace(channels=8)
>>> found = nas.VariationalDARTS(epochs=10).search(ds, space, seed=0)
>>> score = nas.retrain(found.genotype, space, ds, epochs=10)

Here: the :class:`SearchSpace`, the searchers (:class:`DARTS`, :class:`VariationalDARTS` with
its :data:`STRUCTURE_PRIORS`, :class:`RandomSearch`, :class:`SPOS`; by name through
:data:`SEARCHERS`, :func:`make_searcher` and :func:`build_searcher`), what a search finds (a
:class:`SearchResult` holding a :class:`Genotype`), :func:`retrain` (a :class:`RetrainResult`),
and the stability report (:func:`cross_seed_change`, :func:`perturbation_change`,
:func:`plot_stability`). The rest is in the submodules: the operations
(:mod:`~bayesstruct.nas.ops`), the super- and derived networks (:mod:`~bayesstruct.nas.networks`),
deriving a genotype and the architecture-change measure (:mod:`~bayesstruct.nas.space`), the
relaxed structure distribution (:mod:`~bayesstruct.nas.structure`).
"""

from __future__ import annotations

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
from .space import Genotype, SearchSpace
from .stability import cross_seed_change, perturbation_change, plot_stability
from .structure import STRUCTURE_PRIORS
from .train import RetrainResult, retrain

__all__ = ["DARTS", "SEARCHERS", "SPOS", "STRUCTURE_PRIORS", "Genotype",
           "RandomSearch", "RetrainResult", "SearchResult", "SearchSpace", "Searcher",
           "VariationalDARTS", "build_searcher", "cross_seed_change", "make_searcher",
           "perturbation_change", "plot_stability", "retrain"]
