"""history.csv: every engine writes its rows into the run directory as it trains, and a resume
continues the file without duplicating a row."""

from __future__ import annotations

import pytest

from bayesstruct import guides, logs, priors
from bayesstruct.config import resolve
from bayesstruct.errors import ConfigError
from bayesstruct.experiments import fit as fit_mod
from bayesstruct.inference import FitOptions
from bayesstruct.inference.mcmc import MCMCConfig, fit_mcmc
from bayesstruct.inference.sgld import psgld, sgld
from bayesstruct.inference.svi import svi
from bayesstruct.models import BayesianNet
from bayesstruct.nets import build
from tests.inference.test_sgld import _linear_model


def _svi(digits, tmp_path, epochs: int, **kw):
    model = BayesianNet(build("logreg", digits.input_shape, digits.n_classes), priors.ARD())
    return svi(model, guides.MeanField(), digits, epochs=epochs, lr=1e-2, batch_size=256,
               num_draws=2, progress=False, checkpoint_dir=tmp_path / "checkpoints",
               history_path=tmp_path / "history.csv", **kw)


def test_svi_writes_one_row_per_epoch_and_a_resume_continues_it(digits, tmp_path):
    post = _svi(digits, tmp_path, epochs=2)
    rows = logs.read_history(tmp_path / "history.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"]
    for key in ("loss", "kl_weight", "lr", "seconds", "val_nll", "val_acc"):
        assert all(r[key] != "" for r in rows), key
    # the same figures as the posterior's optimization group
    assert [float(r["loss"]) for r in rows] == pytest.approx(
        post.optimization["loss"].values.tolist(), rel=1e-12)

    # an interrupted epoch 3 left a row the checkpoint does not have: the resume drops it
    with open(tmp_path / "history.csv", "a", encoding="utf-8") as f:
        f.write("3,99.0,1.0,0.01,0.1,9.0,0.1\n")
    _svi(digits, tmp_path, epochs=4, resume=True)
    rows = logs.read_history(tmp_path / "history.csv")
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4"]
    assert "99.0" not in {r["loss"] for r in rows}


@pytest.mark.parametrize("engine", [sgld, psgld], ids=["sgld", "psgld"])
def test_langevin_writes_rows_per_chain_and_pass(engine, tmp_path):
    kw = dict(num_samples=10, burn_in=10, thin=2, num_chains=2, batch_size=50, lr=1e-4,
              progress=False, seed=1, checkpoint_dir=tmp_path, history_path=tmp_path / "h.csv")
    model, split = _linear_model()
    engine(model, split, **kw)
    rows = logs.read_history(tmp_path / "h.csv")
    passes = -(-30 // -(-len(split) // 50))  # 30 steps of ceil(N / 50) batches per pass
    assert len(rows) == 2 * passes, rows
    assert [r["chain"] for r in rows] == ["0"] * passes + ["1"] * passes
    assert [int(r["step"]) for r in rows if r["chain"] == "0"][-1] == 30
    assert {r["phase"] for r in rows} == {"burn_in", "sampling"}
    assert all(float(r["lp"]) == float(r["lp"]) and float(r["lr"]) > 0 for r in rows)

    # chain 1 was lost: the resume keeps chain 0's rows and writes chain 1's once
    (tmp_path / "chain-1.pt").unlink()
    model, split = _linear_model()
    engine(model, split, resume=True, **kw)
    again = logs.read_history(tmp_path / "h.csv")
    assert [(r["chain"], r["epoch"]) for r in again] == [(r["chain"], r["epoch"]) for r in rows]
    assert [r["lp"] for r in again] == [r["lp"] for r in rows]  # the same draws, bit for bit


def test_nuts_writes_one_row_per_chain_and_draw(tmp_path):
    model, split = _linear_model()
    cfg = MCMCConfig(engine="nuts", num_samples=6, num_warmup=4, num_chains=2,
                     chain_method="sequential", jit_compile=False)
    post = fit_mcmc(cfg, model, split, FitOptions(progress=False,
                                                 history_path=tmp_path / "history.csv"))
    rows = logs.read_history(tmp_path / "history.csv")
    assert [(r["chain"], r["draw"]) for r in rows] == [
        (str(c), str(d)) for c in range(2) for d in range(6)]
    assert {"diverging", "step_size"} <= set(rows[0])
    assert [float(r["step_size"]) for r in rows] == pytest.approx(
        post.sample_stats["step_size"].values.ravel().tolist())


def test_a_run_directory_holds_history_csv(tmp_path):
    cfg = resolve("ard-logreg-digits", "svi-meanfield",
                  ["inference.epochs=2", "inference.num_draws=2", "pruning.mc_samples=2",
                   "pruning.snr_curve=false"])
    fit_mod.run_fit(cfg, tmp_path / "run", progress=False, echo=lambda s: None)
    rows = logs.read_history(tmp_path / "run" / "history.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"]


def test_tensorboard_without_the_package_is_refused_before_the_run(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    monkeypatch.setenv(logs.TENSORBOARD_ENV, str(tmp_path / "tb"))
    cfg = resolve("ard-logreg-digits", "svi-meanfield", ["inference.epochs=1"])
    with pytest.raises(ConfigError, match="pip install tensorboard"):
        fit_mod.run_fit(cfg, tmp_path / "run", progress=False, echo=lambda s: None)
    assert not (tmp_path / "run").exists()
