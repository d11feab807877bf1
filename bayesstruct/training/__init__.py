"""Point-estimate (non-Bayesian) training, and the pieces every training loop shares.

* :mod:`~bayesstruct.training.common`: seeded :class:`Minibatches`, :func:`make_adam`, the
  :func:`cosine_factor` learning-rate schedule and the metrics (:func:`evaluate`,
  :func:`confusion_matrix`, :func:`macro_f1`), shared by SVI, SGLD/pSGLD, the trainers below,
  the architecture searchers and the benchmarks;
* :mod:`~bayesstruct.training.plain`: :func:`train_plain`, minibatch Adam on the regularised
  empirical risk (:func:`regularised_loss`; the pruning baselines, retraining after pruning)
  and :func:`evaluate_net`, the NLL and accuracy of a plain classifier;
* :mod:`~bayesstruct.training.freeze`: :func:`train_selective`, which keeps training only the
  parameters a gradient-statistics rule selects (Muravyev, Bakhteev & Strijov).

>>> from bayesstruct import data, nets, training
>>> ds = data.load("digits", seed=0)
>>> net = nets.logistic_regression(64, 10)
>>> history = training.train_plain(net, ds, epochs=5, lr=0.01, l2=1e-3)
>>> acc = training.evaluate_net(net, ds.test)["acc"]
"""

from __future__ import annotations

from . import common, freeze, plain
from .common import (
    Minibatches,
    confusion_matrix,
    cosine_factor,
    evaluate,
    evaluate_module,
    macro_f1,
    make_adam,
)
from .freeze import train_selective
from .plain import evaluate_net, regularised_loss, train_plain, weight_names, weights

__all__ = ["Minibatches", "common", "confusion_matrix", "cosine_factor", "evaluate",
           "evaluate_module", "evaluate_net", "freeze", "macro_f1", "make_adam", "plain",
           "regularised_loss", "train_plain", "train_selective", "weight_names", "weights"]
