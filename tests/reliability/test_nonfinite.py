"""Every engine stops on a NaN/inf loss or log density with NonFiniteLossError (engine, where,
value, checkpoints), and the checkpoints written before stay intact and loadable."""

from __future__ import annotations

import importlib
import json
import re
from dataclasses import replace

import numpy as np
import pytest
import torch

from bayesstruct import nas, nets, pruning
from bayesstruct.data import Dataset, Split
from bayesstruct.errors import NonFiniteLossError
from bayesstruct.experiments import hypergrad_tasks
from bayesstruct.files import load_checkpoint
from bayesstruct.inference import hypergrad as hg
from bayesstruct.inference.sgld import psgld, sgld
from bayesstruct.training import freeze
from bayesstruct.training.plain import train_plain
from tests.inference.test_sgld import _linear_model

# the module (``bayesstruct.inference.mcmc`` the attribute is the function)
mcmc_mod = importlib.import_module("bayesstruct.inference.mcmc")


def _tiny() -> Dataset:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(90, 5, generator=g), torch.randint(0, 3, (90,), generator=g)
    return Dataset("tiny", Split(x[:60], y[:60]), Split(x[60:75], y[60:75]),
                   Split(x[75:], y[75:]), (5,), 3, ("a", "b", "c"))


def _bytes(paths):
    return {p.name: p.read_bytes() for p in paths}


def test_plain_training_stops_at_the_first_non_finite_epoch():
    with pytest.raises(NonFiniteLossError,
                       match=r"plain training \(train\): loss became nan in epoch 1 of 3; "
                             r"no checkpoint was written.*lr=1e\+30"):
        train_plain(nets.mlp([5, 4, 3]), _tiny(), epochs=3, lr=1e30, batch_size=16)


def test_comparison_propagates_a_diverged_retraining_and_keeps_its_checkpoints(tmp_path):
    """The L1 base and the plain magnitude rows are on disk; retraining at lr 1e30 diverges:
    the error names the method and the files, which are byte for byte as they were."""
    ds = _tiny()
    settings = pruning.CompareSettings(epochs=2, lr=1e-2, batch_size=32, retrain_epochs=1,
                                       retrain_lr_factor=1e32, fractions=(0.0, 0.5))
    make = lambda: nets.mlp([5, 4, 3])  # noqa: E731
    pruning.compare(make, ds, ["magnitude-l1"], settings, progress=False,
                    checkpoint_dir=tmp_path, echo=lambda s: None)
    files = sorted(tmp_path.iterdir())
    assert [p.name for p in files] == ["base-l1.pt", "rows.json"]
    before = _bytes(files)
    with pytest.raises(NonFiniteLossError,
                       match=r"pruning comparison, method 'magnitude-l1-retrain': plain training"
                             r".*epoch 1.*kept in .*base-l1.pt, rows.json") as err:
        pruning.compare(make, ds, ["magnitude-l1", "magnitude-l1-retrain"], settings,
                        progress=False, checkpoint_dir=tmp_path, echo=lambda s: None)
    assert isinstance(err.value, FloatingPointError)
    assert _bytes(sorted(tmp_path.iterdir())) == before
    net = make()
    net.load_state_dict(load_checkpoint(tmp_path / "base-l1.pt")["net"])
    assert "magnitude-l1" in json.loads((tmp_path / "rows.json").read_text())["rows"]


def test_freezing_stops_in_the_stage_that_diverged():
    with pytest.raises(NonFiniteLossError, match=r"freezing stage 1 .*: the loss became nan "
                                                 r"within steps 1\.\.\d+"):
        freeze.train_selective(nets.mlp([5, 4, 3]), _tiny(), eta0=10, eta1=5, k=0.5, l=0.5,
                               lr=1e30, window=2, batch_size=16)


@pytest.mark.parametrize("engine", [sgld, psgld], ids=["sgld", "psgld"])
def test_langevin_stops_and_keeps_the_finished_chains(engine, tmp_path):
    """Chain 0 starts at the network's weights and is fine; chain 1 starts 1e30 away (the
    jitter only moves chains after the first) and its log density is -inf at once."""
    model, split = _linear_model()
    kw = dict(num_samples=5, burn_in=5, num_chains=2, batch_size=50, lr=1e-4, progress=False,
              checkpoint_dir=tmp_path)
    with pytest.raises(NonFiniteLossError) as err:
        engine(model, split, init_jitter=1e30, **kw)
    msg = str(err.value)
    assert msg.startswith(f"{engine.__name__}: the log density became -inf at step 1 of 10 of "
                          "chain 1; the finished chains 0 are kept at ")
    assert str(tmp_path / "chain-0.pt") in msg and "resume=True" in msg and "lr" in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chain-0.pt"]
    blob = load_checkpoint(tmp_path / "chain-0.pt")
    assert blob["draws"]["fc1.weight"].shape == (5, 1, 3)
    assert bool(torch.isfinite(blob["draws"]["fc1.weight"]).all())
    # without a checkpoint directory the message says so
    with pytest.raises(NonFiniteLossError, match="no checkpoint was written"):
        engine(model, split, init_jitter=1e30, **{**kw, "checkpoint_dir": None})


@pytest.mark.parametrize("failure", ["no_initial_point", "nan_draw"])
def test_mcmc_stops_and_keeps_the_finished_chains(failure, tmp_path, monkeypatch):
    """Chain 1 sees NaN targets (its log density is NaN at every initial point, so Pyro
    cannot start) or returns a NaN draw; chain 0 was saved before and stays."""
    model, split = _linear_model()
    real = mcmc_mod._chain

    def flaky(model, x, y, seed, settings, progress):
        if seed != 1:  # chain 1 of seed 0
            return real(model, x, y, seed, settings, progress)
        if failure == "no_initial_point":
            return real(model, x, y.clone().fill_(float("nan")), seed, settings, progress)
        out = real(model, x, y, seed, settings, progress)
        out["draws"]["fc1.bias"][2] = float("nan")
        return out

    monkeypatch.setattr(mcmc_mod, "_chain", flaky)
    match = {"no_initial_point": "cannot find valid initial params",
             "nan_draw": "draw 3 of site 'fc1.bias' is not finite"}[failure]
    with pytest.raises(NonFiniteLossError, match=f"^nuts chain 1: .*{match}.*the finished "
                                                 "chains 0 are kept at"):
        mcmc_mod.mcmc(model, split, num_warmup=5, num_samples=5, num_chains=2, seed=0,
                      checkpoint_dir=tmp_path, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chain-0.pt"]
    blob = load_checkpoint(tmp_path / "chain-0.pt")
    assert blob["draws"]["fc1.weight"].shape == (5, 1, 3)
    monkeypatch.setattr(mcmc_mod, "_chain", real)
    # the saved chain is reused on resume; the rerun chain 1 is fine now
    post = mcmc_mod.mcmc(model, split, num_warmup=5, num_samples=5, num_chains=2, seed=0,
                         checkpoint_dir=tmp_path, resume=True, progress=False)
    np.testing.assert_array_equal(post.posterior["fc1.weight"].values[0],
                                  blob["draws"]["fc1.weight"].numpy())


SPACE = nas.SearchSpace(ops=("conv_3x3", "max_pool_3x3", "skip_connect", "none"), n_nodes=2,
                        channels=3, stem_stride=1)


@pytest.mark.parametrize(("name", "kw", "nan_input", "match"), [
    ("darts", {"epochs": 1}, True, r"darts search: the training loss became nan in epoch 1"),
    ("spos", {"epochs": 1, "n_candidates": 2}, True,
     r"spos search: the training loss became nan in epoch 1"),
    ("vardarts", {"epochs": 1, "lr": 1e30}, False,
     r"vardarts search: the structure logits alpha became nan in epoch 1"),
    ("random", {"n_samples": 2, "epochs": 1, "lr": 1e30}, False,
     r"random search, candidate 1 of 2 \(.*\): plain training .* epoch 1"),
], ids=["darts", "spos", "vardarts", "random"])
def test_architecture_searchers_stop(name, kw, nan_input, match, digits):
    x = digits.train.x[:64].clone()
    if nan_input:  # one NaN pixel: a model that produces NaN
        x[5, 0, 3, 3] = float("nan")
    small = replace(digits, train=Split(x, digits.train.y[:64]),
                    val=Split(digits.val.x[:32], digits.val.y[:32]))
    with pytest.raises(NonFiniteLossError, match=match):
        nas.make_searcher(name, batch_size=32, **kw).search(small, SPACE, seed=0)


def test_nas_retrain_stops(digits):
    small = replace(digits, train=Split(digits.train.x[:64], digits.train.y[:64]))
    g = SPACE.random_genotype(np.random.default_rng(0))
    with pytest.raises(NonFiniteLossError, match=re.escape(f"nas retrain of {g}: plain training")):
        nas.retrain(g, SPACE, small, epochs=1, lr=1e30, batch_size=32)


@pytest.mark.parametrize(("run", "match"), [
    (lambda p, lam: hg.greedy(p, lam, total_steps=20, k=5),
     r"^greedy hypergradient loop: the hypergradient is not finite at outer step 1 "
     r"\(inner steps 1\.\.5\)"),
    (lambda p, lam: hg.honest(p, lam, outer_steps=2, max_inner_steps=50),
     r"^honest hypergradient loop, outer step 1: inner minimisation: the training-gradient "
     r"norm became nan"),
    (lambda p, lam: hg.hypergradient(p, lam, method="unrolled", steps=5),
     r"^hypergradient \(unrolled, 5 inner steps\) is not finite"),
    (lambda p, lam: hg.hypergradient(p, lam, method="implicit", steps=5),
     r"^inner optimisation \(sgd, lr=0.1\): the weights became non-finite within steps "
     r"1\.\.5"),
], ids=["greedy", "honest", "unrolled", "implicit"])
def test_hypergradient_loops_stop(run, match):
    """Logistic regression with one NaN input: the training loss is NaN from the first step."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 3, generator=g, dtype=torch.float64)
    y = (x[:, 0] > 0).double()
    x[0, 1] = float("nan")
    xt, yt, xv, yv = x[:20], y[:20], x[20:], y[20:]

    def train(w, lam):
        return (torch.nn.functional.binary_cross_entropy_with_logits(xt @ w[:3] + w[3], yt)
                + 0.5 * (torch.exp(lam) * w * w).sum())

    def val(w, lam):
        return torch.nn.functional.binary_cross_entropy_with_logits(xv @ w[:3] + w[3], yv)

    problem = hg.HyperProblem(train, val, torch.zeros(4, dtype=torch.float64),
                              hg.InnerOptimizer("sgd", lr=0.1))
    lam = torch.full((4,), -2.0, dtype=torch.float64)
    with pytest.raises(NonFiniteLossError, match=match):
        run(problem, lam)


def test_l2_experiment_names_the_weight_epoch():
    ds = _tiny()
    with pytest.raises(NonFiniteLossError, match=r"^l2 experiment \(shared\), weight epoch 1: "
                                                 r"inner optimisation"):
        hypergrad_tasks.l2_experiment(lambda: nets.mlp([5, 4, 3]), ds.train, ds.val, ds.test,
                                     "shared", epochs_weights=1, epochs_hyper=1, lr=1e30,
                                     optimizer="sgd", batch_size=16, progress=False)
