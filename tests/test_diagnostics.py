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


def _svi_post(loss, scale=None, family="Normal", kl=None):
    """One chain of 200 draws of q, the per-epoch ``loss`` (and ``kl_weight``) trace, and q's
    factors with weight scales ``scale`` (a function of the site's shape)."""
    model = small_model("ard", {"hyper": "gamma"}, net="mlp")
    post = _ard_post(_iid, chains=1, n=200, engine="svi")
    history = [{"epoch": i + 1, "loss": float(v), **({} if kl is None else {"kl_weight": kl[i]})}
               for i, v in enumerate(loss)]
    draws = {k: post.posterior[k].values for k in post.posterior.data_vars}
    post = posterior.from_draws(model, draws, history=history, attrs={"engine": "svi"})
    if scale is not None:
        import xarray as xr
        locs, scales = {}, {}
        for s in model.weight_sites:
            v = post.posterior[s.name]
            dims = v.dims[2:]
            locs[s.name] = xr.DataArray(v.values.mean((0, 1)), dims=dims,
                                        attrs={"family": family})
            scales[s.name] = xr.DataArray(scale(v.shape[2:]), dims=dims,
                                          attrs={"family": family})
        post.add_groups(variational_loc=xr.Dataset(locs), variational_scale=xr.Dataset(scales))
    return post


def _spread(shape):
    return np.random.default_rng(1).uniform(0.01, 0.5, size=shape)


def test_svi_advice_is_the_loss_trace_and_qs_scales_not_chains():
    """An SVI run is one chain of independent draws from q: no R-hat/ESS/num_chains advice;
    a levelled-off loss and spread-out scales give no further warning."""
    flat = 1.0 + 2.0 * np.exp(-np.arange(50) / 3.0)  # levelled off long before the end
    d = diagnostics.diagnose(_svi_post(flat, _spread), num_weights=4)
    assert d.engine == "svi" and d.max_rhat is None
    assert not any("num_chains" in w or "R-hat above" in w or "ESS below" in w
                   for w in d.warnings)
    assert len(d.warnings) == 1 and "variational posterior q" in d.warnings[0]


def test_svi_loss_still_falling_or_rising_is_said():
    falling = 3.0 - 0.04 * np.arange(50)  # a straight line: never levels off
    d = diagnostics.diagnose(_svi_post(falling, _spread), num_weights=4)
    assert any(w.startswith("the loss is still falling: over the last 10 of 50 epochs")
               for w in d.warnings)
    rising = np.concatenate([1.0 + 2.0 * np.exp(-np.arange(40) / 3.0), np.linspace(1.2, 2, 10)])
    d = diagnostics.diagnose(_svi_post(rising, _spread), num_weights=4)
    assert any(w.startswith("the loss rose over the last 10") for w in d.warnings)
    # epochs of a KL warm-up (loss climbing with the KL weight) are left out of the comparison
    warm = np.concatenate([np.linspace(1.0, 3.0, 20), 1.0 + 2.0 * np.exp(-np.arange(30) / 3.0)])
    kl = list(np.linspace(0.05, 1.0, 20)) + [1.0] * 30
    d = diagnostics.diagnose(_svi_post(warm, _spread, kl=kl), num_weights=4)
    assert not any(w.startswith(("the loss is", "the loss rose")) for w in d.warnings)
    short = diagnostics.diagnose(_svi_post([3.0, 2.0, 1.5], _spread), num_weights=4)
    assert any("only 3 epochs of loss trace" in w for w in short.warnings)
    none = diagnostics.diagnose(_ard_post(_iid, chains=1, n=100, engine="svi"), num_weights=4)
    assert any("no loss trace recorded" in w for w in none.warnings)


def test_svi_scales_collapsed_or_not_learned_are_said():
    flat = 1.0 + 2.0 * np.exp(-np.arange(50) / 3.0)
    same = diagnostics.diagnose(_svi_post(flat, lambda s: np.full(s, 1.1e-3)), num_weights=4)
    assert any("have not moved apart from their common initial value" in w
               and "0.0011" in w for w in same.warnings)
    tiny = diagnostics.diagnose(_svi_post(flat, lambda s: 1e-7 * _spread(s)), num_weights=4)
    assert any(w.startswith("q's scale collapsed for 100 % of the weights") for w in tiny.warnings)
    delta = diagnostics.diagnose(_svi_post(flat, np.zeros, family="Delta"), num_weights=4)
    assert any("MAP point estimate" in w for w in delta.warnings)
    assert not any("collapsed" in w or "moved apart" in w for w in delta.warnings)


@pytest.mark.parametrize("chains", [1, 4])
def test_plots_let_no_deprecation_warning_escape(tmp_path, chains):
    """ArviZ 0.23's plot_trace makes matplotlib 3.11 warn on every call; that one warning is
    ArviZ's and is silenced exactly, so the caller sees none (and no subplot-limit warning)."""
    import warnings

    post = _ard_post(_iid, chains=chains, n=100)
    rho = {"fc1.weight": -np.abs(np.random.default_rng(0).normal(size=(5, 4)))}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        diagnostics.plot_diagnostics(post, tmp_path, num_weights=4, log_rho=rho)
    assert [str(w.message) for w in caught
            if issubclass(w.category, (DeprecationWarning, UserWarning))] == []


def test_forest_entries_are_labelled_by_the_posteriors_coordinates():
    post = _ard_post(_iid, chains=2, n=20)
    name = next(n for n in post.posterior.data_vars if n.endswith(".alpha"))
    for d in post.posterior[name].dims[2:]:  # named units, as a run's posterior has them
        post.posterior.coords[d] = [f"u{i}" for i in range(post.posterior.sizes[d])]
    v = post.posterior[name]
    scales = diagnostics._unit_scales(post)
    (da,) = [d for k, d in scales.items() if k == f"1/sqrt({name})"]
    first = [str(v[d].values[0]) for d in v.dims[2:]]
    assert list(da[da.dims[-1]].values[:1]) == [",".join(first)]
    assert len(set(da[da.dims[-1]].values)) == da.shape[-1]  # one label per entry
    np.testing.assert_allclose(da.values[..., 0],
                               1 / np.sqrt(v.values.reshape(*v.shape[:2], -1)[..., 0]))


def test_sampled_weights_are_named_by_their_coordinates():
    """Named units (a run's pixels, say) name the sampled weights as ArviZ names the others'."""
    post = _ard_post(_iid, chains=2, n=20)
    site = posterior.weight_sites(post)[0]
    d_in = post.posterior[site].dims[-1]
    post.posterior.coords[d_in] = [f"p{i}" for i in range(post.posterior.sizes[d_in])]
    q = diagnostics.structural_quantities(post, num_weights=5, seed=1)
    picked = [n for n in q.data_vars if n.startswith(site + "[")]
    assert picked
    for label in picked:
        i, j = label[len(site) + 1:-1].split(", ")
        assert j.startswith("p")
        np.testing.assert_array_equal(q[label].values,
                                      post.posterior[site].sel({d_in: j}).values[:, :, int(i)])
