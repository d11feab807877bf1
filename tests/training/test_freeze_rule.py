"""The gradient rule of the freezing method sums full-data gradients at the last ``t``
iterates of stage 1, ``w_{eta0 - i} = T^{eta0 - i}(w_0)``, ``i = 0 .. t-1``: checked against a
hand computation (softmax regression, closed-form gradients, the SGD trajectory replayed)."""

from __future__ import annotations

from itertools import islice

import torch
from torch import nn

from bayesstruct.data import Split
from bayesstruct.training import Minibatches, freeze

ETA0, WINDOW, LR, BATCH = 7, 3, 0.5, 4


def _problem():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(12, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (12,), generator=g)
    net = nn.Linear(3, 3).double()
    with torch.no_grad():
        net.weight.copy_(torch.randn(3, 3, generator=g, dtype=torch.float64))
        net.bias.copy_(torch.randn(3, generator=g, dtype=torch.float64))
    return net, Split(x, y)


def _grad(w, b, x, y):
    """Closed form: d/dW mean CE = (P - Y)' X / n, d/db = mean(P - Y)."""
    r = torch.softmax(x @ w.T + b, -1) - nn.functional.one_hot(y, 3).double()
    return {"weight": r.T @ x / len(y), "bias": r.mean(0)}


def _iterates(net, split):
    """``w_0 .. w_eta0`` of SGD on the same minibatches as stage 1, by hand."""
    w, b = net.weight.detach().clone(), net.bias.detach().clone()
    out = [(w, b)]
    batches = Minibatches(split.x, split.y, BATCH, 0)
    for x, y in islice(batches.stream(), ETA0):
        g = _grad(w, b, x, y)
        w, b = w - LR * g["weight"], b - LR * g["bias"]
        out.append((w, b))
    return out, batches


def test_gradient_rule_sums_full_data_gradients_at_the_last_t_iterates():
    net, split = _problem()
    iterates, _ = _iterates(net, split)
    stats = freeze.stage_warm(net, split, steps=ETA0, window=WINDOW, lr=LR, batch_size=BATCH)
    assert stats.full_count == WINDOW
    # the index set {eta0 - i : i = 0 .. t-1} = {5, 6, 7}, the final iterate included
    js = [ETA0 - i for i in range(WINDOW)]
    assert js == [7, 6, 5]
    want = {k: sum(_grad(*iterates[j], split.x, split.y)[k].abs() for j in js)
            for k in ("weight", "bias")}
    scores = stats.scores("gradient")
    for k in want:
        torch.testing.assert_close(scores[k], want[k], rtol=1e-10, atol=1e-12)
    # one iterate off ({4, 5, 6}) is another score on this problem
    off = sum(_grad(*iterates[j], split.x, split.y)["weight"].abs() for j in (4, 5, 6))
    assert float((off - want["weight"]).abs().max()) > 1e-3
    # stage 1 ends at w_eta0 (the recording leaves the trajectory alone)
    torch.testing.assert_close(net.weight.detach(), iterates[ETA0][0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(net.bias.detach(), iterates[ETA0][1], rtol=1e-12, atol=1e-12)
    # and the rule keeps the k largest of that sum
    keep = freeze.select(stats, "gradient", 4)
    flat = torch.cat([want["weight"].reshape(-1), want["bias"]])
    top = torch.zeros(12, dtype=torch.bool)
    top[flat.topk(4).indices] = True
    assert torch.equal(torch.cat([keep["weight"].reshape(-1), keep["bias"]]), top)


def test_psgld_rule_moments_are_minibatch_gradients_at_the_same_iterates():
    net, split = _problem()
    iterates, batches = _iterates(net, split)
    stats = freeze.stage_warm(net, split, steps=ETA0, window=WINDOW, lr=LR, batch_size=BATCH)
    mb = list(islice(batches.stream(), ETA0 + 1))  # at w_j the j-th minibatch (j = 7: next)
    grads = [_grad(*iterates[j], *mb[j]) for j in (5, 6, 7)]
    for k in ("weight", "bias"):
        stack = torch.stack([g[k] for g in grads])
        torch.testing.assert_close(stats.mean[k], stack.mean(0), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(stats.var[k], stack.var(0), rtol=1e-8, atol=1e-12)


def test_full_gradient_is_the_mean_loss_gradient_in_chunks():
    net, split = _problem()
    got = freeze.full_gradient(net, split, full_batch=5)  # chunks of 5, 5, 2
    want = _grad(net.weight.detach(), net.bias.detach(), split.x, split.y)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-10, atol=1e-12)


def test_without_full_data_the_gradient_rule_sums_the_minibatch_gradients_there():
    net, split = _problem()
    iterates, batches = _iterates(net, split)
    stats = freeze.stage_warm(net, split, steps=ETA0, window=WINDOW, lr=LR, batch_size=BATCH,
                              full_data=False)
    assert stats.full_count == 0
    mb = list(islice(batches.stream(), ETA0 + 1))
    want = sum(_grad(*iterates[j], *mb[j])["weight"].abs() for j in (5, 6, 7))
    torch.testing.assert_close(stats.scores("gradient")["weight"], want, rtol=1e-10,
                               atol=1e-12)
