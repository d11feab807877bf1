"""The posterior as InferenceData and its netCDF round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from bayesstruct import guides, posterior
from bayesstruct.inference import svi
from tests.helpers import randomize_guide, seed, small_model


@pytest.fixture(scope="module")
def post(digits):
    from bayesstruct import nets, priors
    from bayesstruct.models import BayesianNet

    model = BayesianNet(nets.build("mlp", digits.input_shape, 10, [8]),
                        priors.ARD(per="unit", hyper="gamma"))
    return svi(model, guides.MeanField(), digits, epochs=2, lr=0.01, progress=False,
               num_draws=7)


def test_groups_and_dims(post):
    assert {"posterior", "variational_loc", "variational_scale", "observed_data",
            "optimization"} <= set(post.groups())
    w = post.posterior["fc1.weight"]
    assert w.dims == ("chain", "draw", "fc1_out", "fc1_in") and w.shape == (1, 7, 8, 64)
    assert post.posterior["fc1.weight.alpha"].dims == ("chain", "draw", "fc1_in")
    assert post.variational_loc["fc1.weight"].attrs["family"] == "Normal"
    assert post.variational_loc["fc1.weight.alpha"].attrs["family"] == "LogNormal"
    assert posterior.weight_sites(post) == ["fc1.weight", "fc2.weight"]


def test_netcdf_round_trip_is_lossless(post, tmp_path):
    path = posterior.save(post, tmp_path / "post.nc")
    back = posterior.load(path)
    assert set(back.groups()) == set(post.groups())
    for g in post.groups():
        xr.testing.assert_identical(getattr(back, g), getattr(post, g))
    assert back.attrs == post.attrs
    assert not list(tmp_path.glob(".*tmp"))  # the atomic write left nothing behind


def test_point_estimate_uses_the_variational_mean(post):
    point = posterior.point_estimate(post)
    np.testing.assert_array_equal(point["fc1.weight"], post.variational_loc["fc1.weight"].values)
    loc = post.variational_loc["fc1.weight.alpha"].values
    scale = post.variational_scale["fc1.weight.alpha"].values
    np.testing.assert_allclose(point["fc1.weight.alpha"], np.exp(loc + scale**2 / 2), rtol=1e-6)


@pytest.mark.stochastic
def test_draws_follow_the_guide():
    """20000 draws: each weight's mean and sd against q's (bound: 5 SE, ``scale / sqrt(n)``
    for a mean and ``scale / sqrt(2 n)`` for the sd of Gaussian draws)."""
    model = small_model("gaussian", {}, seed=seed(0))
    guide = guides.MeanField(model)
    randomize_guide(guide, seed=seed(1))
    torch.manual_seed(seed(2))
    n = 20_000
    idata = posterior.from_guide(model, guide, num_draws=n)
    draws = idata.posterior["fc1.weight"].values[0].astype(np.float64)
    loc = idata.variational_loc["fc1.weight"].values
    scale = idata.variational_scale["fc1.weight"].values.astype(np.float64)
    assert np.all(np.abs(draws.mean(0) - loc) < 5 * scale / np.sqrt(n))
    assert np.all(np.abs(draws.std(0) - scale) < 5 * scale / np.sqrt(2 * n))
