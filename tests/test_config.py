"""Every invalid-config case gives an error naming the field, the bad value and the allowed."""

from __future__ import annotations

import pytest
import yaml

from bayesstruct import config
from bayesstruct.config import (
    DEFAULT_ENTRY,
    ConfigError,
    apply_overrides,
    catalog,
    resolve,
)


def _err(*overrides, entry=DEFAULT_ENTRY, recipe=None):
    with pytest.raises(ConfigError) as e:
        resolve(entry, recipe, list(overrides))
    return str(e.value)


def test_default_entry_resolves_with_entry_defaults_over_recipe():
    cfg = resolve()
    assert cfg.name == DEFAULT_ENTRY and cfg.data.name == "digits"
    assert cfg.recipe == "svi-meanfield" and cfg.inference.guide == "meanfield"
    assert cfg.inference.lr == 0.01  # from the entry's defaults, not the recipe's 0.001


def test_overrides_apply_last():
    cfg = resolve(DEFAULT_ENTRY, "svi-map", ["inference.epochs=3", "prior.hyper=gamma",
                                             "pruning.fractions=[0, 0.5]"])
    assert cfg.inference.guide == "delta" and cfg.inference.epochs == 3
    assert cfg.prior.hyper == "gamma" and cfg.pruning.fractions == [0.0, 0.5]


def test_every_catalog_entry_and_recipe_is_valid():
    entries, recipes = catalog("models"), catalog("inference")
    assert DEFAULT_ENTRY in entries and {"svi-meanfield", "svi-map"} <= set(recipes)
    for name in entries:
        for r in recipes:
            resolve(name, r)


@pytest.mark.parametrize("override,field,allowed", [
    ("prior.per=column", "prior.per", "'weight' or 'unit'"),
    ("prior.kind=spike_and_slab", "prior.kind", "gaussian, ard, log_uniform, horseshoe, ibp"),
    ("prior.hyper=jeffreys", "prior.hyper", "'gamma' or 'empirical_bayes'"),
    ("inference.guide=laplace", "inference.guide", "'meanfield', 'lognormal' or 'delta'"),
    ("inference.engine=gibbs", "inference.engine", "svi, nuts, hmc, sgld, psgld"),
    ("inference.lr_schedule=step", "inference.lr_schedule", "'constant' or 'cosine'"),
    ("net.kind=vgg", "net.kind", "'logreg', 'mlp', 'lenet300', 'lenet5', 'rnn', 'gru', "
     "'resnet', 'lstm' or 'conv1d'"),
    ("inference.prior_update=always", "inference.prior_update",
     "'auto', 'none' or 'closed_form'"),
    ("inference.covariance=full", "inference.covariance", "'diagonal' or 'scalar'"),
    ("data.name=cifar10", "data.name", "'digits'"),
    ("likelihood=poisson", "likelihood", "'categorical'"),
    ("net.activation=swish", "net.activation", "'relu', 'tanh' or 'elu'"),
])
def test_bad_choice_names_field_value_and_allowed(override, field, allowed):
    msg = _err(override)
    assert f"{field}:" in msg and allowed in msg
    assert repr(override.split("=")[1]) in msg


@pytest.mark.parametrize("override,field,text", [
    ("inference.lr=-1", "inference.lr", "greater than 0"),
    ("inference.epochs=0", "inference.epochs", "greater than or equal to 1"),
    ("inference.epochs=many", "inference.epochs", "valid integer"),
    ("data.val_fraction=1.5", "data.val_fraction", "less than 1"),
    ("pruning.threshold=0", "pruning.threshold", "greater than 0"),
    ("prior.a=0", "prior.a", "greater than 0"),
    ("device=tpu", "device", "allowed: cpu, cuda, cuda:N"),
])
def test_bad_value_names_field_and_constraint(override, field, text):
    msg = _err(override)
    assert f"{field}:" in msg and text in msg


@pytest.mark.parametrize("override,field,allowed", [
    ("inference.epoch=5", "inference.epoch", "epochs"),
    ("prior.scale=2", "prior.scale", "per, hyper"),
    ("bogus=1", "bogus", "data, net, prior"),
])
def test_unknown_field_lists_the_allowed_fields(override, field, allowed):
    msg = _err(override)
    assert f"{field}: unknown field; allowed fields:" in msg and allowed in msg


def test_malformed_override():
    assert "expected key=value" in _err("inference.epochs")
    assert "'inference' is not a section" in _err("inference=3", "inference.epochs=2")


def test_unknown_names_list_the_catalog():
    assert "unknown models 'nope'; allowed:" in _err(entry="nope")
    assert "svi-meanfield" in _err(recipe="nope")
    assert "does not exist" in _err(entry="missing/file.yaml")


def test_broken_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    assert "invalid YAML" in _err(entry=str(bad)) and "line" in _err(entry=str(bad))
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    assert "expected a mapping" in _err(entry=str(lst))
    nodata = tmp_path / "nodata.yaml"
    nodata.write_text("net: {kind: logreg}\nprior: {kind: ard}\n")
    assert "data: required field is missing" in _err(entry=str(nodata))
    defaults = tmp_path / "defaults.yaml"
    defaults.write_text("data: {name: digits}\nnet: {kind: logreg}\nprior: {kind: ard}\n"
                        "defaults: {epoch: 3}\n")
    msg = _err(entry=str(defaults))
    assert "defaults" in msg and "epoch" in msg and "epochs" in msg


def test_yaml_never_executes_code(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("data: !!python/object/apply:os.system ['echo pwned']\n")
    assert "invalid YAML" in _err(entry=str(evil))


def test_apply_overrides_copies():
    base = {"a": {"b": 1}}
    out = apply_overrides(base, ["a.b=2", "a.c=[1, 2]", "d=x"])
    assert base == {"a": {"b": 1}} and out == {"a": {"b": 2, "c": [1, 2]}, "d": "x"}


def test_compare_methods_match_the_library():
    from bayesstruct import pruning
    from bayesstruct.experiments.compare import COMPARE_METHODS, CompareConfig

    assert COMPARE_METHODS == pruning.METHODS
    assert tuple(CompareConfig().methods) == pruning.DEFAULT_METHODS


def test_switching_the_prior_kind_drops_the_old_kinds_fields_and_says_which():
    notes: list[str] = []
    cfg = resolve("ard-logreg-digits", overrides=["prior.kind=gaussian", "prior.scale=0.5"],
                  notify=notes.append)
    assert cfg.prior.kind == "gaussian" and cfg.prior.scale == 0.5
    assert cfg.prior.per == "layer"  # ARD's per=weight is not a Gaussian value: dropped too
    (note,) = notes
    assert "prior.kind ard -> gaussian" in note
    for field in ("prior.hyper='empirical_bayes'", "prior.per='weight'"):
        assert field in note
    # a field the overrides name themselves is still judged, under the right name
    with pytest.raises(ConfigError, match=r"prior\.per: Input should be 'layer' or 'unit'"):
        resolve("ard-logreg-digits", overrides=["prior.kind=gaussian", "prior.per=weight"],
                notify=notes.append)
    with pytest.warns(UserWarning, match="prior.kind ard -> horseshoe"):
        resolve("ard-logreg-digits", overrides=["prior.kind=horseshoe"])


@pytest.mark.parametrize("kind", ["gaussian", "ard", "log_uniform", "horseshoe", "ibp"])
def test_an_unknown_prior_field_is_named_the_same_way_for_every_kind(kind):
    with pytest.raises(ConfigError) as e:
        resolve("ard-logreg-digits", overrides=[f"prior.kind={kind}", "prior.bogus=1"],
                notify=lambda _: None)
    assert "  prior.bogus: unknown field" in str(e.value)
    assert f"prior.{kind}." not in str(e.value)


def test_a_config_yaml_from_before_per_engine_recipes_still_loads(tmp_path):
    """Run directories written when one flat recipe model held every engine's fields: the
    fields the run's engine does not take are dropped, so those runs still resume."""
    cfg = config.resolve("ard-logreg-digits01", overrides=["prior.hyper=gamma"])
    raw = cfg.model_dump(mode="json")
    raw["inference"].update({"guide": "meanfield", "epochs": 20, "burn_in": 1000, "beta": 0.99})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw))
    loaded = config.load_run_config(tmp_path)
    assert loaded == cfg and not hasattr(loaded.inference, "epochs")
