"""The log-normal guide: which priors it holds (and why not the rest), point weights, and a
run through the recipe, the runner and the CLI with the same posterior layout as the other
guides."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from bayesstruct import guides, posterior
from bayesstruct.cli import app
from bayesstruct.config import ConfigError, resolve
from bayesstruct.pruning.units import unit_log_alpha
from bayesstruct.runner import build_model, load_data, run
from tests.helpers import ALL_PRIORS, small_model

IDS = [f"{k}-{'-'.join(f'{a}={b}' for a, b in kw.items()) or 'defaults'}" for k, kw in ALL_PRIORS]
def _held(kind: str, kw: dict) -> bool:
    """The priors with positive unit-level latents."""
    if kind == "ard":
        return kw.get("per") == "unit" and kw.get("hyper") == "gamma"
    return kind in ("sbp", "horseshoe")


@pytest.mark.parametrize("kind,kw", ALL_PRIORS, ids=IDS)
def test_holds_the_unit_level_priors_and_refuses_the_rest_with_a_reason(kind, kw):
    model = small_model(kind, kw)
    if _held(kind, kw):
        guide = guides.LogNormal(model)
        assert not guide.log_var  # point weights: no variances
        assert set(guide.latent_loc) == {k.replace(".", "__") for k in
                                         (ls.name for ls in model.prior.latents)}
        return
    with pytest.raises(ValueError, match=f"cannot hold prior '{kind}': .+; use guide "
                                         "'meanfield'") as e:
        guides.LogNormal(model)
    reason = str(e.value)
    if kind == "gaussian":
        assert ("empirical Bayes" if kw.get("empirical_bayes") else "no latent scales") in reason
    if kind == "ibp":
        assert "discrete" in reason
    if kind == "ard":
        assert ("empirical Bayes" in reason) == (kw["hyper"] == "empirical_bayes")
        assert ("per weight" in reason) == (kw["hyper"] == "gamma")
    if kind == "log_uniform" and kw["level"] == "unit":
        assert "real-valued" in reason


def test_point_weights_loss_is_the_negative_log_joint_of_the_weights():
    """With every latent's noise switched off (scales ~0), the point-weight loss is
    ``N/B nll + beta (-log p(m | latents) + KL(latents))``; checked against
    ``prior.log_prob`` at the weights (theta at its mean) plus the closed-form KL."""
    model = small_model("sbp", {})
    guide = guides.LogNormal(model)
    with torch.no_grad():
        for p in guide.latent_raw_scale.values():
            p.fill_(-40.0)  # sigma = softplus(-40) ~ 4e-18: theta is deterministic
    x, y = torch.randn(9, 5), torch.randint(0, 3, (9,))
    loc, (lat_loc, lat_scale) = guide.locs(), guide.latent_params()
    theta = {k: torch.exp(v).clamp(max=1.0) for k, v in lat_loc.items()}
    with torch.no_grad():
        nll = model.likelihood.nll(model.predict(x, {**theta, **loc}), y) * 50 / 9
        log_p_w = sum(model.prior.site_prior(s, theta).log_prob(loc[s.name])
                      for s in model.sites)
        kl_theta = sum(model.prior.weight_precision(s, lat_loc, lat_scale)[3]
                       for s in model.weight_sites)
        ref = nll - log_p_w + kl_theta
        torch.testing.assert_close(guide.loss(x, y), ref, rtol=1e-5, atol=1e-4)


def test_meanfield_weights_have_variances_and_refuse_nothing_more():
    model = small_model("sbp", {})
    guide = guides.LogNormal(model, weights="meanfield")
    assert set(guide.log_var) == {s.name.replace(".", "__") for s in model.sites}
    with pytest.raises(ValueError, match="weights='ham'; allowed: point, meanfield"):
        guides.LogNormal(weights="ham")
    with pytest.raises(ValueError, match="max_scale bounds mean-field weights"):
        guides.LogNormal(weights="point", max_scale=0.2)


def test_delta_refuses_the_truncated_prior():
    with pytest.raises(ValueError, match="no MAP"):
        guides.Delta(small_model("sbp", {}))


SBP_ENTRY = """\
description: a small MLP on digits with Structured Bayesian Pruning (test)
data:
  name: digits
net:
  kind: mlp
  hidden: [16]
prior:
  kind: sbp
pruning:
  unit_threshold: 0.0
defaults:
  inference: svi-lognormal
  epochs: 3
  batch_size: 64
  lr: 0.01
  num_draws: 20
"""


@pytest.mark.parametrize("weights", ["point", "meanfield"])
def test_a_run_writes_the_usual_posterior_and_decides_units_by_snr(tmp_path, weights):
    """``bayesstruct run`` with the recipe: the posterior holds q's truncated factors (with
    their interval) and the draws; the unit scores are ``-2 log SNR``; ``diagnose`` reads
    the run."""
    entry = tmp_path / "sbp-digits.yaml"
    entry.write_text(SBP_ENTRY)
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["run", str(entry), "--out", str(out), "--quiet", "--set",
                                   f"inference.weights={weights}", "--set",
                                   "pruning.mc_samples=3"])
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["criterion"] == "unit" and metrics["test_acc"] > 0.5  # chance: 0.1
    post = posterior.load(out / "posterior.nc")
    assert post.attrs["guide"] == "lognormal"
    loc = post.variational_loc["fc1.weight.theta"]
    assert loc.attrs["family"] == "TruncatedLogNormal"
    assert (loc.attrs["log_low"], loc.attrs["log_high"]) == (-20.0, 0.0)
    family = post.variational_loc["fc1.weight"].attrs["family"]
    assert family == ("Delta" if weights == "point" else "Normal")
    draws = post.posterior["fc1.weight.theta"].values
    assert draws.shape == (1, 20, 64) and draws.min() > 0 and draws.max() <= 1.0
    # the posterior mean of theta is the truncated one, and the unit score -2 log SNR
    cfg = resolve(str(entry), None, [f"inference.weights={weights}"])
    model = build_model(cfg, load_data(cfg))
    mean = posterior.point_estimate(post)["fc1.weight.theta"]
    mu = torch.as_tensor(loc.values, dtype=torch.float64)
    sd = torch.as_tensor(post.variational_scale["fc1.weight.theta"].values,
                         dtype=torch.float64)
    q = guides.latent_factor(model.prior.latents[0], mu, sd)
    torch.testing.assert_close(torch.as_tensor(mean), q.mean)
    scores = unit_log_alpha(post, model)["fc1.weight"]
    torch.testing.assert_close(torch.as_tensor(scores), torch.log(q.variance / q.mean**2))
    diag = CliRunner().invoke(app, ["diagnose", str(out), "--weights", "5"])
    assert diag.exit_code == 0, diag.output


def test_recipe_refuses_settings_the_guide_cannot_take(tmp_path):
    entry = tmp_path / "sbp-digits.yaml"
    entry.write_text(SBP_ENTRY)
    with pytest.raises(ConfigError, match="inference.guide: 'lognormal' cannot hold prior "
                                          "'gaussian'"):
        run(resolve("lenet300-gaussian-digits", "svi-lognormal", ["inference.epochs=1"]),
            out=tmp_path / "a")
    with pytest.raises(ConfigError, match="inference.weights chooses the lognormal guide"):
        run(resolve(str(entry), "svi-meanfield", ["inference.weights=point"]),
            out=tmp_path / "b")
    with pytest.raises(ConfigError, match="inference.guide: 'delta' has no MAP"):
        run(resolve(str(entry), "svi-map", []), out=tmp_path / "c")


@pytest.mark.stochastic
@pytest.mark.parametrize("net", ["conv", "rnn"])
def test_structure_noise_on_channels_and_recurrent_units_is_pyros_negative_elbo(net):
    """SBP's noise on a convolution's input channels (per example, in the local
    reparameterisation) and on a recurrent layer's input and hidden units (one draw per
    minibatch, with the weights): the fast loss against Pyro's ``Trace_ELBO`` of the same
    model and guide. Bound: 5 SE of the difference of the means of 600 fast and 300 Pyro
    draws (``loss_difference``)."""
    import pyro

    from tests.helpers import loss_difference, randomize_guide, seed

    model = small_model("sbp", {"log_low": -8.0}, net=net, seed=seed(0))
    guide = guides.LogNormal(model)
    randomize_guide(guide, seed=seed(1))
    assert guide.local == (net == "conv")
    g = torch.Generator().manual_seed(seed(5))
    x = torch.randn(8, 1, 8, 8, generator=g) if net == "conv" else torch.randn(8, 5,
                                                                               generator=g)
    y = torch.randint(0, 3, (8,), generator=g)
    diff, se = loss_difference(model, guide, x, y, 600, pyro.infer.Trace_ELBO(), n_ref=300)
    assert abs(diff) < 5 * se, (diff, se)
