"""One autograd node per Linear layer: the local reparameterisation with the layer's KL folded in.

For a Linear layer with a mean-field Normal posterior ``w_ij ~ N(m_ij, s_ij^2)``
(``s^2 = exp(l)``, ``l`` the parameter) and a Gaussian prior of constant precision
``p_ij`` (zero mean), the guide's loss takes from the layer

    a = x m^T + m_b + sqrt(x^2 (s^2)^T + s_b^2 + 1e-16) * eps,       eps ~ N(0, I)
    KL = 1/2 sum_ij [ p_ij (s_ij^2 + m_ij^2) - log p_ij - l_ij - 1 ]   (+ the bias's)

(Kingma, Salimans & Welling 2015, the local reparameterisation; the KL in the precision form
of ``bayesstruct.priors.base.kl_normal_sum``). Autograd builds this from about a dozen nodes:
``exp``, two matrix products, the square root, the KL's own node, and two gradient
accumulations per parameter. Here the backward writes each parameter's gradient once,

    dL/dm = g^T x + g_KL p m
    dL/dl = s^2 * (h^T x^2 + g_KL p / 2) - g_KL / 2,      h = g * eps / (2 sd)
    dL/dx = g m + 2 x (h s^2)

(``g = dL/da``, ``g_KL = dL/dKL``, ``sd`` the square root above), with no weight-sized
temporaries beyond ``s^2``: the KL's gradient is added in place to the matrix product's
result. The values are those of the unfused graph up to float rounding
(``tests/guides/test_fused.py``: the ELBO trajectory of a run both ways). The node is
differentiable once: a second derivative (a Hessian-vector product through the guide's loss)
raises instead of silently missing the terms through ``s^2``; use ``MeanField(fuse=False)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from ..priors.base import kl_normal_sum

__all__ = ["LayerKL", "lrt_linear_kl"]


class LayerKL:
    """The constants of one layer's KL, computed once per value of the prior's precisions
    (they change only when empirical Bayes updates them): ``(p, log p)`` of the weight and
    of a Bayesian bias, and, when all of them are scalars, the KL as ``coef . r + const``
    with ``r = (sum s^2, m.m, sum l)`` of the weight (and of the bias), so the value costs a
    few reductions and one dot product."""

    def __init__(self, weight: tuple[Tensor, Tensor], bias: tuple[Tensor, Tensor] | None,
                 n_weight: int, n_bias: int) -> None:
        self.prec, log_prec = weight
        self.prec_b, log_prec_b = bias if bias is not None else (None, None)
        self.kl_args = (self.prec, log_prec, self.prec_b, log_prec_b)
        parts = [weight] + ([bias] if bias is not None else [])
        self.coef = self.const = None
        if all(p.numel() == 1 and lp.numel() == 1 for p, lp in parts):
            with torch.no_grad():
                self.coef = 0.5 * torch.stack([v for p, _ in parts
                                               for v in (p.reshape(()), p.reshape(()),
                                                         -torch.ones_like(p.reshape(())))])
                self.const = -0.5 * sum(n * (lp.reshape(()) + 1.0) for (_, lp), n
                                        in zip(parts, (n_weight, n_bias), strict=False))


def _kl_value(m, var, lv, mb, var_b, lvb, layer: LayerKL) -> Tensor:
    if layer.coef is not None:
        r = [var.sum(), torch.dot(m.reshape(-1), m.reshape(-1)), lv.sum()]
        if var_b is not None:
            r += [var_b.sum(), torch.dot(mb, mb), lvb.sum()]
        return torch.dot(layer.coef, torch.stack(r)) + layer.const
    prec, log_prec, prec_b, log_prec_b = layer.kl_args
    kl = kl_normal_sum(m, var, lv, prec, log_prec)
    if var_b is not None:
        kl = kl + kl_normal_sum(mb, var_b, lvb, prec_b, log_prec_b)
    return kl


class _LRTLinearKL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, m, lv, mb, lvb, eps, layer):
        var = torch.exp(lv)
        x2 = x * x
        var_b = torch.exp(lvb) if lvb is not None else None
        sd = F.linear(x2, var, var_b).add_(1e-16).sqrt_()
        out = torch.addcmul(F.linear(x, m, mb), sd, eps)
        kl = _kl_value(m, var, lv, mb, var_b, lvb, layer)
        ctx.layer = layer
        ctx.save_for_backward(x, x2, m, var, mb, var_b, sd, eps)
        return out, kl

    @staticmethod
    @once_differentiable  # s^2 is made inside: a second derivative would miss its graph
    def backward(ctx, g, g_kl):
        x, x2, m, var, mb, var_b, sd, eps = ctx.saved_tensors
        layer = ctx.layer
        need = ctx.needs_input_grad
        h = torch.mul(g, eps).div_(sd).mul_(0.5)  # dL/d(sd^2)
        dx = dm = dlv = dmb = dlvb = None
        if need[0]:
            dx = torch.addcmul(g @ m, x, h @ var, value=2.0)
        c = g_kl * layer.prec
        if need[1]:
            dm = (g.t() @ x).addcmul_(m, c)
        if need[2]:
            dlv = (h.t() @ x2).add_(c, alpha=0.5)
            dlv = torch.addcmul(g_kl * -0.5, dlv, var, out=dlv)  # in place, one pass
        cb = g_kl * layer.prec_b if var_b is not None else None
        if mb is not None and need[3]:
            dmb = g.sum(0)
            if cb is not None:
                dmb.addcmul_(mb, cb)
        if cb is not None and need[4]:
            dlvb = h.sum(0).add_(cb, alpha=0.5).mul_(var_b).sub_(g_kl, alpha=0.5)
        return dx, dm, dlv, dmb, dlvb, None, None


def lrt_linear_kl(x: Tensor, m: Tensor, log_var: Tensor, bias_loc: Tensor | None,
                  bias_log_var: Tensor | None, eps: Tensor, layer: LayerKL
                  ) -> tuple[Tensor, Tensor]:
    """``(a, KL)`` of a Linear layer (module docstring): pre-activations drawn by the local
    reparameterisation with noise ``eps`` (``(batch, out)``) and the KL of its weight (and
    bias, when ``bias_log_var`` is given; a bias without it is a point estimate, no KL), with
    the precisions of ``layer`` (constant: no gradient)."""
    return _LRTLinearKL.apply(x, m, log_var, bias_loc, bias_log_var, eps, layer)
