"""The four searchers through one interface (M7) on scikit-learn digits, the bilevel split,
DARTS' second-order hypergradient against finite differences, and the retraining step."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from bayesstruct import nas
from bayesstruct.data import Split
from bayesstruct.nas.networks import DerivedNet, SuperNet
from bayesstruct.nas.space import derive
from bayesstruct.pruning import count_parameters

SPACE = nas.SearchSpace(ops=("conv_3x3", "max_pool_3x3", "skip_connect", "none"), n_nodes=2,
                        channels=3, stem_stride=1)
FAST = {
    "darts": {"epochs": 2, "batch_size": 64},
    "darts2": {"epochs": 1, "batch_size": 64},
    "vardarts": {"epochs": 2, "batch_size": 64},
    "random": {"n_samples": 2, "epochs": 1, "batch_size": 64},
    "spos": {"epochs": 2, "batch_size": 64, "n_candidates": 4},
}


@pytest.fixture(scope="module")
def small(digits):
    return replace(digits, train=Split(digits.train.x[:256], digits.train.y[:256]),
                   val=Split(digits.val.x[:128], digits.val.y[:128]))


@pytest.mark.parametrize("name", list(FAST))
def test_every_searcher_returns_a_valid_architecture(name, small):
    result = nas.make_searcher(name, **FAST[name]).search(small, SPACE, seed=0)
    g = result.genotype
    assert len(g.nodes) == SPACE.n_nodes
    for i, node in enumerate(g.nodes):
        assert len({j for _, j in node}) == 2 and all(0 <= j < i + 2 for _, j in node)
        assert all(op in SPACE.ops and op != "none" for op, _ in node)
    assert result.seconds > 0
    assert all(math.isfinite(v) for rec in result.history for v in rec.values())
    if name in ("darts", "darts2", "vardarts"):
        assert result.logits.shape == (SPACE.n_edges, SPACE.n_ops)
        assert result.logits.abs().max() > 1e-2  # the structure moved from its 1e-3 start
        assert derive(result.weights, SPACE) == g
    else:
        assert len(result.candidates) == FAST[name].get("n_samples",
                                                          FAST[name].get("n_candidates"))
        assert max(acc for _, acc in result.candidates) == dict(
            (str(k), v) for k, v in result.candidates)[str(g)]


@pytest.mark.parametrize("name", ["darts", "vardarts"])
def test_bilevel_split_structure_on_val_weights_on_train(name, small):
    """A structure step changes alpha only, a weight step the weights only."""
    s = nas.make_searcher(name, epochs=1)
    net = SuperNet(SPACE, 1, 10)
    weights, alpha = s._setup(net, small.train, small.val, SPACE, torch.Generator())
    s.w_opt = torch.optim.Adam(weights, lr=1e-2)
    s.a_opt = torch.optim.Adam([alpha], lr=1e-2)
    if name == "vardarts":
        s._on_epoch(0)
    xt, yt, xv, yv = small.train.x[:32], small.train.y[:32], small.val.x[:32], small.val.y[:32]
    w0 = [w.detach().clone() for w in weights]
    a0 = alpha.detach().clone()
    s._arch_step(xt, yt, xv, yv)
    assert all(torch.equal(w, v) for w, v in zip(weights, w0, strict=True))
    assert not torch.equal(alpha, a0)
    a1 = alpha.detach().clone()
    s.w_opt.zero_grad()
    s._weight_step(xt, yt).backward()
    s.w_opt.step()
    assert torch.equal(alpha, a1)
    assert any(not torch.equal(w, v) for w, v in zip(weights, w0, strict=True))


@pytest.mark.parametrize("order", [1, 2])
def test_darts_structure_gradient_matches_finite_differences(order, small):
    """grad_alpha L_val(w', alpha), w' = w - xi grad_w L_train(w, alpha) (order 2) or w' = w
    (order 1), against central differences in float64 (eval-mode BatchNorm: a smooth loss)."""
    torch.set_default_dtype(torch.float64)
    try:
        s = nas.DARTS(order=order, xi=0.05, epochs=1)
        net = SuperNet(SPACE, 1, 10).double().eval()
        _, alpha = s._setup(net, small.train, small.val, SPACE, torch.Generator().manual_seed(0))
        with torch.no_grad():
            alpha.normal_(0.0, 0.5)
        xt, yt = small.train.x[:48].double(), small.train.y[:48]
        xv, yv = small.val.x[:48].double(), small.val.y[:48]
        grad = s.arch_gradient(xt, yt, xv, yv)
        params = dict(net.named_parameters())

        def objective(a: torch.Tensor) -> float:
            if order == 1:
                return float(s._loss(xv, yv, a).detach())
            with torch.enable_grad():
                g = torch.autograd.grad(s._loss(xt, yt, a.detach()), list(params.values()))
            moved = {k: p.detach() - 0.05 * gk for (k, p), gk in zip(params.items(), g,
                                                                     strict=True)}
            return float(s._loss(xv, yv, a, moved))

        rng = np.random.default_rng(0)
        h = 1e-5
        for flat in rng.choice(alpha.numel(), size=6, replace=False):
            e = torch.zeros_like(alpha).view(-1)
            e[flat] = h
            e = e.view_as(alpha)
            fd = (objective(alpha.detach() + e) - objective(alpha.detach() - e)) / (2 * h)
            assert float(grad.view(-1)[flat]) == pytest.approx(fd, rel=1e-5, abs=1e-8)
    finally:
        torch.set_default_dtype(torch.float32)


def test_spos_step_trains_only_the_sampled_path(small):
    net = SuperNet(SPACE, 1, 10)
    g = nas.Genotype(((("conv_3x3", 0), ("skip_connect", 1)), (("conv_3x3", 2),
                                                                ("max_pool_3x3", 0))))
    before = {k: v.detach().clone() for k, v in net.named_parameters()}
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    torch.nn.functional.cross_entropy(net(small.train.x[:32], g), small.train.y[:32]).backward()
    opt.step()
    on_path = {f"cells.0.edges.{SPACE.edge_index(i, j)}.ops.{SPACE.ops.index(op)}."
               for i, node in enumerate(g.nodes) for op, j in node}
    for k, v in net.named_parameters():
        edge_param = k.startswith("cells.0.edges.")
        used = any(k.startswith(p) for p in on_path)
        assert torch.equal(v, before[k]) == (edge_param and not used), k


def test_vardarts_uses_both_kl_terms(small):
    s = nas.VariationalDARTS(prior="dirichlet", concentration=0.5, epochs=1)
    net = SuperNet(SPACE, 1, 10)
    s._setup(net, small.train, small.val, SPACE, torch.Generator())
    assert s.guide.local  # the supernet runs under the local reparameterisation
    torch.manual_seed(3)
    gamma, kl_struct = s.choice.rsample()
    assert float(kl_struct.detach()) != 0.0
    with net.using(gamma):
        loss = s.guide.loss(small.train.x[:16], small.train.y[:16])
    kl_w = float(s.guide.kl().detach())
    assert kl_w > 0 and float(loss.detach()) > kl_w  # -ELBO = scaled nll + KL(q(w) || p(w))


def test_retrain_reports_accuracy_and_size(small):
    g = SPACE.random_genotype(np.random.default_rng(0))
    wide = replace(SPACE, channels=4)
    r = nas.retrain(g, wide, small, epochs=1, batch_size=64)
    assert 0.0 <= r.test_acc <= 1.0 and 0.0 <= r.val_acc <= 1.0
    assert r.n_params == count_parameters(DerivedNet(wide, g, 1, 10))
    assert r.n_params < count_parameters(SuperNet(wide, 1, 10))


@pytest.mark.parametrize(("kw", "match"), [
    ({"name": "nope"}, "allowed: darts, vardarts, random, spos, darts2"),
    ({"name": "darts", "order": 3}, "order must be 1 or 2"),
    ({"name": "vardarts", "prior": "beta"}, "allowed: uniform, dirichlet"),
    ({"name": "vardarts", "temperature": 0.0}, "temperature must be > 0"),
    ({"name": "spos", "epochs": 0}, "epochs must be > 0"),
    ({"name": "darts", "epochs": 2, "warmup_epochs": 2}, "warmup_epochs"),
])
def test_bad_settings_name_the_field(kw, match):
    kw = dict(kw)
    with pytest.raises(ValueError, match=match):
        nas.make_searcher(kw.pop("name"), **kw)


@pytest.mark.cuda
@pytest.mark.parametrize("name", ["darts", "vardarts", "spos"])
def test_searchers_run_on_cuda(name, small):
    r = nas.make_searcher(name, **FAST[name]).search(small, SPACE, seed=0, device="cuda")
    assert len(r.genotype.nodes) == SPACE.n_nodes
