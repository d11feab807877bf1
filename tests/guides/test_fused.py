"""The fused Linear node (bayesstruct.guides.fused) against the generic autograd graph."""

from __future__ import annotations

import pytest
import torch

from bayesstruct import guides, nets, priors
from bayesstruct.guides.fused import LayerKL, lrt_linear_kl
from bayesstruct.models import BayesianNet
from bayesstruct.priors.base import kl_normal_sum
from bayesstruct.training import make_adam

PRIORS = {
    "gaussian": lambda: priors.Gaussian(0.7),
    "gaussian-unit": lambda: priors.Gaussian(0.7, per="unit"),
    "ard": lambda: priors.ARD(),
    "ard-unit": lambda: priors.ARD(per="unit"),
}


def _reference(x, m, lv, mb, lvb, eps, prec, log_prec, prec_b, log_prec_b):
    """The same quantities by the plain graph autograd differentiates."""
    var = lv.exp()
    mean = torch.nn.functional.linear(x, m, mb)
    var_b = lvb.exp() if lvb is not None else None
    sd = (torch.nn.functional.linear(x * x, var, var_b) + 1e-16).sqrt()
    kl = kl_normal_sum(m, var, lv, prec, log_prec)
    if lvb is not None:
        kl = kl + kl_normal_sum(mb, var_b, lvb, prec_b, log_prec_b)
    return mean + sd * eps, kl


@pytest.mark.parametrize("bias", ["bayesian", "point", "none"])
@pytest.mark.parametrize("precision", ["scalar", "per-weight"])
def test_node_matches_autograd(bias, precision):
    """Values and every gradient (input included) equal autograd's on the plain graph, for
    a random upstream gradient of both outputs."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 5, generator=g, dtype=torch.float64, requires_grad=True)
    m = torch.randn(4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    lv = (torch.randn(4, 5, generator=g, dtype=torch.float64) - 2).requires_grad_()
    mb = None if bias == "none" else torch.randn(4, generator=g, dtype=torch.float64,
                                                  requires_grad=True)
    lvb = (torch.randn(4, generator=g, dtype=torch.float64) - 2).requires_grad_() \
        if bias == "bayesian" else None
    eps = torch.randn(7, 4, generator=g, dtype=torch.float64)
    prec = (torch.rand(4, 5, generator=g, dtype=torch.float64) + 0.5 if precision == "per-weight"
            else torch.tensor(2.5, dtype=torch.float64))
    prec_b = torch.tensor(0.3, dtype=torch.float64)
    args = (x, m, lv, mb, lvb, eps)
    layer = LayerKL((prec, prec.log()), (prec_b, prec_b.log()) if lvb is not None else None,
                    m.numel(), mb.numel() if lvb is not None else 0)
    out, kl = lrt_linear_kl(*args, layer)
    ref_out, ref_kl = _reference(*args, prec, prec.log(), prec_b, prec_b.log())
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(kl, ref_kl)
    g_out = torch.randn(7, 4, generator=g, dtype=torch.float64)
    g_kl = torch.tensor(0.37, dtype=torch.float64)
    inputs = [t for t in (x, m, lv, mb, lvb) if t is not None]
    ours = torch.autograd.grad((out, kl), inputs, (g_out, g_kl))
    ref = torch.autograd.grad((ref_out, ref_kl), inputs, (g_out, g_kl))
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b)


def _trajectory(prior, fuse: bool, x, y, steps: int = 40):
    torch.manual_seed(3)
    model = BayesianNet(nets.mlp([x.shape[1], 24, 12, 10]), prior, num_data=1000)
    guide = guides.MeanField(model, init_scale=0.05, fuse=fuse)
    opt = make_adam(guide.parameters(), 1e-2)
    losses = []
    for i in range(steps):
        rows = slice((i * 64) % (x.shape[0] - 64), (i * 64) % (x.shape[0] - 64) + 64)
        loss = guide.loss(x[rows], y[rows])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.detach())
    return torch.stack(losses), guide


@pytest.mark.parametrize("prior", sorted(PRIORS))
def test_elbo_trajectory_equal(prior, digits):
    """Training with the fused node gives the generic graph's -ELBO at every step (same
    seed, same noise) to float rounding, and the fused layers did run."""
    x, y = digits.train.x.flatten(1), digits.train.y
    slow, g_slow = _trajectory(PRIORS[prior](), False, x, y)
    fast, g_fast = _trajectory(PRIORS[prior](), True, x, y)
    assert g_slow._fusable == []
    assert g_fast._fusable == ["fc1.weight", "fc2.weight", "fc3.weight"]
    lat = g_fast.latent_params()
    assert set(g_fast._fused_sites(*lat, {})) == {f"fc{i}.{p}" for i in (1, 2, 3)
                                                  for p in ("weight", "bias")}
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=0)
    for k, v in g_slow.state_dict().items():
        torch.testing.assert_close(g_fast.state_dict()[k], v, rtol=1e-4, atol=1e-5)


def test_empirical_bayes_updates_reach_the_fused_kl(digits):
    """The precisions cached by the fused layers follow the prior's closed-form updates (and
    a switch to empirical Bayes, which gives the Gaussian a free mean: no longer fused)."""
    x, y = digits.train.x.flatten(1)[:64], digits.train.y[:64]
    for prior in (priors.ARD(), priors.Gaussian(1.0)):
        model = BayesianNet(nets.mlp([64, 16, 10]), prior, num_data=1000)
        fast = guides.MeanField(model, init_scale=0.05)
        slow = guides.MeanField(model, init_scale=0.05, fuse=False)
        slow.load_state_dict(fast.state_dict())
        torch.manual_seed(0)
        fast.loss(x, y)  # fills the cache
        if isinstance(prior, priors.Gaussian):
            prior.enable_empirical_bayes()
        prior.empirical_bayes_(*fast.moments())
        torch.manual_seed(1)
        a = fast.loss(x, y)
        torch.manual_seed(1)
        b = slow.loss(x, y)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=0)
        lat = fast.latent_params()
        assert bool(fast._fused_sites(*lat, {})) == isinstance(prior, priors.ARD)


def test_not_fused_where_not_exact(digits):
    """Group-scale priors (input scales) and log-uniform (its own KL) stay on the generic
    graph; a layer called twice per forward is fused on its first call only."""
    x, y = digits.train.x.flatten(1)[:64], digits.train.y[:64]
    for prior in (priors.LogUniform(level="unit"), priors.LogUniform()):
        model = BayesianNet(nets.mlp([64, 16, 10]), prior, num_data=1000)
        guide = guides.MeanField(model)
        guide.loss(x, y)
        lat_loc, lat_scale = guide.latent_params()
        scales = model.prior.input_scales(lat_loc, lat_scale, 64)
        assert guide._fused_sites(lat_loc, lat_scale, scales) == {}

    class Twice(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(10, 10)
            self.inp = torch.nn.Linear(64, 10)

        def forward(self, x):
            return self.fc(torch.relu(self.fc(self.inp(x))))

    for fuse in (False, True):
        torch.manual_seed(0)
        model = BayesianNet(Twice(), priors.Gaussian(1.0), num_data=1000)
        guide = guides.MeanField(model, init_scale=0.05, fuse=fuse)
        loss = guide.loss(x, y)
        loss.backward()
        grads = [p.grad.clone() for p in guide.parameters()]
        if not fuse:
            ref_loss, ref_grads = loss.detach(), grads
    # the twice-called layer's KL is counted once, its gradient through both calls
    torch.testing.assert_close(loss.detach(), ref_loss)
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b)


def test_second_derivative_refused(digits):
    """A Hessian-vector product through the fused node raises (it would miss terms)."""
    x, y = digits.train.x.flatten(1)[:32], digits.train.y[:32]
    model = BayesianNet(nets.mlp([64, 8, 10]), priors.Gaussian(1.0), num_data=1000)
    guide = guides.MeanField(model)
    params = list(guide.parameters())
    grads = torch.autograd.grad(guide.loss(x, y), params, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|not have been used"):
        torch.autograd.grad(sum(g.sum() for g in grads), params)
