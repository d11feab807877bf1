"""The engine registry: every registered engine ships a recipe, receives every field of its
recipe, and runs through the one entry point the runner uses."""

from __future__ import annotations

import importlib

import pytest
import yaml

from bayesstruct import config, data, inference, priors
from bayesstruct.inference import ENGINES, FitOptions
from bayesstruct.inference.registry import EngineConfig, register_engine
from bayesstruct.models import BayesianNet

# the engine modules (the package's attributes of the same names are the functions)
svi, mcmc, sgld = (importlib.import_module(f"bayesstruct.inference.{m}")
                   for m in ("svi", "mcmc", "sgld"))
SAMPLERS = {"svi": (svi, "svi"), "nuts": (mcmc, "mcmc"), "hmc": (mcmc, "mcmc"),
            "sgld": (sgld, "sgld"), "psgld": (sgld, "psgld")}


def test_every_engine_has_a_sampler_listed_here_and_a_shipped_recipe():
    assert set(SAMPLERS) == set(ENGINES)
    shipped = {yaml.safe_load(p.read_text()).get("engine", "svi")
               for p in config.catalog("inference").values()}
    assert set(ENGINES) <= shipped


def test_the_run_configs_inference_section_is_the_union_of_the_registered_recipes():
    members = config.InferenceConfig.__origin__.__args__
    assert {m.__origin__ for m in members} == {e.config for e in ENGINES.values()}


@pytest.mark.parametrize("name", list(ENGINES))
def test_every_recipe_field_reaches_the_engine(name, monkeypatch):
    """The entry function hands each recipe field to the sampler (or the guide) under its own
    name; ``engine`` becomes MCMC's ``kernel``."""
    module, fn = SAMPLERS[name]
    calls: dict = {}
    monkeypatch.setattr(module, fn, lambda *a, **kw: calls.update(kw) or "posterior")
    monkeypatch.setattr(svi.guides_mod, "get",
                        lambda kind, **kw: calls.update(kw) or _GuideName(kind))
    cfg = ENGINES[name].config(engine=name)
    model = BayesianNet(data_free_net(), priors.Gaussian())
    assert ENGINES[name].fit(cfg, model, None, FitOptions(seed=7)) == "posterior"
    # ``weights`` chooses the lognormal guide's weights (tests/guides/test_lognormal.py runs
    # both choices); the default guide, meanfield, takes none
    expected = cfg.model_dump(exclude={"engine", "description", "guide", "weights"})
    if name in ("nuts", "hmc"):
        expected["kernel"] = name
    missing = {k for k in expected if k not in calls}
    assert not missing, f"recipe fields that never reach {fn}: {missing}"
    assert {k: calls[k] for k in expected} == expected and calls["seed"] == 7


class _GuideName(str):
    """What the faked ``guides.get`` returns: the guide's name, and a ``setup`` that the
    engine's up-front check (can this guide hold the prior?) may call."""

    def setup(self, model):
        return self


def data_free_net():
    from bayesstruct import nets

    return nets.build("logreg", (4,), 2)


@pytest.mark.parametrize("name", list(ENGINES))
def test_every_engine_refuses_an_unknown_field_naming_the_allowed_ones(name):
    with pytest.raises(config.ConfigError, match=r"inference\.bogus: unknown field; allowed "
                                                 r"fields: description, engine"):
        config.resolve("logreg-digits01", overrides=[f"inference.engine={name}",
                                                     "inference.bogus=1"], notify=print)


def test_switching_the_engine_drops_the_recipes_other_fields_and_says_which():
    notes = []
    cfg = config.resolve("ard-logreg-digits", overrides=["inference.engine=nuts",
                                                         "prior.hyper=gamma"],
                         notify=notes.append)
    assert isinstance(cfg.inference, inference.MCMCConfig)
    assert len(notes) == 1 and "inference.engine svi -> nuts: dropped" in notes[0]
    assert "inference.epochs=150" in notes[0]


def test_entry_defaults_apply_only_where_the_engine_takes_them():
    """ard-logreg-digits sets epochs/lr/batch_size/num_draws for SVI: SGLD takes lr and
    batch_size from it, NUTS none."""
    sg = config.resolve("ard-logreg-digits", "sgld", ["prior.hyper=gamma"]).inference
    assert (sg.lr, sg.batch_size) == (0.01, 64)
    nuts = config.resolve("ard-logreg-digits", "nuts", ["prior.hyper=gamma"]).inference
    assert not hasattr(nuts, "epochs")


def test_registering_an_engine_name_twice_is_refused():
    from typing import Literal

    class Clash(EngineConfig):
        engine: Literal["svi"]

    with pytest.raises(TypeError, match="registered twice"):
        register_engine(Clash)(lambda cfg, model, ds, options: None)
    assert ENGINES["svi"].config is inference.SVIConfig


def test_a_new_engine_is_one_registration(monkeypatch):
    """What docs/contributing.md shows: a config model plus a registered entry function is
    all the run config and the runner need."""
    from typing import Literal

    monkeypatch.setattr(inference.registry, "ENGINES", dict(ENGINES))

    class EchoConfig(EngineConfig):
        engine: Literal["echo"]
        draws: int = 3

    @register_engine(EchoConfig)
    def fit_echo(cfg, model, ds, options):
        return cfg.draws

    assert inference.registry.ENGINES["echo"].fit(EchoConfig(engine="echo"), None, None,
                                                  FitOptions()) == 3
    assert "echo" not in ENGINES  # the monkeypatched copy took it


def test_digits_runs_through_every_registered_engine():
    """The runner's one call, ``ENGINES[name].fit``, on a tiny logistic regression: every
    engine returns the same InferenceData layout."""
    ds = data.load("digits", seed=0, classes=[0, 1])
    tiny = {"svi": {"epochs": 1}, "nuts": {"num_warmup": 5, "num_samples": 5, "num_chains": 1,
                                           "chain_method": "sequential", "jit_compile": False},
            "hmc": {"num_warmup": 5, "num_samples": 5, "num_chains": 1,
                    "chain_method": "sequential", "jit_compile": False},
            "sgld": {"burn_in": 5, "num_samples": 5, "num_chains": 1},
            "psgld": {"burn_in": 5, "num_samples": 5, "num_chains": 1}}
    for name, engine in ENGINES.items():
        model = BayesianNet(data_free_net_for(ds), priors.Gaussian(), num_data=len(ds.train))
        post = engine.fit(engine.config(engine=name, **tiny[name]), model, ds,
                          FitOptions(progress=False))
        assert "posterior" in post.groups() or "variational_loc" in post.groups(), name
        assert "fc1.weight" in (post.posterior if "posterior" in post.groups()
                               else post.variational_loc), name


def data_free_net_for(ds):
    from bayesstruct import nets

    return nets.build("logreg", ds.input_shape, ds.n_classes)
