"""The experiment registry: each kind's section is a field of the run config, a catalog entry
selects each kind, and the lookup refuses what a kind cannot do before anything is written."""

from __future__ import annotations

import typing

import pytest

from bayesstruct import config, experiments
from bayesstruct.experiments import EXPERIMENTS, experiment_for
from bayesstruct.experiments.registry import Section, register_experiment


def test_each_registered_section_is_an_optional_field_of_the_run_config():
    for key, exp in EXPERIMENTS.items():
        if exp.section is None:
            assert key not in config.RunConfig.model_fields
            continue
        field = config.RunConfig.model_fields[key]
        assert set(typing.get_args(field.annotation)) == {exp.section, type(None)}
        assert field.default is None


def test_exactly_one_kind_runs_when_no_section_is_given():
    assert [k for k, e in EXPERIMENTS.items() if e.section is None] == ["fit"]


@pytest.mark.parametrize("key", list(EXPERIMENTS))
def test_a_catalog_entry_selects_every_kind(key):
    chosen = {experiment_for(config.resolve(name)).key for name in config.catalog()}
    assert key in chosen


def test_the_section_decides_whether_net_and_prior_are_needed():
    kernel = config.resolve("hypergrad-kernel-width")
    assert kernel.net is None and kernel.prior is None
    with pytest.raises(config.ConfigError, match="net: field required"):
        config.resolve("hypergrad-kernel-width", overrides=["hypergrad.experiment=l2"])
    assert config.resolve("nas-digits").prior is None


REFUSALS = ([(k, {"resume": True}, "no checkpoints to resume")
             for k, e in EXPERIMENTS.items() if not e.resumable]
            + [(k, {"init_from": "elsewhere"}, "--init-from")
               for k, e in EXPERIMENTS.items() if not e.init_from])


@pytest.mark.parametrize("key,option,message", REFUSALS)
def test_what_a_kind_cannot_do_is_refused_before_writing(key, option, message, tmp_path):
    """``--resume`` for kinds without checkpoints, ``--init-from`` for kinds that do not start
    from another run's parameters."""
    name = next(n for n in config.catalog() if experiment_for(config.resolve(n)).key == key)
    with pytest.raises(config.ConfigError, match=message):
        experiments.run(config.resolve(name), tmp_path / "r", **option)
    assert not (tmp_path / "r").exists()


def test_registering_a_kind_twice_is_refused():
    with pytest.raises(TypeError, match="registered twice"):
        register_experiment("fit")(lambda cfg, out, **kw: {})
    assert EXPERIMENTS["fit"].run is experiments.run_fit


def test_a_new_kind_is_one_registration(monkeypatch):
    """What docs/contributing.md shows: a section model and a registered run function; the
    lookup finds it for a config that has the section."""
    monkeypatch.setattr(experiments.registry, "EXPERIMENTS", dict(EXPERIMENTS))

    class SweepConfig(Section):
        values: list[float] = [0.1, 1.0]

    @register_experiment("sweep", section=SweepConfig)
    def run_sweep(cfg, out, **kw):
        return {"values": cfg.sweep.values}

    class Cfg:  # a config with the new section (the run config gains it at import)
        sweep = SweepConfig()

    found = experiments.registry.experiment_for(Cfg())
    assert found.key == "sweep" and found.run(Cfg(), "out") == {"values": [0.1, 1.0]}
    assert "sweep" not in EXPERIMENTS
