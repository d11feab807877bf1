"""``diagnostics``: the quantities summarised and the warnings, on draws with planted
properties (mixed, disagreeing chains, sticky chains, divergences, one chain, SVI)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bayesstruct import diagnostics, posterior
from tests.helpers import seed, small_model


def _ard_post(draws_fn, chains=4, n=500, engine="nuts", diverging=None, seed_=0):
    model = small_model("ard", {"hyper": "gamma"}, net="mlp")
    rng = np.random.default_rng(seed_)
    names = [s.name for s in model.sites] + [ls.name for ls in model.prior.latents]
    shapes = {s.name: s.shape for s in model.sites}
    shapes.update({ls.name: ls.shape for ls in model.prior.latents})
    draws = {k: torch.as_tensor(draws_fn(rng, (chains, n, *shapes[k]))) for k in names}
    for ls in model.prior.latents:
        draws[ls.name] = draws[ls.name].abs() + 0.1
    stats = {"diverging": diverging} if diverging is not None else None
    return posterior.from_draws(model, draws, sample_stats=stats, attrs={"engine": engine})


def _iid(rng, shape):
    return rng.normal(size=shape)


def test_structural_quantities_are_latents_biases_and_a_seeded_weight_sample():
    post = _ard_post(_iid, chains=2, n=50)
    q = diagnostics.structural_quantities(post, num_weights=7, seed=3)
    latents = [n for n in post.posterior.data_vars if n.endswith(".alpha")]
    biases = [n for n in post.posterior.data_vars if n.endswith(".bias")]
    picked = [n for n in q.data_vars if "[" in n]
    assert set(latents + biases) <= set(q.data_vars) and len(picked) == 7
    assert picked == list(diagnostics.structural_quantities(post, 7, seed=3).data_vars)[-7:]
    for label in picked:  # the values are the draws of that weight
        site, idx = label[:-1].split("[")
        ij = tuple(int(i) for i in idx.split(","))
        np.testing.assert_array_equal(q[label].values,
                                      post.posterior[site].values[(slice(None), slice(None),
                                                                   *ij)])


@pytest.mark.stochastic
def test_well_mixed_chains_raise_no_warning():
    """4 x 500 independent draws. Bound: >= 5 SE; over independent draws (measured on 2000
    quantities) a rank-normalised R-hat is 1.0006 with sd 0.0011, so 1.01 is 8.8 sd above it;
    a bulk ESS is 1970 with sd 125 (tail: 1900, sd 110), so 1000 (and the warnings' 400) lie
    7.8 (12) sd below."""
    d = diagnostics.diagnose(_ard_post(_iid, seed_=seed(0)), num_weights=10)
    assert d.warnings == [] and d.max_rhat < 1.01 and d.min_ess_bulk > 1000
    assert d.divergences is None


@pytest.mark.stochastic
def test_disagreeing_chains_are_named():
    """Chain 0 of 4 shifted by 1.5 sd: R-hat is 1.207 with sd 0.013 per quantity (measured on
    2000 quantities; ~ sqrt(1 + 0.21 x 1.5^2)), 8 sd above the bound 1.1 and 15 above the
    warning's 1.01 (bound: >= 5 SE)."""
    def shifted(rng, shape):
        x = rng.normal(size=shape)
        x[0] += 1.5  # chain 0 sits elsewhere
        return x

    d = diagnostics.diagnose(_ard_post(shifted, seed_=seed(0)), num_weights=4)
    assert d.max_rhat > 1.1
    assert any(w.startswith("R-hat above 1.01") and "the chains disagree" in w
               for w in d.warnings)


@pytest.mark.stochastic
def test_sticky_chains_warn_about_ess():
    """AR(1) chains with phi = 0.99: a bulk ESS of 11 (sd 5.4, measured) against the bound 400
    (bound: >= 5 SE; 70 sd)."""
    def ar(rng, shape):  # AR(1) with phi = 0.99: ESS ~ n (1 - phi) / (1 + phi) per chain
        e = rng.normal(size=shape)
        x = np.empty(shape)
        x[:, 0] = e[:, 0]
        for t in range(1, shape[1]):
            x[:, t] = 0.99 * x[:, t - 1] + np.sqrt(1 - 0.99**2) * e[:, t]
        return x

    d = diagnostics.diagnose(_ard_post(ar, seed_=seed(0)), num_weights=4)
    assert d.min_ess_bulk < 400
    assert any(w.startswith("bulk ESS below 400") for w in d.warnings)


def test_divergences_one_chain_and_svi_are_said_in_words():
    div = np.zeros((4, 500), dtype=bool)
    div[1, 7] = div[2, 9] = True
    d = diagnostics.diagnose(_ard_post(_iid, diverging=div), num_weights=4)
    assert d.divergences == 2
    assert any("2 divergent transitions of 2000" in w and "sample the hierarchy non-centred"
               in w for w in d.warnings)
    post = _ard_post(_iid, diverging=div)
    post.attrs["noncentred"] = "fc1.weight"
    d = diagnostics.diagnose(post, num_weights=4)
    assert any("already sampled non-centred" in w for w in d.warnings)
    one = diagnostics.diagnose(_ard_post(_iid, chains=1, n=300), num_weights=4)
    assert one.max_rhat is None and any("one chain only" in w for w in one.warnings)
    svi = diagnostics.diagnose(_ard_post(_iid, chains=1, n=300, engine="svi"), num_weights=4)
    assert any("variational posterior q" in w for w in svi.warnings)


@pytest.mark.parametrize("chains", [1, 4])
def test_plots_are_written(tmp_path, chains):
    post = _ard_post(_iid, chains=chains, n=100)
    rho = {"fc1.weight": -np.abs(np.random.default_rng(0).normal(size=(5, 4)))}
    paths = diagnostics.plot_diagnostics(post, tmp_path, num_weights=4, log_rho=rho)
    assert sorted(p.name for p in paths) == ["diagnose-forest.png", "diagnose-log-rho.png",
                                             "diagnose-rank.png"]
    assert all(p.stat().st_size > 1000 for p in paths)
