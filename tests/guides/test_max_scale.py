"""``MeanField(max_scale=, max_scale_sites=)``: the bounded sites' posterior standard
deviations never exceed the bound after any step (projection), the others are free; a
pattern that matches nothing and a bound on a guide without scales are refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bayesstruct import guides, nets, priors
from bayesstruct.config import resolve
from bayesstruct.data import Split
from bayesstruct.errors import ConfigError
from bayesstruct.experiments.base import build_model, load_data
from bayesstruct.inference.registry import FitOptions
from bayesstruct.inference.svi import fit_svi, svi
from bayesstruct.models import BayesianNet

BOUND = 0.03


def _fit(max_scale, sites=("fc1.*",), epochs=30):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 5, generator=g)
    y = (x[:, 0] > 0).long()
    model = BayesianNet(nets.mlp([5, 4, 2]), priors.Gaussian(), num_data=40)
    guide = guides.MeanField(init_scale=1e-2, max_scale=max_scale, max_scale_sites=sites)
    seen = []
    orig = guide.constrain_

    def spy():  # the bound holds after every step, not only at the end
        orig()
        seen.append(float(torch.exp(0.5 * guide.log_var["fc1__weight"].detach()).max()))

    guide.constrain_ = spy
    post = svi(model, guide, Split(x, y), epochs=epochs, batch_size=20, lr=0.1,
               progress=False, num_draws=2)
    return post, seen


def test_bounded_sites_stay_at_or_below_the_bound():
    free, _ = _fit(None)
    bounded, seen = _fit(BOUND)
    scale = {k: v.values for k, v in bounded.variational_scale.data_vars.items()}
    free_scale = {k: v.values for k, v in free.variational_scale.data_vars.items()}
    # without the bound the KL pulls fc1's scales well past it (towards the prior's 1) ...
    assert free_scale["fc1.weight"].max() > 4 * BOUND
    # ... with it every step ends at or below it, and the unbounded layer is unaffected
    assert len(seen) == 60 and max(seen) <= BOUND * (1 + 1e-6)
    assert scale["fc1.weight"].max() <= BOUND * (1 + 1e-6)
    assert scale["fc1.bias"].max() <= BOUND * (1 + 1e-6)
    assert scale["fc2.weight"].max() > 4 * BOUND
    assert np.isclose(scale["fc1.weight"], BOUND, rtol=1e-5).mean() > 0.5  # active bound


def test_pattern_matching_nothing_is_refused():
    model = BayesianNet(nets.mlp([5, 4, 2]), priors.Gaussian(), num_data=40)
    with pytest.raises(ValueError, match=r"max_scale_sites=\['conv9\.\*'\] match no site"):
        guides.MeanField(model, max_scale=0.1, max_scale_sites=["conv9.*"])
    with pytest.raises(ValueError, match="max_scale must be a finite number > 0"):
        guides.MeanField(max_scale=0.0)


def test_recipe_bound_on_the_delta_guide_is_refused():
    cfg = resolve("ard-logreg-digits01", "svi-meanfield",
                  ["inference.guide=delta", "inference.max_scale=0.1", "inference.epochs=1"])
    ds = load_data(cfg)
    with pytest.raises(ConfigError, match="inference.max_scale bounds mean-field weights"):
        fit_svi(cfg.inference, build_model(cfg, ds), ds, FitOptions())
