"""What the API cannot do it refuses, before any work, naming the argument, the value and what
is allowed; a posterior is refused by a model whose weight sites it does not have."""

from __future__ import annotations

import math
import re
from functools import cache

import numpy as np
import pytest
import torch

from bayesstruct import nas, nets, posterior, priors, pruning
from bayesstruct.data import Dataset, Split
from bayesstruct.errors import UserInputError
from bayesstruct.experiments import hypergrad_tasks
from bayesstruct.guides import MeanField
from bayesstruct.inference import hypergrad as hg
from bayesstruct.inference.mcmc import mcmc
from bayesstruct.inference.sgld import psgld, sgld
from bayesstruct.models import BayesianNet
from bayesstruct.models.likelihoods import Gaussian as GaussianLikelihood
from bayesstruct.pruning.units import unit_keep
from bayesstruct.training import freeze
from bayesstruct.training.plain import train_plain

NAN, INF = math.nan, math.inf


@cache
def _data() -> Dataset:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 5, generator=g), torch.randint(0, 3, (40,), generator=g)
    return Dataset("tiny", Split(x[:20], y[:20]), Split(x[20:30], y[20:30]),
                   Split(x[30:], y[30:]), (5,), 3, ("a", "b", "c"))


def _model(widths=(5, 4, 3), prior=None) -> BayesianNet:
    torch.manual_seed(0)
    return BayesianNet(nets.mlp(list(widths)), prior or priors.Gaussian(), num_data=20)


def _linear() -> tuple[BayesianNet, Split]:
    torch.manual_seed(0)
    net = torch.nn.Sequential()
    net.add_module("fc1", torch.nn.Linear(3, 1))
    x = torch.randn(20, 3)
    return BayesianNet(net, priors.Gaussian(), GaussianLikelihood(0.5), num_data=20), \
        Split(x, x.sum(1))


@cache
def _post(widths=(5, 4, 3)):
    """A mean-field posterior (variational factors and draws) of ``_model(widths)``."""
    model = _model(widths)
    guide = MeanField(init_scale=0.1)
    guide.setup(model)
    return posterior.from_guide(model, guide, num_draws=3)


def _rho():
    return {"fc1.weight": np.linspace(0.0, 1.0, 20).reshape(4, 5)}


def _problem():
    w0 = torch.zeros(3, dtype=torch.float64)
    return hg.HyperProblem(lambda w, lam: (torch.exp(lam) * w * w).sum() + w.sum(),
                           lambda w, lam: (w * w).sum(), w0, hg.InnerOptimizer("sgd", lr=0.1))


LAM = torch.zeros(3, dtype=torch.float64)
PLAIN = dict(epochs=1, lr=1e-2, batch_size=8)
LANGEVIN = dict(num_samples=2, burn_in=1, num_chains=1, batch_size=8, progress=False)
MCMC = dict(num_warmup=1, num_samples=1, num_chains=1, progress=False)

CASES = [
    # --- plain training
    ("plain epochs=0", lambda: train_plain(nets.mlp([5, 3]), _data(), **{**PLAIN, "epochs": 0}),
     "need epochs > 0", "epochs=0"),
    ("plain batch_size=0", lambda: train_plain(nets.mlp([5, 3]), _data(),
                                               **{**PLAIN, "batch_size": 0}),
     "need batch_size > 0", "batch_size=0"),
    ("plain lr=nan", lambda: train_plain(nets.mlp([5, 3]), _data(), **{**PLAIN, "lr": NAN}),
     "need lr > 0", "lr=nan"),
    ("plain l2=-1", lambda: train_plain(nets.mlp([5, 3]), _data(), **PLAIN, l2=-1.0),
     "need l2 >= 0", "l2=-1.0"),
    # --- freezing
    ("freeze eta0=0", lambda: freeze.train_selective(nets.mlp([5, 3]), _data(), eta0=0, eta1=1,
                                                     k=0.5, l=0.5),
     "need eta0 > 0", "eta0=0"),
    ("freeze eta1=-1", lambda: freeze.train_selective(nets.mlp([5, 3]), _data(), eta0=4,
                                                      eta1=-1, k=0.5, l=0.5, window=2),
     "need eta1 >= 0", "eta1=-1"),
    ("freeze lr=0", lambda: freeze.train_selective(nets.mlp([5, 3]), _data(), eta0=4, eta1=1,
                                                   k=0.5, l=0.5, window=2, lr=0.0),
     "need lr > 0", "lr=0.0"),
    # --- SGLD / pSGLD
    ("sgld num_samples=0", lambda: sgld(*_linear(), **{**LANGEVIN, "num_samples": 0}),
     "num_samples must be >= 1", "num_samples=0"),
    ("sgld batch_size=0", lambda: sgld(*_linear(), **{**LANGEVIN, "batch_size": 0}),
     "batch_size must be >= 1", "batch_size=0"),
    ("sgld num_chains=0", lambda: sgld(*_linear(), **{**LANGEVIN, "num_chains": 0}),
     "num_chains must be >= 1", "num_chains=0"),
    ("sgld lr=nan", lambda: sgld(*_linear(), **LANGEVIN, lr=NAN), "need lr > 0", "lr=nan"),
    ("sgld gamma=-1", lambda: sgld(*_linear(), **LANGEVIN, gamma=-1.0), "need gamma >= 0",
     "gamma=-1.0"),
    ("psgld eps=0", lambda: psgld(*_linear(), **LANGEVIN, eps=0.0), "eps > 0", "eps=0.0"),
    # --- NUTS / HMC
    ("mcmc num_samples=0", lambda: mcmc(*_linear(), **{**MCMC, "num_samples": 0}),
     "num_samples must be >= 1", "num_samples=0"),
    ("mcmc num_chains=0", lambda: mcmc(*_linear(), **{**MCMC, "num_chains": 0}),
     "num_chains must be >= 1", "num_chains=0"),
    ("mcmc target_accept=1.5", lambda: mcmc(*_linear(), **MCMC, target_accept=1.5),
     r"target_accept must lie in \(0, 1\)", "target_accept=1.5"),
    ("hmc num_steps=0", lambda: mcmc(*_linear(), **MCMC, kernel="hmc", num_steps=0),
     "num_steps must be >= 1", "num_steps=0"),
    ("mcmc step_size=0", lambda: mcmc(*_linear(), **MCMC, step_size=0.0), "need step_size > 0",
     "step_size=0.0"),
    # --- architecture search
    ("darts epochs=0", lambda: nas.make_searcher("darts", epochs=0), "epochs must be > 0",
     "got 0"),
    ("darts batch_size=0", lambda: nas.make_searcher("darts", batch_size=0),
     "batch_size must be > 0", "got 0"),
    ("vardarts lr=nan", lambda: nas.make_searcher("vardarts", lr=NAN), "lr must be > 0",
     "got nan"),
    ("random n_samples=0", lambda: nas.make_searcher("random", n_samples=0),
     "n_samples must be > 0", "got 0"),
    ("spos n_candidates=0", lambda: nas.make_searcher("spos", n_candidates=0),
     "n_candidates must be > 0", "got 0"),
    ("nas retrain epochs=0",
     lambda: nas.retrain(nas.SearchSpace(channels=2, n_nodes=2).random_genotype(
         np.random.default_rng(0)), nas.SearchSpace(channels=2, n_nodes=2),
         Dataset("img", Split(torch.zeros(4, 1, 8, 8), torch.zeros(4, dtype=torch.long)),
                 Split(torch.zeros(4, 1, 8, 8), torch.zeros(4, dtype=torch.long)),
                 Split(torch.zeros(4, 1, 8, 8), torch.zeros(4, dtype=torch.long)),
                 (1, 8, 8), 2, ("a", "b")), epochs=0),
     "need epochs > 0", "epochs=0"),
    # --- hypergradients
    ("hypergradient steps=-1", lambda: hg.hypergradient(_problem(), LAM, steps=-1),
     "steps must be >= 0", "-1"),
    ("finite_diff h=0", lambda: hg.hypergradient(_problem(), LAM, method="finite_diff",
                                                 steps=1, h=0.0), "need h > 0", "h=0.0"),
    ("implicit max_iter=0", lambda: hg.implicit(_problem(), LAM, LAM, max_iter=0),
     "max_iter must be >= 1", "max_iter=0"),
    ("greedy k=0", lambda: hg.greedy(_problem(), LAM, total_steps=5, k=0), "k >= 1", "k=0"),
    ("greedy total_steps=0", lambda: hg.greedy(_problem(), LAM, total_steps=0),
     "total_steps >= 1", "total_steps=0"),
    ("greedy hyper_lr=0", lambda: hg.greedy(_problem(), LAM, total_steps=5, hyper_lr=0.0),
     "need hyper_lr > 0", "hyper_lr=0.0"),
    ("honest outer_steps=0", lambda: hg.honest(_problem(), LAM, outer_steps=0),
     "outer_steps must be >= 1", "outer_steps=0"),
    ("l2 epochs_hyper=0", lambda: hypergrad_tasks.l2_experiment(
        lambda: nets.mlp([5, 3]), _data().train, _data().val, _data().test, "shared",
        epochs_hyper=0, progress=False), "epochs_hyper must be >= 1", "epochs_hyper=0"),
    ("l2 batch_size=0", lambda: hypergrad_tasks.l2_experiment(
        lambda: nets.mlp([5, 3]), _data().train, _data().val, _data().test, "shared",
        batch_size=0, progress=False), "batch_size must be >= 1", "batch_size=0"),
    ("klr width0=0", lambda: hypergrad_tasks.klr_experiment(
        _data().train, _data().val, _data().test, width0=0.0, progress=False),
     "need width0 > 0", "width0=0.0"),
    # --- the pruning comparison's settings (refused before any training)
    ("compare epochs=0", lambda: pruning.check_methods(
        nets.mlp([5, 3]), ["random"], pruning.CompareSettings(epochs=0)),
     "need epochs > 0", "epochs=0"),
    ("compare retrain_lr_factor=nan", lambda: pruning.check_methods(
        nets.mlp([5, 3]), ["random"], pruning.CompareSettings(retrain_lr_factor=NAN)),
     "need retrain_lr_factor > 0", "retrain_lr_factor=nan"),
    ("compare fractions=1.5", lambda: pruning.check_methods(
        nets.mlp([5, 3]), ["random"], pruning.CompareSettings(fractions=(0.5, 1.5))),
     r"fractions must be in \[0, 1\]", "1.5"),
    # --- thresholds: decide
    ("decide rho threshold=-1", lambda: pruning.decide(_rho(), threshold=-1),
     r"threshold=-1 is not a finite number in \[0, 1\]", "rho-like"),
    ("decide rho threshold=2", lambda: pruning.decide(_rho(), threshold=2),
     r"threshold=2 is not a finite number in \[0, 1\]", "rho-like"),
    ("decide rho threshold=nan", lambda: pruning.decide(_rho(), threshold=NAN),
     r"threshold=nan is not a finite number", "[0, 1]"),
    ("decide log rho threshold=inf",
     lambda: pruning.decide({"w": -np.arange(3.0)}, threshold=INF),
     "threshold=inf is not a finite number", ""),
    ("decide fraction=nan", lambda: pruning.decide(_rho(), fraction=NAN),
     r"fraction must be in \[0, 1\]", "nan"),
    # --- thresholds: make_decision
    ("make_decision rho_threshold=1.5",
     lambda: pruning.make_decision(_post(), _model(), "rho", rho_threshold=1.5),
     r"rho_threshold=1.5 is not a finite number in \[0, 1\]", ""),
    ("make_decision rho_threshold=-0.1",
     lambda: pruning.make_decision(_post(), _model(), "rho", rho_threshold=-0.1),
     r"rho_threshold=-0.1 is not a finite number in \[0, 1\]", ""),
    ("make_decision rho_threshold=nan",
     lambda: pruning.make_decision(_post(), _model(), "rho", rho_threshold=NAN),
     "rho_threshold=nan", ""),
    ("make_decision magnitude_threshold=nan",
     lambda: pruning.make_decision(_post(), _model(), "magnitude", magnitude_threshold=NAN),
     "magnitude_threshold=nan is not a finite number", ""),
    ("make_decision magnitude_threshold=-1",
     lambda: pruning.make_decision(_post(), _model(), "magnitude", magnitude_threshold=-1.0),
     r"magnitude_threshold=-1.0 is not a finite number in \[0, inf\]", ""),
    ("make_decision log_alpha_threshold=inf",
     lambda: pruning.make_decision(_post(), _model(), "log_alpha", log_alpha_threshold=INF),
     "log_alpha_threshold=inf is not a finite number", ""),
    ("make_decision log_alpha_threshold=nan",
     lambda: pruning.make_decision(_post(), _model(), "log_alpha", log_alpha_threshold=NAN),
     "log_alpha_threshold=nan", ""),
    ("make_decision unit_threshold=nan",
     lambda: pruning.make_decision(_post(), _model(), "unit", unit_threshold=NAN),
     "unit_threshold=nan is not a finite number", ""),
    ("make_decision layer_thresholds nan",
     lambda: pruning.make_decision(_post(), _model(), "unit", unit_threshold=0.0,
                                   layer_thresholds={"fc1": NAN}),
     r"layer_thresholds\['fc1'\]=nan", "+inf"),
    ("unit_keep threshold=nan", lambda: unit_keep({"fc1.weight": np.zeros(3)}, NAN),
     "threshold=nan is not a number", ""),
    # --- a posterior of another model
    ("make_decision of another model's posterior",
     lambda: pruning.make_decision(_post((5, 6, 3)), _model(), "magnitude"),
     r"other shapes \(posterior vs model\): fc1.weight \(6, 5\) vs \(4, 5\); "
     r"fc2.weight \(3, 6\) vs \(3, 4\)", "does not belong to this model"),
    ("log_relative_density with a missing site",
     lambda: pruning.log_relative_density(_post(), model=_model((5, 4, 4, 3))),
     "missing from the posterior: fc3.weight", "fc2.weight (3, 4) vs (4, 4)"),
    ("mean_network with an extra site", lambda: pruning.mean_network(_post((5, 4, 4, 3)),
                                                                     _model()),
     "not in the model: fc3.weight", "does not belong"),
    ("effective_moments of another model's posterior",
     lambda: pruning.effective_moments(_post((5, 6, 3)), _model()),
     r"fc1.weight \(6, 5\) vs \(4, 5\)", "does not belong"),
    ("pruning_curve of another model's posterior",
     lambda: pruning.pruning_curve(_model(), _post((5, 6, 3)), _data().test),
     r"fc1.weight \(6, 5\) vs \(4, 5\)", "does not belong"),
]


@pytest.mark.parametrize(("call", "match", "also"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_refused_naming_the_argument_and_value(call, match, also):
    with pytest.raises(ValueError, match=match) as err:
        call()
    assert also in str(err.value)


def test_threshold_refusals_are_user_input_errors():
    """The CLI prints them as one line and exits 2."""
    with pytest.raises(UserInputError):
        pruning.decide(_rho(), threshold=2)
    with pytest.raises(UserInputError):
        pruning.make_decision(_post((5, 6, 3)), _model(), "magnitude")


def test_what_is_allowed_still_works():
    """The edges of the allowed ranges and non-rho scores are not refused."""
    rho = _rho()
    assert pruning.fraction_removed(pruning.decide(rho, threshold=0.0)) == 1.0
    assert pruning.fraction_removed(pruning.decide(rho, threshold=1.0)) == pytest.approx(1 / 20)
    # log rho, -|w|, log alpha: any finite threshold
    log_rho = {k: np.log(np.maximum(v, 1e-300)) for k, v in rho.items()}
    assert pruning.fraction_removed(pruning.decide(log_rho, threshold=-1e6)) == 1.0
    assert pruning.fraction_removed(pruning.decide({"w": np.array([2.0, 5.0])},
                                                   threshold=3.0)) == 0.5
    # rho-like scores with bounds=None: the caller takes responsibility
    assert pruning.fraction_removed(pruning.decide(rho, threshold=2.0, bounds=None)) == 0.0
    d = pruning.make_decision(_post(), _model(), "rho", rho_threshold=0.0)
    assert pruning.fraction_removed(d.masks) == 1.0
    d = pruning.make_decision(_post(), _model(), "magnitude", magnitude_threshold=0.0)
    assert pruning.fraction_removed(d.masks) == 0.0
    assert re.search("fc1", str(pruning.mean_network(_post(), _model())))
