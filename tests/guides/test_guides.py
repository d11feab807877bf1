"""Every guide x prior: the fast loss is the negative ELBO Pyro computes for the same pair."""

from __future__ import annotations

import pyro
import pytest
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from bayesstruct import guides
from tests.helpers import (
    PRIOR_GRID,
    PRIOR_IDS,
    loss_difference,
    randomize_guide,
    seed,
    small_model,
)

GUIDE_NAMES = ["meanfield", "lognormal", "delta"]


def _make(kind, kw, guide_name, net="mlp", seeds=(0, 1), **guide_kw):
    """The model (initialised from ``seeds[0]``) and its guide (spread from ``seeds[1]``)."""
    model = small_model(kind, kw, net=net, seed=seeds[0])
    try:
        guide = guides.get(guide_name, model, **guide_kw)
    except ValueError as e:
        if guide_name == "lognormal":  # refused priors: tests/guides/test_lognormal.py
            assert "cannot hold prior" in str(e)
            pytest.skip(f"the lognormal guide refuses prior {kind} by design")
        if "no MAP" in str(e):
            pytest.skip(f"delta + {kind} is refused by design (no MAP; tested below)")
        assert "collapses" in str(e)
        pytest.skip("delta + empirical-Bayes ARD is refused by design (tested below)")
    randomize_guide(guide, seed=seeds[1])
    return model, guide


def _data(net="mlp", n=16, seed_=5):
    g = torch.Generator().manual_seed(seed_)
    x = torch.randn(n, 5, generator=g) if net == "mlp" else torch.randn(n, 1, 8, 8, generator=g)
    return x, torch.randint(0, 3, (n,), generator=g)


@pytest.mark.parametrize("guide_name", GUIDE_NAMES)
@pytest.mark.parametrize("kind,kw", PRIOR_GRID, ids=PRIOR_IDS)
def test_sites_match_the_model(kind, kw, guide_name):
    model, guide = _make(kind, kw, guide_name)
    x, y = _data()
    gtr = poutine.trace(guide).get_trace(x, y)
    mtr = poutine.trace(poutine.replay(model, trace=gtr)).get_trace(x, y)
    latent = {n for n, s in mtr.nodes.items()
              if s["type"] == "sample" and not s["is_observed"] and not site_is_subsample(s)}
    assert latent == {n for n, s in gtr.nodes.items() if s["type"] == "sample"}
    for n in latent:
        assert gtr.nodes[n]["value"].shape == mtr.nodes[n]["value"].shape


# beta = 1 is checked on one prior; beta = 0.3 on all (a beta left out anywhere shows there)
BETA_GRID = [(1.0, *PRIOR_GRID[0])] + [(0.3, k, kw) for k, kw in PRIOR_GRID]
BETA_IDS = [f"beta={b}-{i}" for b, i in zip([1.0] + [0.3] * len(PRIOR_GRID),
                                             PRIOR_IDS[:1] + PRIOR_IDS, strict=True)]


@pytest.mark.stochastic
@pytest.mark.parametrize("guide_name", GUIDE_NAMES)
@pytest.mark.parametrize("beta,kind,kw", BETA_GRID, ids=BETA_IDS)
def test_fast_loss_is_pyros_negative_elbo(kind, kw, guide_name, beta):
    """E[guide.loss] == E[Trace_ELBO loss] (M1: N/B scaling, beta on every KL term); bound:
    5 SE, ``loss_difference``'s SE of the means of 1500 fast and 600 Pyro draws (the delta
    guide is deterministic and must agree to float precision)."""
    model, guide = _make(kind, kw, guide_name, seeds=(seed(0), seed(1)))
    model.kl_weight = beta
    x, y = _data(seed_=seed(5))
    elbo = pyro.infer.Trace_ELBO()
    with torch.no_grad():
        if guide_name == "delta":  # deterministic: must agree exactly
            torch.testing.assert_close(guide.loss(x, y).double(),
                                       torch.tensor(elbo.loss(model, guide, x, y),
                                                    dtype=torch.float64), rtol=1e-5, atol=1e-3)
            return
    diff, se = loss_difference(model, guide, x, y, 1500, elbo, n_ref=600)
    assert abs(diff) < 5 * se, (diff, se)


# one prior of each kind on the Elman net (diagonal covariance), the scalar covariance with a
# hierarchical prior and the GRU with an empirical-Bayes one (~10 s each: Pyro's ELBO side)
RNN_GRID = ([("rnn", "diagonal", *PRIOR_GRID[i]) for i in (0, 3, 5, 6)]
            + [("rnn", "scalar", *PRIOR_GRID[5]), ("gru", "scalar", *PRIOR_GRID[1])])
RNN_IDS = [f"{n}-{c}-{k}-{'-'.join(f'{a}={b}' for a, b in kw.items())}"
           for n, c, k, kw in RNN_GRID]


@pytest.mark.stochastic
@pytest.mark.parametrize("net,covariance,kind,kw", RNN_GRID, ids=RNN_IDS)
def test_recurrent_fast_loss_is_pyros_negative_elbo(kind, kw, net, covariance):
    """Recurrent nets: one weight draw per minibatch (no local reparameterisation), with a
    diagonal or a scalar-per-site posterior covariance. Bound: 5 SE, ``loss_difference``'s
    SE of the means of 1000 fast and 300 Pyro draws."""
    model, guide = _make(kind, kw, "meanfield", net=net, seeds=(seed(0), seed(1)),
                         covariance=covariance)
    assert not guide.local
    x, y = _data(seed_=seed(5))
    diff, se = loss_difference(model, guide, x, y, 1000, pyro.infer.Trace_ELBO(), n_ref=300)
    assert abs(diff) < 5 * se, (diff, se)


@pytest.mark.stochastic
@pytest.mark.parametrize("kind,kw", [PRIOR_GRID[0], PRIOR_GRID[3]],
                         ids=[PRIOR_IDS[0], PRIOR_IDS[3]])
def test_weight_draws_and_local_reparameterisation_agree(kind, kw):
    """On an MLP both estimators are unbiased for the same negative ELBO (bound: 5 SE of the
    difference of the two means of 3000 independent draws each, ``sqrt(v1 / n + v2 / n)``)."""
    x, y = _data(seed_=seed(5))
    means = []
    for i, reparam in enumerate(("local", "weights")):
        model, guide = _make(kind, kw, "meanfield", seeds=(seed(0), seed(1)), reparam=reparam)
        assert guide.local == (reparam == "local")
        torch.manual_seed(seed(10 + i))  # independent draws for the two estimators
        with torch.no_grad():
            vals = torch.stack([guide.loss(x, y) for _ in range(3000)]).double()
        means.append((vals.mean(), vals.var() / len(vals)))
    (m1, v1), (m2, v2) = means
    assert abs(float(m1 - m2)) < 5 * float((v1 + v2).sqrt())


def test_scalar_covariance_has_one_variance_per_site():
    model, guide = _make("gaussian", {}, "meanfield", covariance="scalar")
    assert all(p.dim() == 0 for p in guide.log_var.values())
    for s in model.sites:
        sd = guide.scales()[s.name]
        assert sd.shape == s.shape and torch.all(sd == sd.reshape(-1)[0])
    n_diag = sum(p.numel() for p in _make("gaussian", {}, "meanfield")[1].parameters())
    n_scalar = sum(p.numel() for p in guide.parameters())
    assert n_diag - n_scalar == sum(s.numel - 1 for s in model.sites)


def test_local_reparameterisation_is_refused_for_recurrent_nets():
    with pytest.raises(ValueError, match="reparam='local' is not possible: the layer rnn "
                                         "\\(ElmanRNN\\) is recurrent: it reuses its weights"):
        guides.MeanField(small_model("gaussian", {}, net="rnn"), reparam="local")
    with pytest.raises(ValueError, match="covariance='full'; allowed: diagonal, scalar"):
        guides.MeanField(covariance="full")


@pytest.mark.stochastic
def test_conv_net_fast_loss_is_pyros_negative_elbo():
    """Bound: 5 SE, ``loss_difference``'s SE of the two means of 400 draws."""
    model, guide = _make("ard", {"per": "unit", "hyper": "gamma"}, "meanfield", net="conv",
                         seeds=(seed(0), seed(1)))
    x, y = _data("conv", 8, seed_=seed(5))
    diff, se = loss_difference(model, guide, x, y, 400, pyro.infer.TraceMeanField_ELBO())
    assert abs(diff) < 5 * se


def test_delta_refuses_empirical_bayes_ard():
    model = small_model("ard", {"hyper": "empirical_bayes"})
    with pytest.raises(ValueError, match="alpha = 1/m\\^2"):
        guides.Delta(model)


def test_unknown_guide_lists_allowed():
    with pytest.raises(ValueError, match="meanfield, lognormal, delta"):
        guides.get("laplace")


def test_guide_parameters_exclude_the_model():
    model, guide = _make("gaussian", {}, "meanfield")
    names = [n for n, _ in guide.named_parameters()]
    assert names and all(n.startswith(("loc.", "log_var.")) for n in names)


def test_local_reparameterisation_runs_point_estimated_layers_and_refuses_bayesian_ones():
    from bayesstruct import nets, priors
    from bayesstruct.models import BayesianNet

    net = torch.nn.Sequential(nets.mlp([4, 3]), torch.nn.BatchNorm1d(3))
    assert guides.MeanField(BayesianNet(net, priors.Gaussian()), reparam="local").local
    bayesian_norm = BayesianNet(net, priors.Gaussian(), include=["BatchNorm1d"])
    with pytest.raises(ValueError, match="not possible: .*1 .BatchNorm1d. has a Bayesian gain"):
        guides.MeanField(bayesian_norm, reparam="local")
    assert not guides.MeanField(bayesian_norm).local  # weight draws
