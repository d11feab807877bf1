"""The honest loop's inner solvers descend the full-batch ``L_train`` even when the problem
has a ``batch_loss``: their optimum is the ridge closed form, not a minibatch's."""

from __future__ import annotations

import pytest
import torch

from bayesstruct.inference import hypergrad as hg
from bayesstruct.inference.hypergrad import HyperProblem, InnerOptimizer
from bayesstruct.inference.hypergrad.outer import minimise_inner, newton

DT = torch.float64


def _ridge_with_minibatches():
    g = torch.Generator().manual_seed(11)
    x = torch.randn(40, 5, generator=g, dtype=DT)
    y = x @ torch.randn(5, generator=g, dtype=DT) + 0.3 * torch.randn(40, generator=g, dtype=DT)
    lam = torch.tensor(0.3, dtype=DT)

    def train(w, lam):
        return 0.5 * ((x @ w - y) ** 2).sum() + 0.5 * torch.exp(lam).sum() * (w * w).sum()

    def batch(w, lam, t):  # minibatch of 10 rows, scaled to the full size (40 / 10)
        i = slice(10 * (t % 4), 10 * (t % 4) + 10)
        return 2.0 * ((x[i] @ w - y[i]) ** 2).sum() + 0.5 * torch.exp(lam).sum() * (w * w).sum()

    def val(w, lam):
        return (w * w).sum()

    # the closed form of argmin_w L_train (independent of the solvers)
    w_star = torch.linalg.solve(x.T @ x + torch.exp(lam) * torch.eye(5, dtype=DT), x.T @ y)
    # a minibatch's optimum, which a minibatch-gradient solver would converge to instead
    xb, yb = x[:10], y[:10]
    w_batch0 = torch.linalg.solve(4.0 * xb.T @ xb + torch.exp(lam) * torch.eye(5, dtype=DT),
                                  4.0 * xb.T @ yb)
    lmax = float(torch.linalg.eigvalsh(x.T @ x).max())
    opt = InnerOptimizer("sgd", lr=1.0 / (lmax + 2.0))
    return HyperProblem(train, val, torch.zeros(5, dtype=DT), opt, batch_loss=batch), lam, \
        w_star, w_batch0


def test_newton_reaches_the_full_batch_closed_form_with_a_batch_loss():
    problem, lam, w_star, w_batch0 = _ridge_with_minibatches()
    assert float((w_star - w_batch0).norm()) > 0.1  # the two optima really differ
    state, steps, norm = newton(problem, lam, {"w": problem.w0}, tol=1e-10, max_steps=20)
    torch.testing.assert_close(state["w"], w_star, rtol=1e-9, atol=1e-9)
    assert norm <= 1e-10 and steps <= 3  # a quadratic: one Newton step


def test_minimise_inner_reaches_the_full_batch_closed_form_with_a_batch_loss():
    problem, lam, w_star, _ = _ridge_with_minibatches()
    state = hg.init_state(problem.optimizer, problem.w0)
    state, steps, norm = minimise_inner(problem, lam, state, tol=1e-9, max_steps=20_000)
    assert norm <= 1e-9, (steps, norm)
    torch.testing.assert_close(state["w"], w_star, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("inner", ["optimizer", "newton"])
def test_honest_inner_state_is_the_full_batch_optimum(inner):
    problem, lam, w_star, _ = _ridge_with_minibatches()
    out = hg.honest(problem, lam.reshape(1), outer_steps=1, hyper_lr=1e-12, inner=inner,
                    inner_tol=1e-9, max_inner_steps=20_000)
    torch.testing.assert_close(out.state["w"], w_star, rtol=1e-6, atol=1e-6)
