"""Inference engines (METHODS.md M4). Each returns an ArviZ ``InferenceData``."""

from __future__ import annotations

from . import freeze, hypergrad
from .freeze import train_selective
from .mcmc import mcmc
from .plain import evaluate_net, regularised_loss, train_plain
from .sgld import psgld, sgld
from .svi import NonFiniteLossError, evaluate, svi

__all__ = ["ENGINES", "NonFiniteLossError", "evaluate", "evaluate_net", "freeze", "hypergrad",
           "mcmc", "psgld", "regularised_loss", "sgld", "svi", "train_plain",
           "train_selective"]

ENGINES = ("svi", "nuts", "hmc", "sgld", "psgld")
