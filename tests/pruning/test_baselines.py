"""Pruning baselines through one interface: scores, sweeps, retraining, the comparison."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bayesstruct import nets, pruning
from bayesstruct.pruning.baselines import (
    magnitude_scores,
    obd_scores,
    obs_scores,
    random_scores,
    sweep,
)
from bayesstruct.pruning.hessian import diag_hessian
from bayesstruct.training.plain import evaluate_net, train_plain

FRACTIONS = (0.0, 0.5, 0.8, 0.9, 0.95)


@pytest.fixture(scope="module")
def trained(digits):
    torch.manual_seed(0)
    net = nets.logistic_regression(64, 10)
    train_plain(net, digits, epochs=40, lr=1e-2, batch_size=64, l2=1e-3)
    return net


def test_random_baseline_is_reproducible_by_seed(trained, digits):
    a, b, c = (random_scores(trained, s) for s in (3, 3, 4))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["fc1.weight"], c["fc1.weight"])
    rows = [sweep(trained, random_scores(trained, 3), digits.test, FRACTIONS) for _ in range(2)]
    assert [r["acc"] for r in rows[0]] == [r["acc"] for r in rows[1]]
    other = sweep(trained, random_scores(trained, 4), digits.test, FRACTIONS)
    assert [r["acc"] for r in other] != [r["acc"] for r in rows[0]]


def test_magnitude_and_obd_scores(trained, digits):
    w = trained.fc1.weight.detach().double()
    np.testing.assert_array_equal(magnitude_scores(trained)["fc1.weight"], -w.abs().numpy())
    diag = diag_hessian(trained, digits.train, l2=1e-3)["fc1.weight"].double()
    np.testing.assert_allclose(obd_scores(trained, digits.train, l2=1e-3)["fc1.weight"],
                               -(0.5 * diag * w * w).numpy(), rtol=1e-6, atol=1e-30)


def test_sweep_masks_the_trained_net_without_touching_it(trained, digits):
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    rows = sweep(trained, magnitude_scores(trained), digits.test, FRACTIONS, method="m")
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in before.items())
    assert rows[0]["acc"] == evaluate_net(trained, digits.test)["acc"]
    for r, f in zip(rows, FRACTIONS, strict=True):
        assert r["method"] == "m" and r["removed"] == pytest.approx(round(f * 640) / 640)
    # removing the smallest weights first beats removing them at random
    rand = sweep(trained, random_scores(trained, 0), digits.test, FRACTIONS)
    assert all(m["acc"] > r["acc"] + 0.05 for m, r in zip(rows[1:], rand[1:], strict=True))


def test_retraining_is_iterative_and_keeps_pruned_weights_exactly_zero(trained, digits):
    seen = []

    def retrain(net, masks):
        train_plain(net, digits, epochs=2, lr=1e-3, batch_size=64, l2=1e-3, masks=masks)
        w = net.fc1.weight.detach()
        drop = torch.as_tensor(~masks["fc1.weight"])
        assert torch.equal(w[drop], torch.zeros(int(drop.sum())))
        seen.append((~masks["fc1.weight"]).copy())

    plain = sweep(trained, magnitude_scores, digits.test, FRACTIONS)
    rows = sweep(trained, magnitude_scores, digits.test, FRACTIONS, retrain=retrain)
    assert len(seen) == len(FRACTIONS) - 1  # nothing to retrain at 0 % removed
    for earlier, later in zip(seen, seen[1:], strict=False):
        assert np.all(later[earlier])  # once removed, always removed
    assert rows[-1]["acc"] > plain[-1]["acc"]  # retraining helps at 95 %


def test_obs_scores_and_compensated_network(trained, digits):
    scores, network = obs_scores(trained, digits.train, FRACTIONS, l2=1e-3, block=8)
    rows = sweep(trained, scores, digits.test, FRACTIONS, network=network)
    masks = pruning.decide(scores, fraction=0.8)
    net = network(masks)
    w = net.fc1.weight.detach()
    assert torch.all(w[torch.as_tensor(~masks["fc1.weight"])] == 0)
    # the kept weights moved (the compensating update), so this is not plain masking
    kept = torch.as_tensor(masks["fc1.weight"])
    assert not torch.allclose(w[kept], trained.fc1.weight.detach()[kept])
    mag = sweep(trained, magnitude_scores(trained), digits.test, FRACTIONS)
    assert rows[3]["acc"] > mag[3]["acc"]  # 90 % removed
    with pytest.raises(ValueError, match="max_params=100"):
        obs_scores(trained, digits.train, FRACTIONS, max_params=100)


@pytest.fixture(scope="module")
def comparison(digits, tmp_path_factory):
    settings = pruning.CompareSettings(epochs=30, lr=1e-2, batch_size=64, l1=1e-3, l2=1e-3,
                                       retrain_epochs=3, fractions=FRACTIONS + (0.99,))
    ckpt = tmp_path_factory.mktemp("compare")
    res = pruning.compare(lambda: nets.logistic_regression(64, 10), digits, pruning.METHODS,
                          settings, progress=False, checkpoint_dir=ckpt, echo=lambda s: None)
    return res, settings, ckpt


def test_comparison_runs_every_method_on_every_fraction(comparison):
    res, settings, _ = comparison
    assert set(res.bases) == {"l1", "l2", "svi"}
    for m in pruning.METHODS:
        rows = [r for r in res.rows if r["method"] == m]
        assert [r["fraction"] for r in rows] == sorted(settings.fractions), m
    table = res.table()
    assert set(table) == set(pruning.METHODS)
    assert all(np.isfinite(v) for accs in table.values() for v in accs.values())


def test_comparison_has_the_expected_shape_on_digits(comparison):
    """Variational and OBD beat random wherever random has lost accuracy (50-95 %), and
    retraining helps magnitude pruning at 90-95 % removed."""
    res, _, _ = comparison
    acc = {(r["method"], r["fraction"]): r["acc"] for r in res.rows}
    for f in (0.5, 0.8, 0.9, 0.95):
        for m in ("variational", "obd", "obs"):
            assert acc[(m, f)] > acc[("random", f)], (m, f)
    for m in ("magnitude-l1", "magnitude-l2"):
        assert acc[(f"{m}-retrain", 0.95)] > acc[(m, 0.95)]


def test_comparison_resumes_from_its_checkpoints(comparison, digits):
    res, settings, ckpt = comparison
    log = []
    again = pruning.compare(lambda: nets.logistic_regression(64, 10), digits, pruning.METHODS,
                            settings, progress=False, checkpoint_dir=ckpt, echo=log.append)
    assert again.rows == res.rows
    assert all("loaded" in line for line in log)
    assert torch.load(ckpt / "base-svi.pt", weights_only=True)["scores"]
    # interrupted before any method finished: the trained bases are reloaded, not retrained
    (ckpt / "rows.json").unlink()
    log.clear()
    part = pruning.compare(lambda: nets.logistic_regression(64, 10), digits,
                           ["variational", "obd"], settings, progress=False,
                           checkpoint_dir=ckpt, echo=log.append)
    assert sum("loaded from" in line and "base" in line for line in log) == 2
    def strip(rows):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert strip(part.rows) == strip([r for r in res.rows if r["method"] in ("variational",
                                                                                "obd")])


def test_unknown_method_is_refused(digits):
    with pytest.raises(ValueError, match="unknown methods \\['hessian-free'\\]; allowed: random"):
        pruning.compare(lambda: nets.logistic_regression(64, 10), digits, ["hessian-free"])


@pytest.mark.parametrize("obd_hessian", ["gauss_newton", "hutchinson", "exact"])
def test_comparison_on_an_mlp_with_each_obd_hessian(digits, obd_hessian):
    settings = pruning.CompareSettings(epochs=10, lr=1e-2, batch_size=64, l2=1e-3,
                                       obd_hessian=obd_hessian, hutchinson_samples=16,
                                       hessian_examples=300, fractions=(0.0, 0.5, 0.8))
    res = pruning.compare(lambda: nets.mlp([64, 16, 10]), digits, ["random", "obd", "obs"],
                          settings, progress=False, echo=lambda s: None)
    acc = {(r["method"], r["fraction"]): r["acc"] for r in res.rows}
    assert acc[("obd", 0.0)] == acc[("random", 0.0)] > 0.85
    assert acc[("obd", 0.8)] > acc[("random", 0.8)]
    assert acc[("obs", 0.8)] > acc[("random", 0.8)]


def test_check_methods_refuses_before_training():
    big = nets.mlp([64, 100, 10])
    with pytest.raises(ValueError, match="obs_max_weights=1000"):
        pruning.check_methods(big, ["obs"], pruning.CompareSettings(obs_max_weights=1000))
    with pytest.raises(ValueError, match="use obd_hessian 'gauss_newton' or 'hutchinson'"):
        pruning.check_methods(big, ["obd-retrain"], pruning.CompareSettings())
    pruning.check_methods(big, ["obd"], pruning.CompareSettings(obd_hessian="hutchinson"))
