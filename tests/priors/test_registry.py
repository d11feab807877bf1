"""The prior registry: every registered prior is covered by the tests' grid, its config model
matches its constructor, and a config builds the same prior as the constructor."""

from __future__ import annotations

import inspect

import pytest
import torch
from pyro import poutine

from bayesstruct import config, guides, priors
from bayesstruct.priors import PRIORS
from tests.helpers import ALL_PRIORS, small_model

IDS = [f"{k}-{'-'.join(f'{a}={b}' for a, b in kw.items()) or 'defaults'}" for k, kw in ALL_PRIORS]


def test_the_test_grid_covers_every_registered_prior():
    assert {k for k, _ in ALL_PRIORS} == set(PRIORS)


@pytest.mark.parametrize("kind", list(PRIORS))
def test_config_fields_are_the_constructor_arguments_with_the_same_defaults(kind):
    cls = PRIORS[kind]
    params = inspect.signature(cls.__init__).parameters
    args = {n: p.default for n, p in params.items() if n != "self"}
    fields = {n: f.default for n, f in cls.Config.model_fields.items() if n != "kind"}
    assert fields == args
    assert cls.kind == kind and cls.Config.model_fields["kind"].annotation.__args__ == (kind,)


def test_the_run_configs_prior_section_is_the_union_of_the_registered_configs():
    members = config.PriorConfig.__origin__.__args__  # Annotated[Union[...], ...]
    assert set(members) == {p.Config for p in PRIORS.values()}


@pytest.mark.parametrize("kind,kw", ALL_PRIORS, ids=IDS)
def test_a_config_builds_the_prior_the_constructor_builds(kind, kw):
    cfg = PRIORS[kind].Config(kind=kind, **kw)
    a, b = priors.from_config(cfg), priors.get(kind, **kw)
    assert type(a) is type(b) is PRIORS[kind]
    assert {k: v for k, v in vars(a).items() if not k.startswith("_")} == \
        {k: v for k, v in vars(b).items() if not k.startswith("_")}


@pytest.mark.parametrize("kind,kw", ALL_PRIORS, ids=IDS)
def test_every_prior_runs_under_the_meanfield_guide_with_a_finite_loss(kind, kw):
    """Each registered prior in the model, with the guide's draws replayed (improper priors
    have no samples of their own): the guide's loss and the model's log density are finite."""
    model = small_model(kind, kw)
    guide = guides.MeanField(model)
    x, y = torch.randn(6, 5), torch.randint(0, 3, (6,))
    assert torch.isfinite(guide.loss(x, y))
    guide_trace = poutine.trace(guide).get_trace(x, y)
    trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x, y)
    weights = [n for n, s in trace.nodes.items() if s["type"] == "sample" and n.endswith("weight")]
    assert weights, "the prior emitted no weight sites"
    assert all(torch.isfinite(trace.nodes[n]["value"]).all() for n in weights)


def test_registering_a_kind_twice_is_refused():
    from typing import Literal

    class Clash(priors.PriorConfig):
        kind: Literal["gaussian"]

    with pytest.raises(TypeError, match="registered twice"):
        class Again(priors.Gaussian, config=Clash):  # noqa: F841
            pass
    assert PRIORS["gaussian"] is priors.Gaussian
