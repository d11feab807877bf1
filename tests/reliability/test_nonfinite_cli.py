"""A diverged run through the CLI: exit code 3, one message saying what to do, the last good
checkpoints intact, and strict JSON where a metric is not finite."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bayesstruct import runner as runner_mod
from bayesstruct.cli import app
from bayesstruct.experiments import fit as fit_mod
from bayesstruct.files import load_checkpoint

cli = CliRunner()
QUIET = ["--quiet", "--set", "inference.num_draws=3", "--set", "pruning.mc_samples=2"]


def _diverged(res) -> str:
    assert res.exit_code == 3, (res.exit_code, res.output)
    assert "Traceback" not in res.output
    return res.output


def test_svi_nan_exits_3_keeps_the_checkpoint_and_says_how_to_go_on(tmp_path):
    out = tmp_path / "run"
    assert cli.invoke(app, ["run", "--out", str(out), "--set", "inference.epochs=2",
                            *QUIET]).exit_code == 0
    good = (out / "checkpoints" / "last.pt").read_bytes()
    # a resume may not change the lr, so diverge a fresh run started from this one
    res = cli.invoke(app, ["run", "--out", str(tmp_path / "hot"), "--init-from", str(out),
                           "--set", "inference.lr=1e30", "--set", "inference.epochs=3", *QUIET])
    text = _diverged(res)
    assert "loss became" in text and "--init-from" in text
    assert (out / "checkpoints" / "last.pt").read_bytes() == good


def test_compare_whose_plain_base_diverges_exits_3(tmp_path):
    out = tmp_path / "cmp"
    res = cli.invoke(app, ["compare", "--set", "data.name=digits", "--methods",
                           "random,magnitude-l2", "--set", "compare.lr=1e30", "--set",
                           "compare.epochs=2", "--out", str(out), "--quiet"])
    text = _diverged(res)
    assert "plain training" in text and "nan" in text.lower()
    assert not (out / "metrics.json").exists()  # no table of chance accuracies


@pytest.mark.parametrize("recipe", ["sgld", "psgld"])
def test_langevin_divergence_exits_3(tmp_path, recipe):
    """(Keeping finished chains is tests/reliability/test_nonfinite.py's.)"""
    out = tmp_path / recipe
    res = cli.invoke(app, ["run", "ard-logreg-digits01", "-i", recipe, "--set",
                           "prior.hyper=gamma", "--set", "inference.lr=1e6", "--set",
                           "inference.num_samples=5", "--set", "inference.burn_in=5",
                           "--set", "inference.num_chains=2", "--out", str(out), *QUIET[:1]])
    text = _diverged(res)
    assert f"error: {recipe}" in text
    assert "log density" in text or "left the support" in text
    assert "--init-from" not in text  # an SVI remedy


def test_metrics_json_stays_strict_when_a_metric_is_nan(tmp_path, monkeypatch):
    real = fit_mod.evaluate

    def nan_nll(*a, **k):
        r = real(*a, **k)
        return {**r, "nll": float("nan")}

    monkeypatch.setattr(fit_mod, "evaluate", nan_nll)
    out = tmp_path / "run"
    res = cli.invoke(app, ["run", "--out", str(out), "--set", "inference.epochs=1", *QUIET])
    assert res.exit_code == 0, res.output
    text = (out / "metrics.json").read_text()
    assert "NaN" not in text
    m = json.loads(text)
    assert m["test_nll"] is None and m["non_finite"]["test_nll"] == "nan"
    assert load_checkpoint(out / "checkpoints" / "last.pt")["epoch"] == 1


def test_an_eof_error_is_an_error_not_a_ctrl_c(tmp_path, monkeypatch):
    def truncated(*a, **k):
        raise EOFError("Compressed file ended before the end-of-stream marker was reached")

    monkeypatch.setattr(runner_mod, "run", truncated)
    res = cli.invoke(app, ["run", "--out", str(tmp_path / "r"), "--quiet"])
    assert res.exit_code == 2, res.output
    assert "unexpected end of file" in res.output and "Aborted" not in res.output
