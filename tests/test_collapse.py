"""The collapse check: a short plain fit beside the posterior mean, McNemar's paired counts,
the fraction of units with every weight pruned; a warning on a planted collapse, none on an
honest fit."""

import copy
import math

import numpy as np
import pytest
import torch

from bayesstruct import config
from bayesstruct.collapse import (
    beyond_chance,
    check_collapse,
    correct,
    dead_unit_fraction,
    detectable_gap,
    plain_fit,
)
from bayesstruct.experiments.base import build_model, load_data
from bayesstruct.training import evaluate


def test_dead_unit_fraction_counts_rows_with_no_weight_kept():
    rng = np.random.default_rng(0)
    masks = {"a.weight": rng.random((7, 5)) < 0.5, "b.weight": rng.random((4, 3, 2, 2)) < 0.3,
             "a.bias": np.zeros(7, bool)}  # 1-d masks (biases) are not units
    masks["a.weight"][[1, 4]] = False
    masks["b.weight"][2] = False
    dead = total = 0  # brute force, one unit at a time
    for k in ("a.weight", "b.weight"):
        for row in masks[k]:
            dead += int(not row.any())
            total += 1
    assert dead >= 3
    assert dead_unit_fraction(masks) == pytest.approx(dead / total)
    assert dead_unit_fraction({"x.bias": np.ones(3, bool)}) == 0.0


@pytest.fixture(scope="module")
def fitted():
    torch.manual_seed(0)
    cfg = config.resolve("ard-logreg-digits", None, ["inference.epochs=20"])
    ds = load_data(cfg)
    model = build_model(cfg, ds)
    plain_model, params, epochs = plain_fit(cfg, ds, steps=300)
    return cfg, ds, model, plain_model, params, epochs


def test_plain_fit_is_a_maximum_likelihood_fit_within_its_step_budget(fitted):
    cfg, ds, _, plain_model, params, epochs = fitted
    per_epoch = math.ceil(len(ds.train) / cfg.inference.batch_size)
    assert epochs == math.ceil(300 / per_epoch) <= cfg.inference.epochs
    # digits are nearly separable by a linear map: a real fit, far above chance (0.1)
    assert evaluate(plain_model, params, ds.val)["acc"] > 0.85
    assert plain_model.prior.kind == "gaussian" and plain_model.net is not None


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_plain_fit_follows_the_recipes_learning_rate_schedule(schedule):
    """One minibatch holds the whole training split, so each epoch is one Adam step on the
    summed cross-entropy; a plain torch loop with the learning rate written out
    (``lr (0.01 + 0.99 (1 + cos(pi t / T)) / 2)`` at step ``t`` of ``T`` for cosine) reproduces
    it from the same start."""
    cfg = config.resolve("ard-logreg-digits", None, [
        "inference.batch_size=4096", "inference.lr=0.05", f"inference.lr_schedule={schedule}"])
    ds = load_data(cfg)
    torch.manual_seed(cfg.seed)
    start = build_model(cfg, ds).net
    T, lr = 6, 0.05
    net = copy.deepcopy(start)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for t in range(T):
        for group in opt.param_groups:
            group["lr"] = lr * (0.01 + 0.99 * (1 + math.cos(math.pi * t / T)) / 2
                                if schedule == "cosine" else 1.0)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(ds.train.x), ds.train.y, reduction="sum").backward()
        opt.step()

    plain_model, params, epochs = plain_fit(cfg, ds, steps=T, start=start)
    assert epochs == T
    fitted_state = {**plain_model.net.state_dict(), **plain_model.prior.net_params(params)}
    for k, v in net.state_dict().items():
        torch.testing.assert_close(fitted_state[k], v, rtol=1e-4, atol=1e-5)


def test_the_check_runs_and_records_the_schedule_asked_for(fitted):
    """A cosine recipe: the plain fit is constant by default and cosine only when asked for
    (``collapse_check.plain_lr_schedule: recipe``); each check's figures are those of a plain
    fit at that schedule, and the two differ."""
    cfg, ds, model, _, params, _ = fitted
    nll = {}
    for asked, used in [("constant", "constant"), ("recipe", "cosine")]:
        cosine = cfg.model_copy(update={
            "inference": cfg.inference.model_copy(update={"lr_schedule": "cosine"}),
            "collapse_check": cfg.collapse_check.model_copy(
                update={"plain_lr_schedule": asked})})
        out = check_collapse(cosine, model, params, _masks(params), ds)
        assert out is not None and out.plain_lr_schedule == used
        assert out.to_dict()["plain_lr_schedule"] == used
        plain_model, plain, _ = plain_fit(cosine, ds, steps=cosine.collapse_check.plain_steps,
                                          lr_schedule=used)
        nll[used] = evaluate(plain_model, plain, ds.val)["nll"]
        assert out.plain_val_nll == pytest.approx(nll[used], rel=1e-6)
    assert nll["constant"] != pytest.approx(nll["cosine"], rel=1e-3)


def test_the_check_is_constant_by_default():
    assert config.resolve("ibp-mlp").collapse_check.plain_lr_schedule == "constant"
    with pytest.raises(Exception, match="plain_lr_schedule"):
        config.resolve("ibp-mlp", None, ["collapse_check.plain_lr_schedule=cosine"])


def test_correct_agrees_with_evaluate(fitted):
    _, ds, _, plain_model, params, _ = fitted
    ok = correct(plain_model, params, ds.val)
    assert ok.shape == (len(ds.val),) and ok.dtype == torch.bool
    assert ok.float().mean().item() == pytest.approx(evaluate(plain_model, params, ds.val)["acc"])


def _masks(params, dead_classes=()):
    masks = {k: np.ones(tuple(v.shape), bool) for k, v in params.items()}
    for k in masks:
        if k.endswith("weight"):
            masks[k][list(dead_classes)] = False
    return masks


def test_a_planted_collapse_warns(fitted):
    """Half the classes' weights zeroed and their biases pushed down (the output layer keeps
    5 of 10 classes, as the issue's wine MLP kept 2 of 3): the check must say so."""
    cfg, ds, model, _, params, _ = fitted
    dead = range(5)
    planted = {k: v.clone() for k, v in params.items()}
    w = next(k for k in planted if k.endswith("weight"))
    b = next(k for k in planted if k.endswith("bias"))
    planted[w][list(dead)] = 0.0
    planted[b][list(dead)] = -50.0
    out = check_collapse(cfg, model, planted, _masks(params, dead), ds)
    assert out is not None and out.warning is not None
    assert "possible collapse" in out.warning and "eb_start_epochs" in out.warning
    assert out.plain_val_acc - out.val_acc > 0.3
    assert out.dead_unit_fraction == pytest.approx(0.5)
    assert out.plain_only_correct - out.bayes_only_correct > 2 * math.sqrt(
        out.plain_only_correct + out.bayes_only_correct)


def test_an_honest_fit_stays_quiet(fitted):
    """The plain fit's own parameters (a net as good as the reference): no warning."""
    cfg, ds, model, _, params, _ = fitted
    out = check_collapse(cfg, model, params, _masks(params), ds)
    assert out is not None and out.warning is None
    assert out.dead_unit_fraction == 0.0
    assert abs(out.val_acc - out.plain_val_acc) <= cfg.collapse_check.tolerance


@pytest.mark.parametrize("b, c, beyond", [(4, 0, False), (5, 0, True), (0, 9, False),
                                           (12, 4, False), (14, 4, True), (0, 0, False)])
def test_mcnemar_bound(b, c, beyond):
    """``(b - c) / sqrt(b + c) > 2``: 4 of 4 discordant examples is not enough, 5 of 5 is."""
    assert beyond_chance(b, c) is beyond


@pytest.mark.parametrize("n", [15, 36, 180, 10_000])
def test_detectable_gap_is_the_smallest_count_beyond_chance(n):
    """Brute force over b (with c = 0): the first b the test accepts, as a share of n."""
    b_min = next(b for b in range(1, n + 1) if beyond_chance(b, 0))
    assert detectable_gap(n, 0.0) == pytest.approx(b_min / n)
    assert detectable_gap(n, 0.02) == pytest.approx(max(0.02, b_min / n))
