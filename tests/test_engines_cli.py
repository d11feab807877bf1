"""Every engine through the recipes, the runner and the CLI (digits 0 vs 1, tiny settings);
``bayesstruct diagnose`` on the result."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from bayesstruct import config, inference, posterior
from bayesstruct.cli import app

runner = CliRunner()
QUICK = {
    "svi-meanfield": ["inference.epochs=3", "inference.num_draws=20"],
    "nuts": ["inference.num_warmup=30", "inference.num_samples=40", "inference.num_chains=2",
             "inference.chain_method=sequential", "inference.jit_compile=false",
             "inference.max_tree_depth=6"],
    "hmc": ["inference.num_warmup=30", "inference.num_samples=40", "inference.num_chains=2",
            "inference.chain_method=sequential", "inference.num_steps=5"],
    "sgld": ["inference.burn_in=100", "inference.num_samples=40", "inference.thin=2",
             "inference.num_chains=2"],
    "psgld": ["inference.burn_in=100", "inference.num_samples=40", "inference.thin=2",
              "inference.num_chains=2"],
}


def _sets(recipe: str) -> list[str]:
    return [a for s in QUICK[recipe] + ["pruning.mc_samples=3"] for a in ("--set", s)]


@pytest.mark.parametrize("entry", ["logreg-digits01", "ard-logreg-digits01"])
@pytest.mark.parametrize("recipe", list(QUICK))
def test_every_engine_runs_an_entry_end_to_end(tmp_path, entry, recipe):
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", entry, "-i", recipe, "--out", str(out), "--quiet",
                              *_sets(recipe)])
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    engine = config.load_yaml(config.find_recipe(recipe))["engine"]
    assert metrics["engine"] == engine
    assert metrics["test_acc"] > 0.9  # digits 0 vs 1 is easy for every engine
    # sampled posteriors are pruned by rho from the draws (KDE), variational ones in closed form
    assert metrics["criterion"] == "rho"
    post = posterior.load(out / "posterior.nc")
    assert post.attrs["engine"] == engine
    sizes = post.posterior.sizes
    if engine == "svi":
        assert (sizes["chain"], sizes["draw"]) == (1, 20)
    else:
        assert (sizes["chain"], sizes["draw"]) == (2, 40)
    if entry.startswith("ard") and engine in ("nuts", "hmc"):
        assert post.attrs["noncentred"] == "fc1.weight"
        assert "fc1.weight.alpha" in post.posterior
    if engine in ("nuts", "hmc"):
        assert post.sample_stats["diverging"].shape == (2, 40)
        assert (out / "checkpoints" / "chain-1.pt").is_file()

    diag = runner.invoke(app, ["diagnose", str(out), "--weights", "5"])
    assert diag.exit_code == 0, diag.output
    assert ("max R-hat" in diag.output) == (engine != "svi") and "fc1.bias" in diag.output
    report = json.loads((out / "diagnose.json").read_text())
    assert report["engine"] == engine and report["num_chains"] == sizes["chain"]
    assert (out / "diagnose-rank.png").is_file() and (out / "diagnose-log-rho.png").is_file()
    assert (out / "diagnose-forest.png").is_file() == entry.startswith("ard")
    if engine == "svi":
        # independent draws from q: the sampler's R-hat/ESS warnings are not given for them
        assert "variational posterior q" in diag.output and "one chain only" not in diag.output
        assert "R-hat and ESS do not apply" in diag.output
    else:
        assert "variational posterior q" not in diag.output


def test_sampling_engines_refuse_empirical_bayes_and_improper_priors(tmp_path):
    res = runner.invoke(app, ["run", "ard-logreg-digits", "-i", "nuts", "--out",
                              str(tmp_path / "a"), "--quiet"])
    assert res.exit_code == 2 and "empirical Bayes" in res.output
    assert "prior.hyper=gamma" in res.output
    res = runner.invoke(app, ["run", "logreg-digits01", "-i", "sgld", "--out",
                              str(tmp_path / "b"), "--set", "prior={kind: log_uniform}",
                              "--quiet"])
    assert res.exit_code == 2 and "improper prior" in res.output


def test_engine_and_likelihood_fields_name_the_allowed_values(tmp_path):
    with pytest.raises(config.ConfigError, match="engine 'gibbs'; allowed: svi, nuts, hmc"):
        config.resolve("logreg-digits01", "nuts", ["inference.engine=gibbs"])
    with pytest.raises(config.ConfigError, match="inference.chain_method"):
        config.resolve("logreg-digits01", "nuts", ["inference.chain_method=threads"])
    res = runner.invoke(app, ["run", "ard-logreg-digits", "--set", "likelihood=bernoulli",
                              "--out", str(tmp_path / "c"), "--quiet"])
    assert res.exit_code == 2 and "needs 2 classes" in res.output and "data.classes" in res.output


def test_recipes_validate_and_ship():
    for name in ("nuts", "hmc", "sgld", "psgld"):
        path = config.find_recipe(name)
        rec = config.validate(config.InferenceConfig, yaml.safe_load(path.read_text()), str(path))
        assert rec.engine == name and isinstance(rec, inference.ENGINES[name].config)


def test_diagnose_without_a_posterior_says_what_it_needs(tmp_path):
    res = runner.invoke(app, ["diagnose", str(tmp_path)])
    assert res.exit_code == 2 and "posterior.nc" in res.output
