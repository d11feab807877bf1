"""The stick-breaking IBP network prior (M2.5) against independent computations."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from scipy import stats

from bayesstruct import guides, inference, nets, priors, pruning
from bayesstruct import posterior as posterior_mod
from bayesstruct.data import Split
from bayesstruct.inference.mcmc import discrete_draws
from bayesstruct.models import BayesianNet
from bayesstruct.priors.ibp import kl_kumaraswamy_beta1
from tests.helpers import P_5SE, iid_se, loss_difference, randomize_guide, seed


def _model(widths, alpha=2.0, num_data=40, seed_=0, **kw) -> BayesianNet:
    torch.manual_seed(seed_)
    return BayesianNet(nets.mlp(widths), priors.IBP(alpha=alpha, **kw), num_data=num_data)


def _prior_draws(model: BayesianNet, n: int) -> dict[str, torch.Tensor]:
    with torch.no_grad(), pyro.plate("draws", n, dim=-1):
        tr = poutine.trace(model.prior.sample).get_trace()
    return {k: v["value"] for k, v in tr.nodes.items() if v["type"] == "sample"}


@pytest.mark.stochastic
@pytest.mark.parametrize("a,b,alpha", [(1.0, 1.0, 1.0), (2.5, 0.7, 1.0), (0.6, 3.0, 4.0),
                                       (5.0, 1.0, 5.0), (8.0, 0.4, 2.0)])
def test_kumaraswamy_beta_kl_against_monte_carlo(a, b, alpha):
    """The closed form against 400k draws of ``log q - log p`` (bound: 5 SE, ``sd / sqrt(n)``
    of those draws, plus 1e-4 for the clamping of v away from 0 and 1)."""
    torch.manual_seed(seed(0))
    q = dist.Kumaraswamy(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64))
    p = dist.Beta(torch.tensor(alpha, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
    v = q.sample((400_000,)).clamp(1e-12, 1 - 1e-12)
    terms = q.log_prob(v) - p.log_prob(v)
    mc, se = float(terms.mean()), float(terms.std() / math.sqrt(terms.numel()))
    closed = float(kl_kumaraswamy_beta1(torch.tensor(a, dtype=torch.float64),
                                        torch.tensor(b, dtype=torch.float64), alpha))
    assert abs(closed - mc) < 5 * se + 1e-4, (closed, mc, se)
    if a == alpha and b == 1.0:  # Kumaraswamy(a, 1) is Beta(a, 1)
        assert abs(closed) < 1e-12


@pytest.mark.stochastic
@pytest.mark.parametrize("alpha", [0.5, 3.0])
def test_stick_breaking_pi_follows_the_beta_product_law(alpha):
    """pi_k = prod_{j<=k} v_j, v_j ~ Beta(alpha, 1): -log v_j ~ Exp(alpha), so
    -log pi_k ~ Gamma(k, rate alpha) exactly (KS on the model's own 4000 independent draws of
    v; p-value floor 5.7e-7, the false-alarm rate of a 5-SE bound)."""
    model = _model([4, 12, 3], alpha=alpha, seed_=seed(0))
    v = _prior_draws(model, 4000)["fc1.v"].double()
    assert v.shape == (4000, 12)
    neg_log_pi = -torch.cumsum(torch.log(v), -1).numpy()
    for k in (1, 2, 5, 12):
        p = stats.kstest(neg_log_pi[:, k - 1], stats.gamma(a=k, scale=1 / alpha).cdf).pvalue
        assert p > P_5SE, (k, p)
    # the test has power: the law of pi_{k+1} is rejected for pi_k
    assert stats.kstest(neg_log_pi[:, 4], stats.gamma(a=6, scale=1 / alpha).cdf).pvalue < P_5SE


@pytest.mark.stochastic
def test_cascade_expected_widths_match_the_ibp_closed_form():
    """With D inputs as the customers, the first hidden layer's expected width is the IBP's
    expected number of dishes alpha * H_D (truncation K large enough to be negligible); the
    second layer's, given n_1 active units, is alpha * H_{n_1}. Bound: 5 SE, ``sd / sqrt(n)``
    of the 6000 independent draws."""
    alpha, d = 2.0, 20
    model = _model([d, 60, 60, 3], alpha=alpha, seed_=seed(0))
    draws = _prior_draws(model, 6000)
    w1 = draws["fc1.z"].sum(-1).double()
    w2 = draws["fc2.z"].sum(-1).double()
    harmonic = np.cumsum(1.0 / np.arange(1, 200))
    expected1 = alpha * harmonic[d - 1]
    se1 = float(w1.std()) / math.sqrt(w1.numel())
    assert abs(float(w1.mean()) - expected1) < 5 * se1, (float(w1.mean()), expected1)
    expected2 = alpha * np.where(w1.numpy() > 0, harmonic[np.maximum(w1.numpy(), 1).astype(int)
                                                           - 1], 0.0)
    diff = w2.numpy() - expected2
    assert abs(diff.mean()) < 5 * diff.std() / math.sqrt(diff.size), diff.mean()
    # masks of a layer are binary and the widths vary from draw to draw
    assert set(torch.unique(draws["fc1.z"]).tolist()) <= {0.0, 1.0} and float(w1.std()) > 0.5


@pytest.mark.stochastic
def test_fast_loss_is_pyros_negative_elbo_at_low_temperature():
    """At a low Concrete temperature the relaxed fast path estimates the discrete model's
    negative ELBO, which Pyro's Trace_ELBO estimates from the model with Bernoulli masks
    (bound: 5 SE, ``loss_difference``'s SE of the means of 3000 fast and 600 Pyro draws)."""
    model = _model([5, 4, 3, 3], alpha=2.0, temperature=0.01, seed_=seed(0))
    guide = guides.MeanField(model)
    randomize_guide(guide, seed=seed(1))
    with torch.no_grad():  # Kumaraswamy b ~ 1.3-2: float32 draws of v stay below 1 in Pyro's path
        for p in guide.latent_raw_scale.values():
            p.add_(2.5)
    torch.manual_seed(seed(3))
    x, y = torch.randn(40, 5), torch.randint(0, 3, (40,))
    diff, se = loss_difference(model, guide, x, y, n=3000, n_ref=600)
    assert abs(diff) < 5 * se, (diff, se)


def _fixed_values(model: BayesianNet, seed_: int = 0) -> dict[str, torch.Tensor]:
    """One draw of the continuous sites (v, w~, biases) from the prior."""
    torch.manual_seed(seed_)
    with torch.no_grad():
        tr = poutine.trace(model.prior.sample).get_trace()
    return {k: v["value"] for k, v in tr.nodes.items()
            if v["type"] == "sample" and not k.endswith(".z")}


def _brute_force_log_joint(model: BayesianNet, values, x, y) -> torch.Tensor:
    """log p(v) + log p(w) + log sum_z p(z | v) p(y | x, w, z) by an explicit loop over every
    mask configuration (independent of Pyro's enumeration)."""
    prior = model.prior
    k1, k2 = (p.shape[0] for p, _ in prior.layers)
    logs = []
    for z1 in itertools.product([0.0, 1.0], repeat=k1):
        for z2 in itertools.product([0.0, 1.0], repeat=k2):
            z = {"fc1.z": torch.tensor(z1), "fc2.z": torch.tensor(z2)}
            lp = torch.zeros(())
            n = float(x.shape[1])
            for layer in ("fc1", "fc2"):
                pi = torch.cumprod(values[f"{layer}.v"].double(), -1)
                p1 = 1 - (1 - pi) ** n
                zz = z[f"{layer}.z"].double()
                lp = lp + (torch.xlogy(zz, p1) + torch.xlogy(1 - zz, 1 - p1)).sum()
                n = float(zz.sum())
            w = {s.name: values[s.name] for s in model.sites}
            w["fc2.weight"] = w["fc2.weight"] * z["fc1.z"]
            w["fc3.weight"] = w["fc3.weight"] * z["fc2.z"]
            logits = torch.func.functional_call(model.net, w, (x,))
            lp = lp + torch.distributions.Categorical(logits=logits).log_prob(y).sum().double()
            logs.append(lp)
    total = torch.logsumexp(torch.stack(logs), 0)
    for layer in ("fc1", "fc2"):
        v = values[f"{layer}.v"].double()
        total = total + dist.Beta(prior.alpha, 1.0).log_prob(v).sum()
    for s in model.sites:
        scale = 1.0 if s.role == "weight" else prior.bias_scale
        total = total + dist.Normal(0.0, scale).log_prob(values[s.name].double()).sum()
    return total


def test_enumerated_model_sums_the_masks_out_exactly():
    model = _model([3, 3, 2, 2], alpha=1.5, num_data=25)
    torch.manual_seed(1)
    x, y = torch.randn(25, 3), torch.randint(0, 2, (25,))
    values = _fixed_values(model)
    with model.prior.enumerated():
        cond = poutine.condition(model, data=values)
        loss = pyro.infer.TraceEnum_ELBO(max_plate_nesting=1).loss(
            cond, lambda x, y: None, x, y)
    ref = _brute_force_log_joint(model, values, x, y)
    assert abs(float(-loss) - float(ref)) < 1e-3 * max(1.0, abs(float(ref))), (
        float(-loss), float(ref))


@pytest.mark.stochastic
def test_infer_discrete_draws_follow_the_exact_conditional():
    """The frequencies of the 16 mask configurations in 1500 draws against the exact
    conditional by brute force (bound: 5 SE, the binomial SE sqrt(p (1 - p) / n), plus 1e-3
    (under 2 draws of 1500) where n p is too small for the normal approximation)."""
    model = _model([3, 2, 2, 2], alpha=1.5, num_data=20, seed_=seed(0))
    torch.manual_seed(seed(2))
    x, y = torch.randn(20, 3), torch.randint(0, 2, (20,))
    values = _fixed_values(model, seed_=seed(4))
    n = 1500
    with model.prior.enumerated():
        z = discrete_draws(model, x, y, {k: v.expand(n, *v.shape) for k, v in values.items()})
    assert z["fc1.z"].shape == (n, 2) and z["fc2.z"].shape == (n, 2)
    codes = (z["fc1.z"] @ torch.tensor([8.0, 4.0]) + z["fc2.z"] @ torch.tensor([2.0, 1.0]))
    freq = torch.bincount(codes.long(), minlength=16).double() / n
    # exact conditional by brute force: p(z | v, w, D) = p(z|v) p(y|w,z) / sum
    logs = []
    for bits in itertools.product([0.0, 1.0], repeat=4):
        v1, v2 = torch.tensor(bits[:2]), torch.tensor(bits[2:])
        lp = torch.zeros((), dtype=torch.float64)
        nn_ = 3.0
        for layer, zz in (("fc1", v1), ("fc2", v2)):
            pi = torch.cumprod(values[f"{layer}.v"].double(), -1)
            p1 = 1 - (1 - pi) ** nn_
            lp = lp + (torch.xlogy(zz, p1) + torch.xlogy(1 - zz, 1 - p1)).sum()
            nn_ = float(zz.sum())
        w = {s.name: values[s.name] for s in model.sites}
        w["fc2.weight"] = w["fc2.weight"] * v1
        w["fc3.weight"] = w["fc3.weight"] * v2
        logits = torch.func.functional_call(model.net, w, (x,))
        logs.append(lp + torch.distributions.Categorical(logits=logits).log_prob(y).sum())
    exact = torch.softmax(torch.stack(logs), 0)
    se = torch.sqrt(exact * (1 - exact) / n)
    assert bool(((freq - exact).abs() <= 5 * se + 1e-3).all()), (freq, exact)


def test_nuts_with_enumerated_masks_returns_mask_draws_and_unit_decisions():
    torch.manual_seed(0)
    x = torch.randn(40, 2)
    y = (x[:, 0] > 0).long()
    model = BayesianNet(nets.mlp([2, 3, 2]), priors.IBP(alpha=1.0), num_data=40)
    post = inference.mcmc(model, Split(x, y), num_warmup=15, num_samples=15, num_chains=1,
                          max_tree_depth=4, progress=False)
    z = post.posterior["fc1.z"].values
    assert z.shape == (1, 15, 3) and set(np.unique(z)) <= {0.0, 1.0}
    d = pruning.make_decision(post, model, unit_threshold=0.0)
    assert d.criterion == "unit"
    incl = z.mean((0, 1))
    np.testing.assert_array_equal(d.unit_masks["fc2.weight"], incl > 0.5)


def test_unit_decisions_and_pruning_follow_the_inclusion_probabilities():
    model = _model([6, 5, 4, 3], alpha=2.0)
    guide = guides.MeanField(model)
    randomize_guide(guide, seed=5)
    with torch.no_grad():
        guide.latent_loc["fc1__z"].copy_(torch.tensor([3.0, -2.0, 0.4, -0.1, 5.0]))
        guide.latent_loc["fc2__z"].copy_(torch.tensor([-3.0, 2.0, 2.0, 1.0]))
    post = posterior_mod.from_guide(model, guide, 10)
    d = pruning.make_decision(post, model, unit_threshold=0.0)
    np.testing.assert_array_equal(d.unit_masks["fc2.weight"], [True, False, True, False, True])
    np.testing.assert_array_equal(d.unit_masks["fc3.weight"], [False, True, True, True])
    assert bool(d.unit_masks["fc1.weight"].all())  # the data's inputs are never masked
    net = pruning.mean_network(post, model)
    small = pruning.prune(net, d.masks)
    widths = [m.out_features for m in small.modules() if isinstance(m, torch.nn.Linear)]
    assert widths == [3, 3, 3]
    x = torch.randn(7, 6)
    masked = torch.func.functional_call(
        net, {k: v * torch.as_tensor(d.masks[k], dtype=v.dtype) if k in d.masks else v
              for k, v in net.state_dict().items()}, (x,))
    torch.testing.assert_close(small(x), masked, rtol=1e-5, atol=1e-5)


def test_errors_are_clear():
    with pytest.raises(NotImplementedError, match="chain of Linear"):
        BayesianNet(nets.lenet5_caffe((1, 8, 8), 3), priors.IBP())
    with pytest.raises(ValueError, match="alpha must be > 0"):
        priors.IBP(alpha=0.0)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        priors.IBP(temperature=-1.0)
    wide = _model([3, 12, 2])
    with pytest.raises(ValueError, match="<= 10 units"):
        with wide.prior.enumerated():
            pass
    model = _model([3, 4, 2])
    with pytest.raises(ValueError, match="discrete"):
        guides.Delta(model)
    data = Split(torch.randn(10, 3), torch.randint(0, 2, (10,)))
    with pytest.raises(ValueError, match="discrete"):
        inference.sgld(model, data, num_samples=2, burn_in=0, progress=False)
    gauss = BayesianNet(nets.mlp([3, 4, 2]), priors.Gaussian(), num_data=10)
    with pytest.raises(ValueError, match="relaxed structure"):
        inference.svi(gauss, guides.MeanField(), data, epochs=1, temperature=0.5,
                      progress=False)


def test_temperature_anneals_geometrically():
    model = _model([4, 6, 2], alpha=2.0)
    torch.manual_seed(0)
    data = Split(torch.randn(64, 4), torch.randint(0, 2, (64,)))
    post = inference.svi(model, guides.MeanField(), data, epochs=4, batch_size=16,
                         temperature=1.0, temperature_final=0.01, progress=False)
    t = post.optimization["temperature"].values
    steps = 4 * 4
    expected = [1.0 * 0.01 ** ((4 * (e + 1) - 1) / steps) for e in range(4)]
    np.testing.assert_allclose(t, expected, rtol=1e-6)


@pytest.mark.stochastic
def test_point_estimates_of_the_stick_and_mask_factors(tmp_path):
    """Kumaraswamy means b B(1 + 1/a, b) against Monte Carlo (bound: 5 SE, ``sd / sqrt(n)``
    of 200k draws); Bernoulli means sigmoid(logit); both survive the netCDF round trip."""
    model = _model([5, 6, 3], alpha=2.0, seed_=seed(0))
    guide = guides.MeanField(model)
    randomize_guide(guide, seed=seed(7))
    post = posterior_mod.load(posterior_mod.save(posterior_mod.from_guide(model, guide, 5),
                                                 tmp_path / "p.nc"))
    point = posterior_mod.point_estimate(post)
    a = torch.exp(guide.latent_loc["fc1__v"]).detach().double()
    b = torch.nn.functional.softplus(guide.latent_raw_scale["fc1__v"]).detach().double()
    torch.manual_seed(seed(8))
    v = dist.Kumaraswamy(a, b).sample((200_000,)).numpy()
    z = (point["fc1.v"] - v.mean(0)) / iid_se(v)
    assert np.abs(z).max() < 5, z
    np.testing.assert_allclose(point["fc1.z"],
                               torch.sigmoid(guide.latent_loc["fc1__z"]).detach().numpy(),
                               rtol=1e-6)
