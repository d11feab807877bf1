"""Batched NUTS (``bayesstruct.inference.batched_nuts``, the MCMC engine's ``backend="batched"``):
the traced potential is Pyro's, the draws match known answers and Pyro's NUTS within
Monte-Carlo error, warm-up reaches its target, bad settings are refused."""

from __future__ import annotations

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

from bayesstruct import config, nets, priors, runner
from bayesstruct.data import Split
from bayesstruct.errors import ConfigError
from bayesstruct.inference import batched_nuts as bn
from bayesstruct.inference.mcmc import mcmc
from bayesstruct.models import BayesianNet
from tests.helpers import chain_se, chain_se_var, seed
from tests.inference.test_sgld import _linear_model

# a correlated 5-D Gaussian: sds 0.5 .. 3, correlation 0.6^|i - j|
_SD = torch.tensor([0.5, 1.0, 1.5, 2.0, 3.0], dtype=torch.float64)
_CORR = 0.6 ** (torch.arange(5)[:, None] - torch.arange(5)[None, :]).abs().double()
_COV = (_SD[:, None] * _SD[None, :] * _CORR).float()
_LOC = torch.tensor([1.0, -2.0, 0.0, 3.0, 0.5])
_TRIL = torch.linalg.cholesky(_COV)


def _gaussian_model() -> None:
    pyro.sample("x", dist.MultivariateNormal(_LOC, scale_tril=_TRIL))


@pytest.fixture(scope="module")
def digits01():
    cfg = config.resolve("logreg-digits01", "nuts")
    ds = runner.load_data(cfg, torch.device("cpu"))
    return cfg, ds


def _logreg_potential(cfg, ds) -> bn.ModelPotential:
    model = runner.build_model(cfg, ds)
    model.num_data, model.kl_weight = len(ds.train), 1.0
    return bn.model_potential(model, ds.train.x, ds.train.y)


def _ard_potential() -> bn.ModelPotential:
    """ARD with a Gamma hyperprior: positive precision sites, so the potential holds the
    log-Jacobian of their transform."""
    torch.manual_seed(0)
    model = BayesianNet(nets.mlp([3, 4, 2]), priors.ARD(hyper="gamma", a=2.0, b=1.0),
                        num_data=30)
    x, y = torch.randn(30, 3), torch.randint(0, 2, (30,))
    return bn.model_potential(model, x, y)


@pytest.mark.parametrize("which", ["logreg", "ard"])
def test_traced_potential_and_gradient_equal_pyros(which, digits01):
    """The traced, vmapped potential and its gradient equal Pyro's ``potential_fn`` and its
    autograd gradient at random points, chain by chain (float32 tolerance)."""
    mp = _logreg_potential(*digits01) if which == "logreg" else _ard_potential()
    assert mp.dim == (65 if which == "logreg" else sum(mp.sizes))
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(8, mp.dim, generator=gen) * 1.5
    graph = bn.trace_potential(mp.potential, mp.init)
    grad, value = bn.batched_value_and_grad(graph)(z)
    assert grad.shape == (8, mp.dim) and value.shape == (8,)
    for c in range(8):
        zc = z[c].clone().requires_grad_(True)
        u = mp.potential_fn(mp.unflatten(zc))
        (g,) = torch.autograd.grad(u, zc)
        torch.testing.assert_close(value[c], u.detach(), rtol=1e-5, atol=1e-3)
        torch.testing.assert_close(grad[c], g, rtol=1e-4, atol=1e-4)


def test_sites_are_cut_from_the_flat_vector_in_order():
    mp = _ard_potential()
    z = torch.arange(mp.dim, dtype=torch.float32)
    parts = mp.unflatten(z)
    assert list(parts) == mp.names
    torch.testing.assert_close(mp.flatten(parts), z)
    constrained = mp.constrain(z[None])
    for name, v in constrained.items():
        assert v.shape == (1, *mp.shapes[mp.names.index(name)])


@pytest.mark.stochastic
@pytest.mark.parametrize("chains", [1, 8])
def test_correlated_gaussian_means_and_variances(chains):
    """Each coordinate's mean and variance within 5 Monte-Carlo SEs of the exact ones (SE:
    ``sd / sqrt(ESS)`` with ArviZ's ESS; for the variance, of ``(x - mean)^2``), with 1 and
    with 8 chains; the bounds stay informative (5 SE of a mean below 0.35 sd)."""
    mp = bn.model_potential(_gaussian_model)
    init = bn.initial_points(mp, chains, seed=seed(0))
    draws_per_chain = 1000 if chains == 1 else 250
    res = bn.batched_nuts(mp, init, num_warmup=250, num_samples=draws_per_chain,
                          compile="fx", seed=seed(0))
    assert res.draws.shape == (chains, draws_per_chain, 5)
    for name in ("diverging", "tree_depth", "n_steps", "acceptance_rate", "energy", "lp",
                 "step_size"):
        assert res.stats[name].shape == (chains, draws_per_chain), name
    assert int(res.stats["diverging"].sum()) == 0
    d = res.draws.double().numpy()
    sd = _SD.numpy()
    se, se_var = chain_se(d), chain_se_var(d)
    z = (d.mean((0, 1)) - _LOC.numpy()) / se
    z_var = (d.var((0, 1)) - sd**2) / se_var
    assert np.all(np.abs(z) < 5), z
    assert np.all(np.abs(z_var) < 5), z_var
    assert np.all(5 * se < 0.35 * sd), se / sd
    # the adapted diagonal metric approaches the target's variances (inverse mass = var)
    ratio = res.inverse_mass.double().numpy() / sd**2
    assert np.all((ratio > 0.4) & (ratio < 2.5)), ratio


@pytest.mark.stochastic
def test_step_size_adaptation_reaches_the_target_acceptance():
    """Dual averaging drives the acceptance statistic of warm-up to ``target_accept``; after
    warm-up (the averaged step, smaller than the last iterates) the statistic sits at or above
    it, as in Stan and NumPyro. Bounds (operational, far wider than the MC error of a mean
    over 8 chains x 200 draws, ~0.01): the mean over the last 50 warm-up iterations within
    0.12 of the target; after warm-up, in [target - 0.05, target + 0.25], below 1; and the
    larger target gives a smaller step in every chain."""
    mp = bn.model_potential(_gaussian_model)
    init = bn.initial_points(mp, 8, seed=seed(1))
    steps = {}
    for target in (0.65, 0.9):
        res = bn.batched_nuts(mp, init, num_warmup=250, num_samples=200, compile="fx",
                              target_accept=target, seed=seed(1))
        warm = float(res.warmup_stats["acceptance_rate"][:, -50:].mean())
        acc = float(res.stats["acceptance_rate"].mean())
        assert abs(warm - target) < 0.12, (target, warm)
        assert target - 0.05 < acc < min(0.995, target + 0.25), (target, acc)
        steps[target] = res.step_size
    assert bool((steps[0.9] < steps[0.65]).all()), steps


@pytest.mark.slow  # 70 s: compiles the sampler and runs Pyro's NUTS beside it
@pytest.mark.stochastic
def test_logreg_digits01_posterior_means_agree_with_pyro_nuts(digits01):
    """On ``logreg-digits01`` (65 parameters) the batched sampler (compiled by TorchInductor,
    4 chains) and the engine's Pyro NUTS (JIT, 1 chain) give posterior means within 5
    combined Monte-Carlo SEs, ``|m1 - m2| / sqrt(se1^2 + se2^2) < 5``, every parameter."""
    cfg, ds = digits01
    mp = _logreg_potential(cfg, ds)
    init = bn.initial_points(mp, 4, seed=seed(2))
    res = bn.batched_nuts(mp, init, num_warmup=200, num_samples=300, compile="inductor",
                          unroll=1, seed=seed(2))  # unroll=1: the shortest compile
    ours = res.draws.double().numpy()
    model = runner.build_model(cfg, ds)
    post = mcmc(model, ds, num_warmup=200, num_samples=300, num_chains=1, jit_compile=True,
                seed=seed(2), progress=False)
    theirs = np.concatenate([post.posterior["fc1.weight"].values.reshape(1, 300, 64),
                             post.posterior["fc1.bias"].values.reshape(1, 300, 1)], -1)
    z = (ours.mean((0, 1)) - theirs.mean((0, 1))) / np.sqrt(chain_se(ours) ** 2
                                                            + chain_se(theirs) ** 2)
    assert np.all(np.abs(z) < 5), np.abs(z).max()
    assert int(res.stats["diverging"].sum()) == 0
    assert res.compile_seconds > 0 and res.sampling_seconds > 0


def test_the_engine_gives_the_pyro_backends_layout():
    """``mcmc(..., backend="batched")`` returns the Pyro backend's InferenceData layout: the
    same posterior variables and dims, and the same sample statistics."""
    model, split = _linear_model()
    kw = dict(num_warmup=30, num_samples=20, num_chains=2, seed=0, progress=False,
              chain_method="sequential")
    ours = mcmc(model, split, backend="batched", jit_compile=False, **kw)
    theirs = mcmc(model, split, jit_compile=False, **kw)
    assert set(ours.groups()) == set(theirs.groups())
    for v in theirs.posterior.data_vars:
        assert ours.posterior[v].dims == theirs.posterior[v].dims, v
        assert ours.posterior[v].shape == theirs.posterior[v].shape, v
    assert set(theirs.sample_stats.data_vars) <= set(ours.sample_stats.data_vars)
    for v in theirs.sample_stats.data_vars:
        assert ours.sample_stats[v].shape == theirs.sample_stats[v].shape, v
    assert ours.attrs["backend"] == "batched" and ours.attrs["engine"] == "nuts"


def test_the_same_seed_gives_the_same_draws():
    mp = bn.model_potential(_gaussian_model)
    init = bn.initial_points(mp, 2, seed=3)
    a = bn.batched_nuts(mp, init, num_warmup=20, num_samples=10, compile="fx", seed=3)
    b = bn.batched_nuts(mp, init, num_warmup=20, num_samples=10, compile="fx", seed=3)
    torch.testing.assert_close(a.draws, b.draws, rtol=0, atol=0)
    c = bn.batched_nuts(mp, init, num_warmup=20, num_samples=10, compile="eager", seed=3)
    torch.testing.assert_close(a.draws, c.draws)  # the traced graph is the eager arithmetic
    # the kernels a result carries serve a later call with as many chains, untraced again
    d = bn.batched_nuts(mp, init, num_warmup=20, num_samples=10, compile="fx", seed=3,
                        kernels=a.kernels)
    assert d.kernels is a.kernels and d.compile_seconds == a.compile_seconds
    torch.testing.assert_close(a.draws, d.draws, rtol=0, atol=0)


def test_bad_settings_are_refused_with_the_reason():
    mp = bn.model_potential(_gaussian_model)
    init = torch.zeros(2, 5)
    for kw, match in ((dict(compile="jax"), "allowed: eager, fx, inductor"),
                      (dict(num_samples=0), "num_samples must be an integer >= 1"),
                      (dict(max_tree_depth=0), "max_tree_depth must be an integer >= 1"),
                      (dict(target_accept=1.0), r"target_accept must lie in \(0, 1\)"),
                      (dict(step_size=-1.0), "need step_size > 0"),
                      (dict(max_delta_energy=0.0), "max_delta_energy must be > 0")):
        with pytest.raises(ValueError, match=match):
            bn.batched_nuts(mp, init, **kw)
    with pytest.raises(ValueError, match=r"init must have shape \(chains, D\)"):
        bn.batched_nuts(mp, torch.zeros(5))
    model, split = _linear_model()
    with pytest.raises(ValueError, match="allowed: pyro, batched"):
        mcmc(model, split, backend="jax", progress=False)
    with pytest.raises(ValueError, match="NUTS only"):
        mcmc(model, split, kernel="hmc", backend="batched", progress=False)
    with pytest.raises(ConfigError, match=r"inference\.backend"):
        config.resolve("logreg-digits01", "nuts", ["inference.backend=jax"])
    cfg = config.resolve("logreg-digits01", "nuts-batched")
    assert cfg.inference.backend == "batched" and cfg.inference.engine == "nuts"


def test_discrete_sites_are_refused_with_the_reason():
    def discrete() -> None:
        pyro.sample("k", dist.Categorical(torch.ones(3) / 3))
        pyro.sample("x", dist.Normal(0.0, 1.0))

    with pytest.raises(ValueError, match="site 'k' is discrete"):
        bn.model_potential(discrete)
    ibp = BayesianNet(nets.mlp([2, 3, 2]), priors.IBP(alpha=1.0), num_data=10)
    split = Split(torch.randn(10, 2), torch.randint(0, 2, (10,)))
    with pytest.raises(ValueError, match="discrete structure"):
        mcmc(ibp, split, backend="batched", progress=False)


def test_a_non_finite_start_is_refused():
    from bayesstruct.errors import NonFiniteLossError

    def bad(z: torch.Tensor) -> torch.Tensor:
        return (z * z).sum() + torch.log(-torch.ones(()))

    with pytest.raises(NonFiniteLossError, match="not finite"):
        bn.batched_nuts(bad, torch.zeros(2, 3), compile="eager", num_warmup=0, num_samples=1)


def test_stan_windows():
    assert bn.stan_windows(500) == [(75, 100), (100, 150), (150, 250), (250, 450)]
    assert bn.stan_windows(1000)[-1] == (450, 950)
    assert bn.stan_windows(10) == []
    w = bn.stan_windows(100)  # 15 / 75 / 10
    assert w[0][0] == 15 and w[-1][1] == 90


def test_module_net_is_not_touched_by_tracing():
    """Tracing reads the model's data and parameters, never writes them."""
    model, split = _linear_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    mp = bn.model_potential(model, split.x, split.y)
    bn.trace_potential(mp.potential, mp.init)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])
