"""bayesstruct: choosing the structure of neural networks by Bayesian inference.

>>> from bayesstruct import data, nets, priors, guides, inference, pruning, BayesianNet
>>> ds = data.load("digits", seed=0)
>>> model = BayesianNet(nets.build("logreg", ds.input_shape, ds.n_classes), priors.ARD())
>>> post = inference.svi(model, guides.MeanField(), ds, epochs=30, lr=1e-2)
>>> rho = pruning.relative_density(post)
"""

from __future__ import annotations

import warnings as _warnings

from . import (
    collapse,
    config,
    data,
    distributions,
    experiments,
    guides,
    inference,
    layers,
    nas,
    nets,
    parallel,
    plots,
    posterior,
    priors,
    pruning,
    report,
    sweep,
    training,
)
from .collapse import check_collapse
from .distributions import IndianBuffetProcess
from .guides import Delta, LogNormal, MeanField
from .inference import svi
from .models import BayesianNet
from .predict import predict
from .priors import ARD, IBP, SBP, Gaussian
from .sweep import run_sweep

with _warnings.catch_warnings():
    _warnings.simplefilter("ignore")
    from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bayesstruct")
except PackageNotFoundError:  # a source checkout on sys.path
    __version__ = "0.0.0+local"

__all__ = [
    "ARD",
    "BayesianNet",
    "Delta",
    "Gaussian",
    "IBP",
    "IndianBuffetProcess",
    "LogNormal",
    "MeanField",
    "SBP",
    "check_collapse",
    "collapse",
    "config",
    "data",
    "distributions",
    "experiments",
    "guides",
    "inference",
    "layers",
    "nas",
    "nets",
    "parallel",
    "plots",
    "posterior",
    "predict",
    "priors",
    "pruning",
    "report",
    "run_sweep",
    "svi",
    "sweep",
    "training",
]
