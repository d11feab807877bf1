"""M5: rho against its definition evaluated with scipy's Normal density."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from bayesstruct import guides, posterior, pruning
from tests.helpers import randomize_guide, small_model


@pytest.mark.parametrize("kind,kw", [("gaussian", {"loc": 0.3, "empirical_bayes": True}),
                                     ("ard", {"per": "weight"})])
def test_rho_is_density_at_prior_mode_over_density_at_q_mode(kind, kw):
    model = small_model(kind, kw)
    guide = guides.MeanField(model)
    randomize_guide(guide)
    post = posterior.from_guide(model, guide, num_draws=2)
    rho = pruning.relative_density(post)
    assert set(rho) == {"fc1.weight", "fc2.weight"}
    for name, r in rho.items():
        m = post.variational_loc[name].values.astype(np.float64)
        s = post.variational_scale[name].values.astype(np.float64)
        mode = model.prior.mode(model.site(name))
        expected = norm.pdf(mode, m, s) / norm.pdf(m, m, s)
        np.testing.assert_allclose(r, expected, rtol=1e-10)
        assert np.all((r >= 0) & (r <= 1))


def test_unit_rho_is_the_product_over_the_group():
    model = small_model("ard", {"per": "unit"})
    guide = guides.MeanField(model)
    randomize_guide(guide)
    post = posterior.from_guide(model, guide, num_draws=2)
    w = pruning.log_relative_density(post)["fc1.weight"]
    u = pruning.log_relative_density(post, level="unit")["fc1.weight"]
    assert u.shape == (5,)
    np.testing.assert_allclose(np.exp(u), np.prod(np.exp(w), axis=0), rtol=1e-10)


def test_rho_needs_a_density(digits):
    model = small_model("gaussian", {})
    post = posterior.from_guide(model, guides.Delta(model), num_draws=2)
    with pytest.raises(ValueError, match="magnitude"):
        pruning.relative_density(post)
    with pytest.raises(ValueError, match="level"):
        pruning.relative_density(post, level="layer")
