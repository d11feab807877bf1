"""``net.pretrain_epochs``: the network trained by maximum likelihood before the Bayesian fit
(the guide's means start there), checked against a hand-written full-batch Adam loop; kept in
the run directory and reused on ``--resume``; refused where it would start nothing."""

import copy

import pytest
import torch
from typer.testing import CliRunner

import bayesstruct.collapse
from bayesstruct import config, guides
from bayesstruct.cli import app
from bayesstruct.errors import ConfigError
from bayesstruct.experiments.base import PRETRAINED, build_model, load_data, pretrain
from bayesstruct.files import load_checkpoint

MLP = ["net.kind=mlp", "net.hidden=[8]"]


def _cfg(*overrides, entry="ard-logreg-digits", inference=None):
    return config.resolve(entry, inference, [*MLP, *overrides])


def test_pretraining_is_plain_adam_on_the_likelihood_and_the_guide_starts_there(tmp_path):
    # one minibatch holds the whole training split, so each pretraining epoch is one Adam step
    # on the summed cross-entropy, which a plain torch loop reproduces from the same start
    cfg = _cfg("net.pretrain_epochs=5", "inference.batch_size=4096", "inference.lr=0.05")
    ds = load_data(cfg)
    model = build_model(cfg, ds)
    net = copy.deepcopy(model.net)
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(5):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(ds.train.x), ds.train.y, reduction="sum").backward()
        opt.step()

    assert pretrain(cfg, ds, model, path=tmp_path / PRETRAINED)
    for k, v in net.state_dict().items():
        torch.testing.assert_close(model.net.state_dict()[k], v, rtol=1e-4, atol=1e-5)
    saved = load_checkpoint(tmp_path / PRETRAINED)
    assert saved.keys() == net.state_dict().keys()
    guide = guides.MeanField()
    guide.setup(model)
    point = guide.point()
    for k, v in saved.items():
        torch.testing.assert_close(point[k], v)  # ARD starts its scales at 1: loc = w


def test_a_saved_pretrained_network_is_read_back_not_trained_again(tmp_path, monkeypatch):
    cfg = _cfg("net.pretrain_epochs=2")
    ds = load_data(cfg)
    first = build_model(cfg, ds)
    assert pretrain(cfg, ds, first, path=tmp_path / PRETRAINED)

    def refuse(*args, **kwargs):
        raise AssertionError("pretrained twice")

    monkeypatch.setattr(bayesstruct.collapse, "plain_fit", refuse)
    again = build_model(cfg, ds)
    assert not pretrain(cfg, ds, again, path=tmp_path / PRETRAINED)
    for k, v in first.net.state_dict().items():
        torch.testing.assert_close(again.net.state_dict()[k], v)


def test_a_run_keeps_the_pretrained_network_and_resumes_without_retraining(tmp_path,
                                                                          monkeypatch):
    out = tmp_path / "run"
    base = ["run", "ard-logreg-digits", "--out", str(out), "--quiet",
            *[a for kv in MLP for a in ("--set", kv)],
            "--set", "net.pretrain_epochs=3", "--set", "inference.num_draws=2"]
    res = CliRunner().invoke(app, [*base, "--set", "inference.epochs=1"])
    assert res.exit_code == 0, res.output
    state = load_checkpoint(out / PRETRAINED)
    assert state and all(isinstance(v, torch.Tensor) for v in state.values())
    assert config.load_run_config(out).net.pretrain_epochs == 3

    fits, plain_fit = [], bayesstruct.collapse.plain_fit

    def counted(*args, **kwargs):  # the collapse check's plain fit runs again; pretraining not
        fits.append(kwargs.get("start") is not None)
        return plain_fit(*args, **kwargs)

    monkeypatch.setattr(bayesstruct.collapse, "plain_fit", counted)
    res = CliRunner().invoke(app, [*base, "--resume", "--set", "inference.epochs=2"])
    assert res.exit_code == 0, res.output
    assert fits == [False]
    for k, v in load_checkpoint(out / PRETRAINED).items():
        torch.testing.assert_close(v, state[k])


@pytest.mark.parametrize("recipe, value, match", [
    ("nuts", 2, r"net.pretrain_epochs=2: .*engine 'nuts' starts from its own point"),
    ("sgld", 2, r"net.pretrain_epochs=2: .*engine 'sgld' starts from its own point"),
    (None, -1, r"net.pretrain_epochs: .*greater than or equal to 0"),
])
def test_pretraining_where_it_starts_nothing_is_refused(recipe, value, match):
    with pytest.raises(ConfigError, match=match):
        _cfg(f"net.pretrain_epochs={value}", inference=recipe)


def test_the_refusal_names_the_recipes_that_take_a_starting_point():
    """The recipes named are read from the catalog: each one resolves with pretraining, and
    every catalog recipe left out is refused."""
    named = config.recipes_with_init_from()
    assert "svi-meanfield" in named and "nuts" not in named
    with pytest.raises(ConfigError) as err:
        _cfg("net.pretrain_epochs=2", inference="nuts")
    assert f"use one of the recipes {', '.join(named)} or" in str(err.value)
    for recipe in config.catalog("inference"):
        if recipe in named:
            assert _cfg("net.pretrain_epochs=2", inference=recipe).net.pretrain_epochs == 2
        else:
            with pytest.raises(ConfigError, match="starts from its own point"):
                _cfg("net.pretrain_epochs=2", inference=recipe)


def test_pretraining_a_comparison_entry_is_refused():
    with pytest.raises(ConfigError, match=r"net.pretrain_epochs=2: .*compare entry does not"):
        config.resolve("logreg-prune-compare", None, ["net.pretrain_epochs=2"])


def test_pretraining_with_init_from_is_refused_before_any_work(tmp_path):
    res = CliRunner().invoke(app, ["run", "ard-logreg-digits", "--out", str(tmp_path / "b"),
                                   "--init-from", str(tmp_path / "a"),
                                   "--set", "net.pretrain_epochs=2"])
    assert res.exit_code != 0
    assert "net.pretrain_epochs=2" in res.output and "--init-from" in res.output
    assert not (tmp_path / "b").exists()
