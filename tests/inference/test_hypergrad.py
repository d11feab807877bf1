"""Hypergradients (M6) against central finite differences and the closed form of ridge."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bayesstruct.inference import hypergrad as hg
from bayesstruct.inference.hypergrad import HyperProblem, InnerOptimizer

DT = torch.float64
OPTS = {"sgd": InnerOptimizer("sgd", lr=0.3),
        "momentum": InnerOptimizer("momentum", lr=0.1, momentum=0.9),
        "adam": InnerOptimizer("adam", lr=0.05, betas=(0.9, 0.999))}


def _logreg_problem(opt: InnerOptimizer, seed: int = 0) -> tuple[HyperProblem, torch.Tensor]:
    """Logistic regression with one L2 coefficient per parameter (log scale): the seed's
    "individual regularisation" on a small convex problem."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(60, 4, generator=g, dtype=DT)
    w_true = torch.tensor([1.5, -2.0, 0.0, 0.5], dtype=DT)
    y = (torch.rand(60, generator=g, dtype=DT) < torch.sigmoid(x @ w_true)).to(DT)
    xt, yt, xv, yv = x[:40], y[:40], x[40:], y[40:]

    def train(w, lam):
        return (F.binary_cross_entropy_with_logits(xt @ w[:4] + w[4], yt)
                + 0.5 * (torch.exp(lam) * w * w).sum())

    def val(w, lam):
        return F.binary_cross_entropy_with_logits(xv @ w[:4] + w[4], yv)

    w0 = 0.1 * torch.randn(5, generator=g, dtype=DT)
    return HyperProblem(train, val, w0, opt), torch.full((5,), -3.0, dtype=DT) + 0.3 * torch.randn(
        5, generator=g, dtype=DT)


def _mlp_problem(opt: InnerOptimizer) -> tuple[HyperProblem, torch.Tensor]:
    """A tanh MLP 3-4-2 (non-convex) with minibatches (the step index picks the batch) and
    one L2 coefficient per layer."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(48, 3, generator=g, dtype=DT)
    y = (x[:, 0] * x[:, 1] > 0).long()
    sizes = [(4, 3), (4,), (2, 4), (2,)]
    n = sum(torch.Size(s).numel() for s in sizes)

    def forward(w, xb):
        i, parts = 0, []
        for s in sizes:
            k = torch.Size(s).numel()
            parts.append(w[i: i + k].view(s))
            i += k
        return torch.tanh(xb @ parts[0].T + parts[1]) @ parts[2].T + parts[3]

    def l2(w, lam):
        return 0.5 * torch.exp(lam[0]) * (w[:12] ** 2).sum() + 0.5 * torch.exp(lam[1]) * (
            w[16:24] ** 2).sum()

    def batch(w, lam, t):
        idx = slice(8 * (t % 4), 8 * (t % 4) + 8)
        return F.cross_entropy(forward(w, x[idx]), y[idx]) + l2(w, lam)

    def train(w, lam):
        return F.cross_entropy(forward(w, x[:32]), y[:32]) + l2(w, lam)

    def val(w, lam):
        return F.cross_entropy(forward(w, x[32:]), y[32:])

    w0 = 0.5 * torch.randn(n, generator=g, dtype=DT)
    return HyperProblem(train, val, w0, opt, batch_loss=batch), torch.tensor([-2.0, -1.0],
                                                                             dtype=DT)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


METHOD_GRID = [(m, o) for m in ("unrolled", "checkpointed", "reversible") for o in OPTS
               if not (m == "reversible" and o == "sgd")]


@pytest.mark.parametrize("problem_fn", [_logreg_problem, _mlp_problem], ids=["logreg", "mlp"])
@pytest.mark.parametrize("method,opt", METHOD_GRID, ids=[f"{m}-{o}" for m, o in METHOD_GRID])
def test_hypergradient_agrees_with_central_finite_differences(problem_fn, method, opt):
    problem, lam = problem_fn(OPTS[opt])
    steps = 40
    fd = hg.hypergradient(problem, lam, method="finite_diff", steps=steps, h=1e-5)
    got = hg.hypergradient(problem, lam, method=method, steps=steps)
    err = _rel(got, fd)
    print(f"{method}/{opt}: relative error {err:.2e}")
    assert err < 1e-4, (got, fd)


def test_implicit_agrees_with_finite_differences_at_a_converged_inner_problem():
    problem, lam = _logreg_problem(InnerOptimizer("momentum", lr=0.5, momentum=0.8))
    lam = lam + 2.0  # a well-conditioned inner problem converges in a few hundred steps
    steps = 300
    w_star = hg.run_inner(problem, lam, steps)["w"]
    assert float(problem.grad(w_star, lam, 0).norm()) < 1e-10
    fd = hg.hypergradient(problem, lam, method="finite_diff", steps=steps, h=1e-5)
    for solver, kw in (("cg", {}), ("neumann", {"neumann_lr": 1.0, "max_iter": 5000})):
        info = hg.SolveInfo()
        got = hg.hypergradient(problem, lam, method="implicit", w_star=w_star, solver=solver,
                               info=info, **kw)
        assert info.converged, (solver, info)
        assert _rel(got, fd) < 1e-4, (solver, got, fd)


def _ridge():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(50, 6, generator=g, dtype=DT)
    y = x @ torch.randn(6, generator=g, dtype=DT) + 0.5 * torch.randn(50, generator=g, dtype=DT)
    xt, yt, xv, yv = x[:30], y[:30], x[30:], y[30:]

    def train(w, lam):
        return 0.5 * ((xt @ w - yt) ** 2).sum() + 0.5 * torch.exp(lam).sum() * (w * w).sum()

    def val(w, lam):
        return 0.5 * ((xv @ w - yv) ** 2).sum()

    def closed_form(lam):
        a = xt.T @ xt + torch.exp(lam) * torch.eye(6, dtype=DT)
        w = torch.linalg.solve(a, xt.T @ yt)
        dw = -torch.linalg.solve(a, torch.exp(lam) * w)  # d w* / d lambda
        return w, (xv.T @ (xv @ w - yv)) @ dw

    lmax = float(torch.linalg.eigvalsh(xt.T @ xt).max())
    problem = HyperProblem(train, val, torch.zeros(6, dtype=DT),
                           InnerOptimizer("sgd", lr=1.0 / (lmax + 2.0)))
    return problem, closed_form


@pytest.mark.parametrize("log_lam", [-1.0, 0.5, 2.0])
def test_implicit_equals_unrolled_and_the_ridge_closed_form(log_lam):
    problem, closed_form = _ridge()
    lam = torch.tensor([log_lam], dtype=DT)
    w_cf, grad_cf = closed_form(lam)
    steps = 3000
    w_t = hg.run_inner(problem, lam, steps)["w"]
    torch.testing.assert_close(w_t, w_cf, rtol=1e-9, atol=1e-9)  # converged
    got_implicit = hg.hypergradient(problem, lam, method="implicit", w_star=w_cf)
    got_unrolled = hg.hypergradient(problem, lam, method="unrolled", steps=steps)
    torch.testing.assert_close(got_implicit.reshape(()), grad_cf, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(got_unrolled, got_implicit, rtol=1e-6, atol=1e-9)


def test_checkpointing_holds_log_t_states_and_recomputes_t_log_t_steps():
    problem, lam = _logreg_problem(OPTS["momentum"])
    for steps in (1, 7, 64, 100):
        stats = hg.ReverseStats()
        got = hg.checkpointed(problem, lam, steps, stats=stats)
        ref = hg.unrolled(problem, lam, steps)
        torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)
        assert stats.max_states <= hg.checkpoint_bound(steps), (steps, stats)
        assert stats.forward_steps <= steps * (hg.checkpoint_bound(steps) + 1)


@pytest.mark.parametrize("kind", list(OPTS))
def test_inner_steps_follow_torch_optim(kind):
    """The differentiable steps take PyTorch's trajectory (SGD, SGD+momentum, Adam)."""
    problem, lam = _mlp_problem(OPTS[kind])
    ours = hg.run_inner(problem, lam, 25)["w"]
    w = problem.w0.clone().requires_grad_(True)
    opt = OPTS[kind]
    torch_opt = {"sgd": lambda: torch.optim.SGD([w], lr=opt.lr),
                 "momentum": lambda: torch.optim.SGD([w], lr=opt.lr, momentum=opt.momentum),
                 "adam": lambda: torch.optim.Adam([w], lr=opt.lr, betas=opt.betas,
                                                  eps=opt.eps)}[kind]()
    for t in range(25):
        torch_opt.zero_grad()
        problem.step_loss(w, lam, t).backward()
        torch_opt.step()
    torch.testing.assert_close(ours, w.detach(), rtol=1e-12, atol=1e-12)


def test_honest_loop_finds_the_validation_optimal_ridge_penalty():
    problem, closed_form = _ridge()
    grid = torch.linspace(-4, 6, 2001, dtype=DT)
    vals = torch.stack([problem.val_loss(closed_form(lam.view(1))[0], lam) for lam in grid])
    best = float(grid[vals.argmin()])
    res = hg.honest(problem, torch.tensor([best + 2.0], dtype=DT), outer_steps=150,
                    hyper_lr=0.1, inner_tol=1e-9, max_inner_steps=5000)
    assert abs(float(res.lam) - best) < 0.05, (float(res.lam), best)
    assert all(r["cg_converged"] for r in res.history)


def test_greedy_loop_lowers_the_validation_loss():
    problem, lam = _logreg_problem(OPTS["momentum"])
    lam = torch.full((5,), 1.0, dtype=DT)  # too much regularisation to start with
    res = hg.greedy(problem, lam, total_steps=300, k=10, hyper_lr=0.1)
    fixed = hg.run_inner(problem, lam, 300)["w"]
    assert float(problem.val_loss(res.state["w"], res.lam)) < float(problem.val_loss(fixed, lam))
    assert float(res.lam.mean()) < 1.0 and len(res.history) == 30


def test_errors_name_the_allowed_values():
    problem, lam = _logreg_problem(OPTS["momentum"])
    with pytest.raises(ValueError, match="allowed: finite_diff"):
        hg.hypergradient(problem, lam, method="forward")
    with pytest.raises(ValueError, match="allowed: sgd, momentum, adam"):
        InnerOptimizer("rmsprop")
    with pytest.raises(ValueError, match="neumann_lr"):
        hg.hypergradient(problem, lam, method="implicit", solver="neumann", steps=5)
    sgd_problem, lam = _logreg_problem(OPTS["sgd"])
    with pytest.raises(ValueError, match="momentum"):
        hg.hypergradient(sgd_problem, lam, method="reversible", steps=5)
