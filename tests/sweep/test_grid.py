"""Grid and seed parsing, trial names."""

from __future__ import annotations

import pytest

from bayesstruct.errors import ConfigError
from bayesstruct.sweep import Trial, parse_grid, parse_seeds, trials


def test_grid_values_split_outside_brackets():
    assert parse_grid(["prior.hyper=empirical_bayes,gamma", "net.hidden=[100],[300,100]"]) == [
        ("prior.hyper", ["empirical_bayes", "gamma"]), ("net.hidden", ["[100]", "[300,100]"])]


@pytest.mark.parametrize("spec, words", [
    ("prior.hyper", "KEY=V1,V2"), ("=a,b", "KEY=V1,V2"), ("a=x,,y", "empty value"),
    ("a=x,x", "listed twice"), ("seed=1,2", "--seeds")])
def test_bad_grids_name_the_problem(spec, words):
    with pytest.raises(ConfigError, match=words):
        parse_grid([spec])


def test_a_key_twice_is_refused():
    with pytest.raises(ConfigError, match="given twice"):
        parse_grid(["a=1,2", "a=3"])


@pytest.mark.parametrize("text, seeds", [("0-4", [0, 1, 2, 3, 4]), ("3", [3]),
                                         ("0,3,7", [0, 3, 7]), ("0-2,9", [0, 1, 2, 9])])
def test_seed_lists(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["4-0", "a", "1,1", "0-", ""])
def test_bad_seed_lists(text):
    with pytest.raises(ConfigError, match="--seeds"):
        parse_seeds(text)


def test_trials_are_the_product_with_seeds_innermost():
    ts = trials(parse_grid(["a=1,2", "b=x,y,z"]), [0, 1], ["inference.epochs=2"])
    assert len(ts) == 12
    assert [t.seed for t in ts[:2]] == [0, 1] and ts[0].settings == (("a", "1"), ("b", "x"))
    assert ts[0].set_args() == ["inference.epochs=2", "a=1", "b=x", "seed=0"]
    assert len({t.id for t in ts}) == 12


def test_trial_ids_are_file_names_and_stable():
    odd = Trial((("net.hidden", "[300, 100]"),), 2)
    plain = Trial((("prior.hyper", "gamma"),), 0)
    assert plain.id == "prior.hyper=gamma__seed=0"
    assert "/" not in odd.id and " " not in odd.id and odd.id.endswith("__seed=2")
    assert odd.id == Trial((("net.hidden", "[300, 100]"),), 2).id
    assert odd.id != Trial((("net.hidden", "[300,100]"),), 2).id  # no collision


def test_metrics_are_flattened_to_dotted_numbers():
    from bayesstruct.sweep.trial import scalar_metrics

    m = {"test_acc": 0.9, "entry": "x", "ok": True, "runs": [1, 2],
         "test_acc_at": {"obs": {"0.9": 0.8, "0.5": None}}, "hidden_units": {"dense": 10}}
    assert scalar_metrics(m) == {"test_acc": 0.9, "ok": True, "test_acc_at.obs.0.9": 0.8,
                                 "hidden_units.dense": 10}
