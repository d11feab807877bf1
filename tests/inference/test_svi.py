"""The SVI engine: learning, the grid of priors x guides, resume, NaN guard, warm-up."""

from __future__ import annotations

import math

import numpy as np
import pyro
import pytest
import torch

from bayesstruct import guides, nets, priors
from bayesstruct.files import load_checkpoint
from bayesstruct.inference import NonFiniteLossError, evaluate, svi
from bayesstruct.inference.svi import EB_START_FRACTION, KL_WARMUP_FRACTION
from bayesstruct.models import BayesianNet
from bayesstruct.posterior import point_estimate
from tests.helpers import PRIOR_GRID, PRIOR_IDS


def _logreg(ds, kind="ard", **kw):
    torch.manual_seed(0)
    net = nets.build("logreg", ds.input_shape, ds.n_classes)
    return BayesianNet(net, priors.get(kind, **kw))


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def test_ard_logreg_learns_digits(digits, device):
    model = _logreg(digits)
    post = svi(model, guides.MeanField(), digits, epochs=80, lr=0.01, batch_size=64,
               progress=False, num_draws=10, device=device)
    params = {k: torch.as_tensor(v) for k, v in point_estimate(post).items()}
    acc = evaluate(model, {s.name: params[s.name] for s in model.sites}, digits.test)["acc"]
    assert acc > 0.93
    losses = post.optimization["loss"].values
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("guide_name", ["meanfield", "delta"])
@pytest.mark.parametrize("kind,kw", PRIOR_GRID, ids=PRIOR_IDS)
def test_every_prior_and_guide_trains(digits, kind, kw, guide_name):
    model = _logreg(digits, kind, **kw)
    if guide_name == "delta" and kind == "ard" and kw.get("hyper") == "empirical_bayes":
        # the one refusal in the grid: a point mass has no posterior variance, and the
        # empirical-Bayes update alpha = 1 / (m^2 + s^2) would drive every weight to zero
        with pytest.raises(ValueError, match="collapses"):
            guides.get(guide_name, model)
        return
    if guide_name == "delta" and kind == "sbp":  # the truncated log-uniform has no MAP
        with pytest.raises(ValueError, match="no MAP"):
            guides.get(guide_name, model)
        return
    guide = guides.get(guide_name, model)
    post = svi(model, guide, digits, epochs=3, lr=0.01, progress=False, num_draws=4)
    hist = post.optimization
    assert torch.isfinite(torch.as_tensor(hist["loss"].values)).all()
    assert hist["val_acc"].values[-1] > 0.5
    assert set(post.posterior.data_vars) >= {"fc1.weight", "fc1.bias"}
    assert post.posterior["fc1.weight"].dims == ("chain", "draw", "fc1_out", "fc1_in")
    if guide_name == "meanfield":
        assert "variational_loc" in post.groups()


def test_kl_warmup_is_linear(digits):
    model = _logreg(digits)
    post = svi(model, guides.MeanField(), digits, epochs=4, kl_warmup_epochs=2, kl_weight=0.5,
               batch_size=256, progress=False, num_draws=2)
    betas = post.optimization["kl_weight"].values
    assert betas[0] == pytest.approx(0.25)  # end of epoch 1 of 2
    assert betas[1] == pytest.approx(0.5) and betas[3] == pytest.approx(0.5)


def test_auto_kl_warmup_follows_the_prior(digits, tmp_path):
    """``kl_warmup_epochs="auto"`` (the default) ramps the KL weight over
    ``KL_WARMUP_FRACTION`` of the run for a prior that asks for it (log-uniform) and not at
    all for the others; a resume that raises ``epochs`` keeps the ramp its run started with
    (the checkpoint records its steps)."""
    assert KL_WARMUP_FRACTION == 0.5

    def betas(kind, epochs, **kw):
        post = svi(_logreg(digits, kind), guides.MeanField(), digits, epochs=epochs, lr=0.01,
                   batch_size=256, progress=False, num_draws=2, **kw)
        return post.optimization["kl_weight"].values

    lu = betas("log_uniform", 4)
    assert lu[0] == pytest.approx(0.5) and lu[1] == pytest.approx(1.0)  # 2 warm-up epochs
    assert np.all(betas("gaussian", 2) == 1.0)
    betas("log_uniform", 2, checkpoint_dir=tmp_path)  # warm-up over its first epoch
    resumed = betas("log_uniform", 8, checkpoint_dir=tmp_path, resume=True)
    assert resumed[2] == pytest.approx(1.0)  # a fresh 8-epoch run would be at 3/4 here
    assert betas("log_uniform", 8)[2] == pytest.approx(0.75)
    with pytest.raises(ValueError, match="kl_warmup_epochs must be a finite number >= 0 or"):
        betas("gaussian", 1, kl_warmup_epochs=-1.0)


def test_empirical_bayes_runs_between_steps(digits):
    model = _logreg(digits, "ard", per="unit", hyper="empirical_bayes")
    guide = guides.MeanField()
    svi(model, guide, digits, epochs=2, lr=0.01, progress=False, num_draws=2)
    m, s = guide.moments()
    site = model.site("fc1.weight")
    expected = m[site.name].shape[0] / (m[site.name] ** 2 + s[site.name] ** 2).sum(0)
    # the prior holds the closed form of the state one step before the end; one more update
    model.prior.empirical_bayes_(m, s)
    torch.testing.assert_close(model.prior.precision(site), expected)


@pytest.mark.parametrize("start, first", [(0.0, 1), (1.0, 2), ("auto", 3)])
def test_empirical_bayes_starts_after_eb_start_epochs(digits, start, first):
    """No closed-form update before ``eb_start_epochs`` (default: half the run): the
    precisions hold their initial value through the epochs before it, then the closed form
    of q (checked one step behind, as above)."""
    model = _logreg(digits, "ard", per="unit", hyper="empirical_bayes")
    site = model.site("fc1.weight")
    init = model.prior.precision(site).clone()
    guide = guides.MeanField()
    seen = []

    def check(record):
        seen.append(torch.equal(model.prior.precision(site), init))

    svi(model, guide, digits, epochs=4, lr=0.01, progress=False, num_draws=2,
        eb_start_epochs=start, callbacks=[check])
    # updates from the start step on: epochs before it leave the precisions untouched
    assert seen == [True] * (first - 1) + [False] * (5 - first)  # 4 epochs
    m, s = guide.moments()
    model.prior.empirical_bayes_(m, s)  # one more update: the closed form of the end state
    expected = m[site.name].shape[0] / (m[site.name] ** 2 + s[site.name] ** 2).sum(0)
    torch.testing.assert_close(model.prior.precision(site), expected)


def test_eb_start_is_kept_by_a_resume_with_more_epochs(digits, tmp_path):
    """The default start is a share of ``epochs``; a resume that raises ``epochs`` keeps the
    step the run started its updates at (the checkpoint records it), so 2 + 2 epochs end where
    a straight 4-epoch run with that start ends."""
    def run(epochs, **kw):
        model = _logreg(digits, "ard", per="unit", hyper="empirical_bayes")
        post = svi(model, guides.MeanField(), digits, epochs=epochs, lr=0.01, progress=False,
                   num_draws=2, seed=3, **kw)
        return post, model

    n_batches = math.ceil(len(digits.train) / 128)
    _, _ = run(2, checkpoint_dir=tmp_path)  # auto start: half of 2 epochs
    resumed, m1 = run(4, checkpoint_dir=tmp_path, resume=True)
    start = math.ceil(EB_START_FRACTION * 2 * n_batches) / n_batches
    assert start < 2  # inside the first run, and not where 4 epochs would put it
    straight, m2 = run(4, eb_start_epochs=start)
    site = m1.site("fc1.weight")
    torch.testing.assert_close(m1.prior.precision(site), m2.prior.precision(site))
    with pytest.raises(ValueError, match="eb_start_epochs must be a finite number >= 0 or 'auto'"):
        run(1, eb_start_epochs=-1.0)


def _resumable_run(ds, tmp, epochs, **kw):
    model = _logreg(ds)
    return svi(model, guides.MeanField(), ds, epochs=epochs, lr=0.01, batch_size=128,
               checkpoint_dir=tmp, progress=False, num_draws=2, seed=7, **kw)


@pytest.mark.parametrize("lr_schedule", ["constant", "cosine"])
def test_resume_after_interrupt_reaches_the_same_elbo(digits, tmp_path, lr_schedule):
    straight = _resumable_run(digits, tmp_path / "a", 4, lr_schedule=lr_schedule)

    def interrupt(record):
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _resumable_run(digits, tmp_path / "b", 4, callbacks=[interrupt],
                       lr_schedule=lr_schedule)
    assert load_checkpoint(tmp_path / "b" / "last.pt")["epoch"] == 2
    resumed = _resumable_run(digits, tmp_path / "b", 4, resume=True, lr_schedule=lr_schedule)
    a, b = straight.optimization["loss"].values, resumed.optimization["loss"].values
    assert len(b) == 4
    assert a[-1] == b[-1]  # bit-for-bit on CPU
    assert (straight.variational_loc["fc1.weight"].values
            == resumed.variational_loc["fc1.weight"].values).all()


def test_cosine_schedule_follows_its_formula(digits):
    model = _logreg(digits)
    epochs, bs = 5, 256
    post = svi(model, guides.MeanField(), digits, epochs=epochs, lr=0.02, batch_size=bs,
               lr_schedule="cosine", progress=False, num_draws=2)
    steps = -(-len(digits.train) // bs)
    total = epochs * steps
    t = steps * np.arange(1, epochs + 1)
    expected = 0.02 * (0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * t / total)))
    np.testing.assert_allclose(post.optimization["lr"].values, expected, rtol=1e-9)
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        svi(model, guides.MeanField(), digits, epochs=1, lr_schedule="step", progress=False)


def test_nan_guard_keeps_last_good_checkpoint(digits, tmp_path):
    model = _logreg(digits)
    guide = guides.MeanField(model)
    calls = {"n": 0}
    steps_per_epoch = -(-len(digits.train) // 128)
    real_loss = guide.loss

    def poisoned(x, y):
        calls["n"] += 1
        out = real_loss(x, y)
        return out * float("nan") if calls["n"] > 2 * steps_per_epoch else out

    guide.loss = poisoned
    with pytest.raises(NonFiniteLossError, match="last good checkpoint is kept") as err:
        svi(model, guide, digits, epochs=5, batch_size=128, checkpoint_dir=tmp_path,
            progress=False)
    assert str(tmp_path / "last.pt") in str(err.value)
    ck = load_checkpoint(tmp_path / "last.pt")
    assert ck["epoch"] == 2
    assert all(torch.isfinite(v).all() for v in ck["guide"].values())


def test_early_stopping_restores_the_best_state(digits):
    model = _logreg(digits)
    guide = guides.MeanField()
    post = svi(model, guide, digits, epochs=40, lr=0.3, patience=2, progress=False,
               num_draws=2)
    hist = post.optimization
    best = int(post.attrs["best_epoch"])
    assert post.attrs["stopped_early"] == 1 and len(hist["loss"]) < 40
    val = evaluate(model, guide.point(), digits.val)["nll"]
    assert val == pytest.approx(float(hist["val_nll"].sel(epoch=best)), rel=1e-5)


def test_any_pyro_guide_runs_through_pyro_svi(digits):
    model = _logreg(digits, "gaussian")
    guide = pyro.infer.autoguide.AutoNormal(model)
    post = svi(model, guide, digits, epochs=2, lr=0.01, progress=False, num_draws=5)
    assert post.posterior["fc1.weight"].shape == (1, 5, 10, 64)
    with pytest.raises(ValueError, match="bayesstruct guide"):
        svi(model, guide, digits, epochs=1, checkpoint_dir="x", progress=False)


def test_patience_needs_validation(digits):
    with pytest.raises(ValueError, match="validation"):
        svi(_logreg(digits), guides.MeanField(), digits.train, epochs=1, patience=2,
            progress=False)


def _rnn(ds, **prior_kw):
    torch.manual_seed(0)
    net = nets.build("rnn", ds.input_shape, ds.n_classes, [16])
    return BayesianNet(net, priors.Gaussian(**prior_kw))


@pytest.mark.parametrize("covariance", ["diagonal", "scalar"])
@pytest.mark.parametrize("per", ["layer", "unit"])
def test_eb_along_svi_keeps_the_kl_below_the_fixed_priors(digits, per, covariance):
    """prior_update=closed_form on a recurrent net: after every epoch the KL term at the
    current q is no larger than under the prior held at its initial value, and the prior holds
    the closed form of the current q."""
    model = _rnn(digits, per=per)
    fixed = priors.Gaussian(per=per)
    fixed.bind(model.sites)
    guide = guides.MeanField(covariance=covariance)
    seen = []

    def check(record):
        with torch.no_grad():
            loc, log_var = guide.locs(), guide.log_variances()
            kl_eb, kl_fixed = float(model.prior.kl(loc, log_var)), float(fixed.kl(loc, log_var))
            assert kl_eb <= kl_fixed + 1e-3 * abs(kl_fixed)
            mu, var = model.prior.loc_var(model.site("rnn.hh.weight"))
            m, s = guide.moments()
            m, s = m["rnn.hh.weight"], s["rnn.hh.weight"]
            dims = (0,) if per == "unit" else (0, 1)
            torch.testing.assert_close(mu, m.mean(dims))
            torch.testing.assert_close(var, ((m - (mu if per == "layer" else mu[None])) ** 2
                                             + s * s).mean(dims))
        seen.append(kl_fixed - kl_eb)

    post = svi(model, guide, digits, epochs=3, lr=0.01, progress=False, num_draws=2,
               prior_update="closed_form", eb_start_epochs=0, callbacks=[check])
    assert len(seen) == 3 and max(seen) > 0
    assert post.attrs["prior_update"] == "closed_form"


def test_prior_update_none_holds_the_prior_and_closed_form_needs_one(digits):
    model = _rnn(digits, empirical_bayes=True, scale=0.5)
    svi(model, guides.MeanField(), digits, epochs=1, lr=0.01, progress=False, num_draws=2,
        prior_update="none")
    assert all(float(v) == 0.25 for k, v in model.prior.state_dict().items()
               if k.endswith("__var"))
    hs = BayesianNet(nets.build("rnn", digits.input_shape, 10, [4]), priors.get("horseshoe"))
    with pytest.raises(ValueError, match="no closed-form empirical-Bayes update"):
        svi(hs, guides.MeanField(), digits, epochs=1, progress=False, prior_update="closed_form")
    with pytest.raises(ValueError, match="prior_update='always'; allowed: auto, none"):
        svi(model, guides.MeanField(), digits, epochs=1, progress=False, prior_update="always")


def test_rnn_learns_sequential_digits(digits):
    """An Elman RNN reading the 8x8 digits row by row, SVI with empirical Bayes."""
    model = _rnn(digits)
    post = svi(model, guides.MeanField(), digits, epochs=12, lr=0.01, batch_size=64,
               progress=False, num_draws=2, prior_update="closed_form")
    params = {k: torch.as_tensor(v) for k, v in point_estimate(post).items()}
    ev = evaluate(model, params, digits.test)
    assert ev["acc"] > 0.85 and ev["f1_macro"] > 0.85


@pytest.mark.parametrize("n_classes", [2, 6])
def test_macro_f1_matches_scikit_learn(n_classes):
    from sklearn.metrics import f1_score

    from bayesstruct.training import confusion_matrix, macro_f1

    g = torch.Generator().manual_seed(n_classes)
    y = torch.randint(0, n_classes, (300,), generator=g)
    pred = torch.where(torch.rand(300, generator=g) < 0.6, y,
                       torch.randint(0, n_classes, (300,), generator=g))
    pred[pred == n_classes - 1] = 0  # a class never predicted
    ours = macro_f1(confusion_matrix(pred, y, n_classes))
    assert ours == pytest.approx(f1_score(y.numpy(), pred.numpy(), average="macro",
                                          zero_division=0.0), abs=1e-12)
