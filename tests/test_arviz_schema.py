"""The ArviZ layout every engine writes: pointwise log-likelihood, prior, hyperparameters,
sample statistics, coordinates, library attributes; ArviZ's functions on saved posteriors."""

from __future__ import annotations

import importlib
import math
import warnings
from collections import OrderedDict

import matplotlib
import numpy as np
import pyro
import pytest
import torch
import torch.nn.functional as F
from pyro import poutine
from torch import nn

from bayesstruct import guides, nets, posterior, priors, pruning
from bayesstruct.data import Split
from bayesstruct.inference import svi
from bayesstruct.models import BayesianNet
from bayesstruct.predict import add_posterior_predictive
from tests.helpers import iid_se, seed, small_model

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az

mcmc_mod = importlib.import_module("bayesstruct.inference.mcmc")
sgld_mod = importlib.import_module("bayesstruct.inference.sgld")

ENGINES = ("svi", "nuts", "psgld")


def _mlp(ds, prior, width: int = 8) -> BayesianNet:
    torch.manual_seed(0)
    return BayesianNet(nets.build("mlp", ds.input_shape, ds.n_classes, [width]), prior)


def _toy(n: int = 60) -> Split:
    """Three classes in five features, separable enough for a quick chain."""
    g = torch.Generator().manual_seed(3)
    y = torch.arange(n) % 3
    x = torch.randn(n, 5, generator=g) + 1.5 * F.one_hot(y, 5).float()
    return Split(x, y)


@pytest.fixture(scope="module")
def fitted(digits, tmp_path_factory):
    """``engine -> (model, training split, posterior as written and read back)``: SVI with a
    mean-field guide and empirical-Bayes ARD, NUTS on an 18-parameter logistic regression,
    pSGLD; each
    with its ``posterior_predictive`` and through ``posterior.save`` / ``load``."""
    out = tmp_path_factory.mktemp("posteriors")
    runs = {}
    pyro.set_rng_seed(seed(0))
    model = _mlp(digits, priors.ARD(per="unit"))
    runs["svi"] = (model, digits.train,
                   svi(model, guides.MeanField(), digits, epochs=2, lr=0.01, num_draws=20,
                       progress=False))
    torch.manual_seed(0)
    split = _toy()
    model = BayesianNet(nn.Sequential(OrderedDict(fc1=nn.Linear(5, 3))), priors.Gaussian())
    runs["nuts"] = (model, split,
                    mcmc_mod.mcmc(model, split, num_warmup=30, num_samples=60, num_chains=2,
                                  chain_method="sequential", jit_compile=True, seed=seed(0),
                                  progress=False))
    model = _mlp(digits, priors.Gaussian())
    runs["psgld"] = (model, digits.train,
                     sgld_mod.psgld(model, digits, num_samples=20, burn_in=20, num_chains=2,
                                    lr=1e-3, seed=seed(0), progress=False))
    back = {}
    for name, (model, split, post) in runs.items():
        add_posterior_predictive(post, model, split.x, seed=seed(1))
        back[name] = (model, split, posterior.load(posterior.save(post, out / f"{name}.nc")))
    return back


@pytest.mark.parametrize("engine", ENGINES)
def test_arviz_functions_run_on_saved_posteriors(fitted, engine):
    model, split, post = fitted[engine]
    assert {"posterior", "log_likelihood", "observed_data", "constant_data", "sample_stats",
            "prior", "posterior_predictive"} <= set(post.groups())
    n_chain, n_draw = post.posterior.sizes["chain"], post.posterior.sizes["draw"]
    ll = post.log_likelihood["obs"]
    assert ll.dims == ("chain", "draw", "obs_id") and ll.shape == (n_chain, n_draw, len(split))
    assert post.posterior_predictive["obs"].shape == ll.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pareto-k and few-draw warnings on tiny runs
        loo, waic = az.loo(post), az.waic(post)
        assert np.isfinite(loo.elpd_loo) and np.isfinite(waic.elpd_waic)
        # both estimate the elpd from the same matrix: at most the total log-likelihood
        assert loo.elpd_loo <= ll.values.max(axis=(0, 1)).sum() + 1e-6
        n_bias = post.posterior["fc1.bias"].shape[-1]
        assert len(az.summary(post, var_names=["fc1.bias"])) == n_bias
        az.plot_ppc(post, num_pp_samples=10)
    plt.close("all")
    assert np.isfinite(post.sample_stats["lp"].values).all()
    for g in post.groups():
        attrs = getattr(post, g).attrs
        assert attrs["inference_library"] == "pyro", g
        assert attrs["inference_library_version"] == pyro.__version__, g
        assert {"bayesstruct_version", "created_at"} <= set(attrs), g


def test_energy_diagnostics_apply_to_nuts_only(fitted):
    post = fitted["nuts"][2]
    stats = post.sample_stats
    assert {"lp", "energy", "acceptance_rate", "tree_depth", "n_steps", "diverging",
            "step_size"} <= set(stats.data_vars)
    assert np.all(np.isfinite(az.bfmi(post)))
    az.plot_energy(post)
    plt.close("all")
    # NUTS's tree: at most 2^depth - 1 leapfrog steps, acceptance probabilities in [0, 1]
    assert np.all(stats["n_steps"].values <= 2 ** stats["tree_depth"].values - 1)
    assert np.all((stats["acceptance_rate"].values >= 0) & (stats["acceptance_rate"] <= 1))
    for engine in ("svi", "psgld"):  # no Hamiltonian: no energy to fake
        assert "energy" not in fitted[engine][2].sample_stats
        with pytest.raises(TypeError, match="Energy"):
            az.bfmi(fitted[engine][2])


@pytest.mark.stochastic
def test_nuts_energy_is_the_refreshed_hamiltonian(fitted):
    """A transition starts at the previous draw with a fresh momentum ``r ~ N(0, I)`` (in
    the mass matrix's scaled coordinates), so ``energy_t - (-lp_{t-1})`` is the kinetic energy
    ``|r|^2 / 2 ~ chi2(d) / 2``: its mean within 5 SE of ``d / 2`` (SE from the chi2 law,
    ``sqrt(d / 2 / n)``), and never negative."""
    model, _, post = fitted["nuts"]
    d = sum(s.numel for s in model.sites)
    energy, lp = post.sample_stats["energy"].values, post.sample_stats["lp"].values
    kinetic = (energy[:, 1:] + lp[:, :-1]).reshape(-1)
    assert np.all(kinetic >= -1e-6)
    assert abs(kinetic.mean() - d / 2) < 5 * math.sqrt(d / 2 / kinetic.size), kinetic.mean()


def test_nuts_lp_is_the_log_joint_at_the_draw(fitted):
    """No constrained sites in this model (a Gaussian prior): ``lp`` is Pyro's log joint at
    the draw, ``log p(w) + sum_i log p(y_i | x_i, w)``."""
    model, split, post = fitted["nuts"]
    for c, d in ((0, 0), (1, 17)):
        values = {k: torch.as_tensor(post.posterior[k].values[c, d])
                  for k in post.posterior.data_vars}
        tr = poutine.trace(poutine.condition(model, values)).get_trace(split.x, split.y)
        assert float(post.sample_stats["lp"].values[c, d]) == pytest.approx(
            float(tr.log_prob_sum()), rel=1e-4, abs=1e-3)


def test_log_likelihood_by_hand(fitted):
    """``log softmax`` of the MLP ``fc2(relu(fc1(x)))`` at two stored draws, by hand."""
    _, split, post = fitted["svi"]
    x, y = split.x.flatten(1), split.y
    for d in (3, 11):
        w = {k: torch.as_tensor(post.posterior[k].values[0, d]) for k in post.posterior.data_vars}
        logits = F.linear(F.relu(F.linear(x, w["fc1.weight"], w["fc1.bias"])), w["fc2.weight"],
                          w["fc2.bias"])
        ref = torch.log_softmax(logits.double(), -1).gather(1, y[:, None]).squeeze(1)
        np.testing.assert_allclose(post.log_likelihood["obs"].values[0, d], ref.numpy(),
                                   rtol=1e-5, atol=1e-5)
    # the SVI log joint: log prior + the full-data log-likelihood
    assert "lp" in post.sample_stats


def test_log_likelihood_cap_keeps_evenly_spaced_observations(digits):
    model = _mlp(digits, priors.Gaussian())
    guide = guides.MeanField(model)
    post = posterior.from_guide(model, guide, 4, observed=digits.train.y,
                                inputs=digits.train.x, log_likelihood_obs=100)
    ids = post.log_likelihood.obs_id.values
    assert len(ids) == 100 and ids[0] == 0 and ids[-1] == len(digits.train) - 1
    assert "obs_subset" in post.log_likelihood.attrs
    assert "sample_stats" not in post.groups()  # no log joint without every observation
    capped = post.log_likelihood["obs"].values
    full = posterior.add_log_likelihood(post, model, digits.train.x, digits.train.y,
                                        log_likelihood_obs=None)
    assert full.log_likelihood.sizes["obs_id"] == len(digits.train)
    np.testing.assert_allclose(full.log_likelihood["obs"].values[:, :, ids], capped)


def test_long_chains_keep_fewer_observations(digits, monkeypatch):
    """At most LOG_LIKELIHOOD_VALUES numbers: draws x observations, observations cut first."""
    model = _mlp(digits, priors.Gaussian())
    guide = guides.MeanField(model)
    monkeypatch.setattr(posterior, "LOG_LIKELIHOOD_VALUES", 8 * 150)
    post = posterior.from_guide(model, guide, 8, observed=digits.train.y,
                                inputs=digits.train.x)
    assert post.log_likelihood.sizes["obs_id"] == 150
    monkeypatch.setattr(posterior, "LOG_LIKELIHOOD_VALUES", 8 * 10)  # never below 100
    post = posterior.from_guide(model, guide, 8, observed=digits.train.y,
                                inputs=digits.train.x)
    assert post.log_likelihood.sizes["obs_id"] == 100


def test_coordinates_carry_meaning(fitted, digits):
    post = fitted["svi"][2]
    assert list(post.posterior["fc1_in"].values[:3]) == ["r0c0", "r0c1", "r0c2"]
    assert post.posterior["fc1_in"].values[14] == "r1c6"  # row 1, column 6 of the 8 x 8 image
    assert list(post.posterior["fc2_out"].values) == list(digits.classes)
    assert list(post.observed_data["class"].values) == list(digits.classes)
    x = post.constant_data["x"]
    assert x.dims == ("obs_id", "feature") and list(x["feature"].values) == list(
        post.posterior["fc1_in"].values)
    np.testing.assert_array_equal(x.values, digits.train.x.flatten(1).numpy())


@pytest.mark.stochastic
def test_prior_group_follows_the_fitted_ard_prior(fitted):
    """The prior draws of ``fc1.weight`` have per-input-unit variance ``1 / alpha`` with
    ``alpha`` the empirical-Bayes precisions stored in ``hyperparameters``: each unit's
    sample variance within 5 SE (``iid_se_var``) of it."""
    post = fitted["svi"][2]
    alpha = post.hyperparameters["fc1.weight.alpha"]
    assert alpha.dims == ("fc1_in",)
    draws = post.prior["fc1.weight"].values[0].astype(np.float64)  # (draw, out, in)
    flat = draws.reshape(-1, draws.shape[-1])
    var = (flat**2).mean(0)  # a mean-zero prior: the second moment
    assert np.all(np.abs(var - 1.0 / alpha.values) < 5 * iid_se(flat**2))
    bias = post.prior["fc1.bias"].values.astype(np.float64).reshape(-1)  # N(0, 1)
    assert abs((bias**2).mean() - 1.0) < 5 * iid_se(bias**2)


def test_improper_prior_has_no_prior_group(digits):
    model = small_model("log_uniform", {"level": "weight"})
    x, y = torch.randn(20, 5), torch.arange(20) % 3
    post = posterior.from_guide(model, guides.MeanField(model), 3, observed=y, inputs=x)
    assert "prior" not in post.groups()
    assert "improper" in post.attrs["prior_group"]
    assert "log_likelihood" in post.groups()


def test_rho_of_an_autonormal_posterior_is_the_closed_form(digits):
    torch.manual_seed(0)
    model = BayesianNet(nets.build("logreg", digits.input_shape, digits.n_classes),
                        priors.Gaussian())
    guide = pyro.infer.autoguide.AutoNormal(model)
    post = svi(model, guide, digits, epochs=1, lr=0.01, progress=False, num_draws=3)
    assert post.variational_loc["fc1.weight"].attrs["family"] == "Normal"
    m = guide.locs.fc1.weight.detach().double().numpy()
    s = guide.scales.fc1.weight.detach().double().numpy()
    rho = pruning.relative_density(post)["fc1.weight"]
    np.testing.assert_allclose(rho, np.exp(-(m**2) / (2 * s**2)), rtol=1e-5, atol=1e-12)


def test_arviz_base_reads_the_datatree_layout(fitted, tmp_path):
    azb = pytest.importorskip("arviz_base")
    post = fitted["nuts"][2]
    tree = posterior.to_datatree(post)
    assert tree.attrs["engine"] == "nuts"
    tree.to_netcdf(tmp_path / "tree.nc", engine="h5netcdf")
    import xarray as xr

    back = xr.open_datatree(tmp_path / "tree.nc", engine="h5netcdf")
    draws = azb.extract(back, group="posterior", var_names=["fc1.bias"], combined=True)
    assert draws.sizes["sample"] == post.posterior.sizes["chain"] * post.posterior.sizes["draw"]
    ll = azb.extract(back, group="log_likelihood", var_names=["obs"], combined=False)
    np.testing.assert_array_equal(ll.values, post.log_likelihood["obs"].values)
    assert back["sample_stats"]["energy"].dims == ("chain", "draw")
    assert back["prior"].attrs["inference_library"] == "pyro"


def test_prior_group_leaves_point_estimates_out():
    """A LayerNorm's parameters are point estimates (no prior): held at the network's values
    while the prior is sampled, and left out of the group."""
    torch.manual_seed(0)
    net = nn.Sequential(OrderedDict(fc1=nn.Linear(5, 4), norm=nn.LayerNorm(4),
                                    fc2=nn.Linear(4, 3)))
    model = BayesianNet(net, priors.Gaussian(scale=0.5))
    x, y = torch.randn(20, 5), torch.arange(20) % 3
    post = posterior.from_guide(model, guides.MeanField(model), 3, observed=y, inputs=x)
    assert {"fc1.weight", "fc2.bias"} <= set(post.prior.data_vars)
    assert "norm.weight" not in post.prior and "norm.weight" in post.posterior
    assert post.prior.attrs["point_estimates"] == "norm.bias,norm.weight"
    assert post.hyperparameters["fc1.weight.var"].dims == ()
    assert float(post.hyperparameters["fc1.weight.var"]) == pytest.approx(0.25)
