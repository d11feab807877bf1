"""Freezing and keep-l-largest (M8, seed 004): frozen parameters are bit-for-bit unchanged,
the gradient statistics equal a direct computation over stored gradients, and the pSGLD rule
finds planted converged coordinates of a quadratic with known curvature."""

from __future__ import annotations

import math
from itertools import islice

import pytest
import torch
from torch import nn

from bayesstruct import nets
from bayesstruct.training import Minibatches, freeze
from tests.helpers import seed


def _mlp():
    torch.manual_seed(0)
    return nets.build("mlp", (1, 8, 8), 10, [32])


def _cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(64, 10))


NETS = {"mlp": _mlp, "cnn": _cnn}


@pytest.mark.parametrize("granularity", freeze.GRANULARITIES)
@pytest.mark.parametrize("rule", freeze.RULES)
@pytest.mark.parametrize("net_name", list(NETS))
def test_frozen_parameters_do_not_change_bit_for_bit(net_name, rule, granularity, digits):
    net = NETS[net_name]()
    stats = freeze.stage_warm(net, digits.train, steps=30, window=10, lr=0.05)
    n = sum(p.numel() for p in net.parameters())
    alpha = freeze.select(stats, rule, round(0.3 * n), torch.Generator().manual_seed(1),
                          granularity)
    names = list(alpha)
    alpha[names[0]] = torch.zeros_like(alpha[names[0]])  # a wholly frozen tensor
    alpha[names[-1]] = torch.ones_like(alpha[names[-1]])  # a wholly live one
    before = {k: p.detach().clone() for k, p in net.named_parameters()}
    freeze.stage_masked(net, digits.train, alpha, steps=20, lr=0.05, start=30)
    moved = 0
    for k, p in net.named_parameters():
        frozen = ~alpha[k]
        assert torch.equal(p.detach()[frozen], before[k][frozen]), k
        moved += int((p.detach()[alpha[k]] != before[k][alpha[k]]).sum())
        assert p.requires_grad  # restored after the stage
    assert moved > 0.9 * sum(int(m.sum()) for m in alpha.values())


def test_gradient_statistics_match_stored_gradients():
    torch.manual_seed(0)
    shapes = {"a": (3, 4), "b": (5,)}
    grads = [{k: torch.randn(s) * (1 + i % 3) + 0.5 for k, s in shapes.items()}
             for i in range(17)]
    stats = freeze.GradientStatistics({k: torch.zeros(s) for k, s in shapes.items()})
    for g in grads:
        stats.update(g)
    for k in shapes:
        stack = torch.stack([g[k] for g in grads]).double()
        torch.testing.assert_close(stats.mean[k], stack.mean(0))
        torch.testing.assert_close(stats.var[k], stack.var(0, unbiased=True))
        torch.testing.assert_close(stats.abs_sum[k], stack.abs().sum(0))
        torch.testing.assert_close(stats.snr()[k], stack.mean(0).abs() / stack.std(0))


def test_warm_stage_records_the_last_window_of_its_own_gradients(digits):
    """Replay the same SGD trajectory by hand, store the minibatch gradients at the iterates
    w_18 .. w_25 (at w_25, the stream's next minibatch), compare."""
    net, twin = _mlp(), _mlp()
    stats = freeze.stage_warm(net, digits.train, steps=25, window=8, lr=0.05, batch_size=64,
                              seed=3)
    params = dict(twin.named_parameters())
    stored = []
    batches = Minibatches(digits.train.x, digits.train.y, 64, 3)
    for t, (x, y) in enumerate(islice(batches.stream(), 26)):
        g = torch.autograd.grad(nn.functional.cross_entropy(twin(x), y), list(params.values()))
        if t >= 18:
            stored.append(g)
        if t == 25:
            break
        with torch.no_grad():
            for p, gi in zip(params.values(), g, strict=True):
                p.sub_(0.05 * gi)
    for i, k in enumerate(params):
        stack = torch.stack([g[i] for g in stored]).double()
        torch.testing.assert_close(stats.mean[k], stack.mean(0))
        torch.testing.assert_close(stats.var[k], stack.var(0), rtol=1e-6, atol=1e-12)
        torch.testing.assert_close(stats.abs_sum[k], stack.abs().sum(0))
    for (k, p), q in zip(net.named_parameters(), twin.parameters(), strict=True):
        assert torch.equal(p, q), k


def _planted_quadratic(seed_: int, window: int = 50):
    """L(w) = 1/2 sum_i h_i (w_i - w*_i)^2 with noisy gradients h (w - w*) + sigma_i eps.
    Planted (converged): h = 1, noisy (sigma = 2): after 300 steps at lr 0.1 they sit at w*.
    The rest: h = 0.01 from 100 away, quiet (sigma = 0.1): still drifting towards w*."""
    g = torch.Generator().manual_seed(seed_)
    n = 200
    planted = torch.zeros(n, dtype=torch.bool)
    planted[torch.randperm(n, generator=g)[:60]] = True
    h = torch.where(planted, 1.0, 0.01).double()
    sigma = torch.where(planted, 2.0, 0.1).double()
    w_star = torch.randn(n, generator=g, dtype=torch.float64)
    w = w_star + 100.0
    stats = freeze.GradientStatistics({"w": w})
    steps = 300
    for t in range(steps):
        grad = h * (w - w_star) + sigma * torch.randn(n, generator=g, dtype=torch.float64)
        if t >= steps - window:
            stats.update({"w": grad})
        w = w - 0.1 * grad
    return stats, planted


def _snr_margins(snr: torch.Tensor, planted: torch.Tensor) -> None:
    """The threshold 1 lies more than 5 sd of each group's SNR away from its mean (the
    coordinates of a group are independent draws of the same law): planted 0.05 +- 0.04,
    drifting 7.7 +- 0.5 (measured over seeds)."""
    conv, drift = snr[planted], snr[~planted]
    assert float(conv.mean() + 5 * conv.std()) < 1.0 < float(drift.mean() - 5 * drift.std())


@pytest.mark.stochastic
@pytest.mark.parametrize("s", range(5))
def test_psgld_rule_picks_the_planted_converged_parameters(s):
    """The planted coordinates are told from the drifting ones exactly. Bound: >= 5 SE; the
    threshold is > 5 sd of each group's SNR from its mean (checked on the draws), and the
    |grad| sums of the two groups are separated (planted >= 58, drifting <= 41 over seeds)."""
    stats, planted = _planted_quadratic(seed(s))
    _snr_margins(stats.snr()["w"], planted)
    keep = freeze.select(stats, "psgld", int((~planted).sum()))["w"]
    assert torch.equal(keep, ~planted)  # exactly the planted ones are frozen
    assert torch.equal(freeze.converged(stats, threshold=1.0)["w"], planted)
    # the |grad|-sum rule is fooled by the noise of the converged coordinates
    by_grad = freeze.select(stats, "gradient", int((~planted).sum()))["w"]
    assert (by_grad & planted).sum() > 0.5 * planted.sum()


def _stats_from(grads: list[dict[str, torch.Tensor]]) -> freeze.GradientStatistics:
    stats = freeze.GradientStatistics({k: torch.zeros_like(v) for k, v in grads[0].items()})
    for g in grads:
        stats.update(g)
    return stats


@pytest.mark.parametrize("rule", ["gradient", "psgld"])
@pytest.mark.parametrize("k", [0, 5, 10, 12, 14, 17, 20])
def test_tensor_granularity_fills_whole_tensors_in_rank_order(rule, k):
    """Against a direct computation over stored gradients: tensor scores from torch.stack,
    the ranked tensors kept whole while they fit, the boundary tensor's best entries."""
    torch.manual_seed(0)
    shapes = {"a": (4,), "b": (2, 3), "c": (10,)}
    drift = {"a": 1.0, "b": 0.1, "c": 3.0}
    grads = [{n: drift[n] * (1 + torch.rand(s)) + torch.randn(s) for n, s in shapes.items()}
             for _ in range(12)]
    stacks = {n: torch.stack([g[n] for g in grads]).double() for n in shapes}
    if rule == "psgld":
        tensor = {n: float(s.mean(0).norm() / s.var(0).sum().sqrt()) for n, s in stacks.items()}
        elem = {n: s.mean(0).abs() / s.std(0) for n, s in stacks.items()}
    else:
        tensor = {n: float(s.abs().sum(0).mean()) for n, s in stacks.items()}
        elem = {n: s.abs().sum(0) for n, s in stacks.items()}
    assert sorted(tensor, key=tensor.get, reverse=True) == ["c", "a", "b"]  # by construction
    alpha = freeze.select(_stats_from(grads), rule, k, granularity="tensor")
    expected, used = {}, 0
    for n in ["c", "a", "b"]:
        size = elem[n].numel()
        if used + size <= k:
            expected[n] = torch.ones(shapes[n], dtype=torch.bool)
        else:  # the boundary tensor: its k - used best entries, then nothing more
            top = elem[n].reshape(-1).argsort(descending=True)[: max(k - used, 0)]
            m = torch.zeros(size, dtype=torch.bool)
            m[top] = True
            expected[n] = m.view(shapes[n])
            used = k
            continue
        used += size
    for n in shapes:
        assert torch.equal(alpha[n], expected[n]), n
    assert sum(int(m.sum()) for m in alpha.values()) == k


@pytest.mark.parametrize("rule", freeze.RULES)
def test_tensor_granularity_saves_the_gradients_of_frozen_tensors(rule, digits):
    """k = 10 % of the MLP's parameters (241 of 2410) tensor by tensor: exactly k kept, at most
    one tensor partly live, and autograd computes gradients for the live tensors only. Both
    weight matrices (2048 and 320 entries) exceed k, so whichever ranks first is the boundary
    and the other is wholly frozen, whatever the rule."""
    net = _mlp()
    stats = freeze.stage_warm(net, digits.train, steps=30, window=10, lr=0.05)
    n = sum(p.numel() for p in net.parameters())
    k = round(0.1 * n)
    alpha = freeze.select(stats, rule, k, torch.Generator().manual_seed(2), "tensor")
    assert sum(int(m.sum()) for m in alpha.values()) == k
    assert sum(1 for m in alpha.values() if m.any() and not m.all()) <= 1
    live = {name for name, m in alpha.items() if m.any()}
    seen = set()
    for name, p in net.named_parameters():
        p.register_hook(lambda g, name=name: seen.add(name))
    freeze.stage_masked(net, digits.train, alpha, steps=3, lr=0.05, start=30)
    assert seen == live
    frozen_whole = sum(m.numel() for m in alpha.values() if not m.any())
    assert freeze.work_saved(alpha) == pytest.approx((1 - k / n, frozen_whole / n))
    assert frozen_whole > 0


@pytest.mark.stochastic
def test_tensor_psgld_rule_freezes_the_planted_converged_tensor():
    """Two tensors of the planted quadratic: one all converged, one all drifting (bound: >= 5
    SE, as in the element test above)."""
    stats, planted = _planted_quadratic(seed(0))
    _snr_margins(stats.snr()["w"], planted)
    two = freeze.GradientStatistics({"conv": torch.zeros(60), "drift": torch.zeros(140)})
    two.count, two.mean, two._m2, two.abs_sum = stats.count, *[
        {"conv": d["w"][planted], "drift": d["w"][~planted]}
        for d in (stats.mean, stats._m2, stats.abs_sum)]
    keep = freeze.select(two, "psgld", 140, granularity="tensor")
    assert bool(keep["drift"].all()) and not bool(keep["conv"].any())
    assert two.tensor_scores("psgld")["conv"] < 1.0 < two.tensor_scores("psgld")["drift"]


def test_keep_largest_is_the_global_top_l():
    torch.manual_seed(0)
    params = {"a": torch.randn(4, 5), "b": torch.randn(7)}
    beta = freeze.keep_largest(params, 9)
    flat = torch.cat([p.abs().reshape(-1) for p in params.values()])
    threshold = flat.sort(descending=True).values[8]
    for k, p in params.items():
        assert torch.equal(beta[k], p.abs() >= threshold)
    assert sum(int(m.sum()) for m in beta.values()) == 9


@pytest.mark.parametrize("rule", freeze.RULES)
def test_train_selective_end_to_end(rule, digits):
    net = _mlp()
    r = freeze.train_selective(net, digits, eta0=40, eta1=40, k=0.3, l=0.5, rule=rule,
                               window=20, lr=0.05)
    n = sum(p.numel() for p in net.parameters())
    assert r.n_params == n and r.k == round(0.3 * n) and r.l == round(0.5 * n)
    assert sum(int((p != 0).sum()) for p in net.parameters()) <= r.l
    assert r.update_saved == pytest.approx(1 - r.k / n)
    assert 0.0 <= r.grad_saved <= r.update_saved
    assert 0.5 < r.test_acc_before_prune <= 1.0 and math.isfinite(r.test_nll)


def test_wholly_frozen_tensors_compute_no_gradient(digits):
    net = _mlp()
    alpha = {k: torch.zeros_like(p, dtype=torch.bool) for k, p in net.named_parameters()}
    last = list(alpha)[-1]
    alpha[last][:] = True
    seen = []
    for k, p in net.named_parameters():
        p.register_hook(lambda g, k=k: seen.append(k))
    freeze.stage_masked(net, digits.train, alpha, steps=3, lr=0.05)
    assert set(seen) == {last}
    assert freeze.work_saved(alpha)[1] == pytest.approx(
        1 - alpha[last].numel() / sum(m.numel() for m in alpha.values()))


@pytest.mark.parametrize(("call", "match"), [
    (lambda s: freeze.select(s, "largest", 3), "allowed: random, gradient, psgld"),
    (lambda s: freeze.select(s, "gradient", 10**6), "k must lie in"),
    (lambda s: freeze.stage_warm(nn.Linear(2, 2), None, steps=3, window=4, lr=0.1),
     "window must lie in 2..steps=3"),
    (lambda s: freeze.select(s, "psgld", 1, granularity="unit"),
     "allowed: element, tensor"),
    (lambda s: freeze.select(s, "psgld", 4, granularity="tensor"), "k must lie in"),
])
def test_bad_settings_name_the_field(call, match):
    stats = freeze.GradientStatistics({"w": torch.zeros(3)})
    stats.update({"w": torch.ones(3)})
    stats.update({"w": torch.zeros(3)})
    with pytest.raises(ValueError, match=match):
        call(stats)
