"""Mean-field Normal guide with the local reparameterisation trick.

``q(w) = prod_i N(w_i | m_i, s_i^2)`` parameterised by ``log s_i^2`` (as in Molchanov et al.
2017): the variance the LRT layers need and the ``log s^2`` the KL needs are one ``exp`` apart,
which keeps the per-step cost low (see ``benchmarks/RESULTS.md``). Hyper-latents get
``LogNormal`` factors when positive (precisions, scales) and ``Normal`` ones when real (the
normal-Jeffreys group scale), each with a softplus-parameterised scale.

Local reparameterisation (Kingma, Salimans & Welling 2015): for a Linear layer ``a = x W^T + b``
with independent Gaussian weights, each pre-activation is Gaussian,

    a_j ~ N( x m_j + m_b,  x^2 s_j^2 + s_b^2 ),

so the fast path samples pre-activations (one noise draw per example and unit) instead of a
weight matrix per minibatch: lower-variance gradients, and no ``B x out x in`` tensors. The
same holds for ``Conv2d`` with the convolution in place of the product.

Recurrent nets reuse each weight matrix at every time step, so a pre-activation's noise is not
independent across steps and the local trick does not apply. For them (``reparam="weights"``,
chosen automatically) the guide draws one weight tensor per site per minibatch,
``w = m + s * eps``, shared by every step and example (Fortunato, Blundell & Vinyals 2017), and
runs the network through :meth:`BayesianNet.predict`.

``covariance="scalar"`` ties the variance within each site, ``q(w_l) = N(m_l, beta_l^2 I)``
(one sigma per layer: the "I" posterior of the recurrent-network experiment); ``"diagonal"``
(default) has one per weight ("D").

``max_scale`` bounds the standard deviations of the sites matched by ``max_scale_sites``
(shell patterns on site names): after every optimiser step ``log s^2`` is projected onto
``log s^2 <= 2 log max_scale`` (:meth:`MeanField.constrain_`). Louizos, Ullrich & Welling
(2017)'s reference code bounds the first layer's ``q(w~)`` this way (``s <= 0.2``): with the
``N(0, 1)`` prior on ``w~`` of Bayesian Compression the KL pulls every ``s`` towards 1, and the
first layer's hundreds of inputs per unit sum that noise into its pre-activations. The bound
restricts the variational family, so the ELBO is that of the restricted family.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Collection, Sequence

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro import poutine
from torch import Tensor, nn

from ..layers import family_of
from ..models.bayesnet import BayesianNet
from ..parallel import per_example
from ..priors.base import LatentSite
from ..priors.truncated import TruncatedLogNormal
from .base import Guide, site_key
from .fused import LayerKL, lrt_linear_kl

__all__ = ["LRTLayer", "MeanField", "latent_factor", "local_reparam_obstacle", "lrt_twin"]


def _inv_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))


def _kumaraswamy(loc: Tensor, scale: Tensor) -> dist.Distribution:
    """``Kumaraswamy(a, b)`` with ``a = exp(loc)``, ``b = scale`` (IBP sticks)."""
    return dist.Kumaraswamy(torch.exp(loc), scale)


def _bernoulli(loc: Tensor, scale: Tensor | None) -> dist.Distribution:
    """``Bernoulli(sigmoid(loc))`` (IBP unit masks); it has no scale parameter."""
    return dist.Bernoulli(logits=loc)


#: family -> q's distribution from (loc, scale): log-normal / normal scales, the IBP's
#: Kumaraswamy sticks (loc = log a, scale = b) and Bernoulli masks (loc = logit); the
#: truncated log-normal of Structured Bayesian Pruning takes its bounds from the latent
_LATENT_FAMILIES = {"lognormal": dist.LogNormal, "normal": dist.Normal,
                    "kumaraswamy": _kumaraswamy, "bernoulli": _bernoulli,
                    "truncated_lognormal": TruncatedLogNormal}
_FAMILY_NAMES = {"lognormal": "LogNormal", "normal": "Normal", "kumaraswamy": "Kumaraswamy",
                 "bernoulli": "Bernoulli", "truncated_lognormal": "TruncatedLogNormal"}
_NO_SCALE = ("bernoulli",)


def latent_factor(latent: LatentSite, loc: Tensor, scale: Tensor | None) -> dist.Distribution:
    """``q`` of one hyper-latent from its variational ``(loc, scale)`` (batch-shaped like the
    latent), in the latent's family."""
    family = _LATENT_FAMILIES[latent.family]
    if latent.family == "truncated_lognormal":
        return family(loc, scale, *latent.bounds)
    return family(loc, scale)


class LRTLayer(nn.Module):
    """A layer that reads ``(loc, var)`` of its weight and bias from a shared state dict and
    samples its pre-activations, ``a ~ N(f(x; m, m_b), v(x; s^2, s_b^2))``, where ``f`` is the
    layer family's functional forward and ``v`` its variance (:mod:`bayesstruct.layers`): a
    product and the product of squares for Linear, the same convolution twice for ConvNd, a
    lookup for Embedding. A point-estimated bias has no variance."""

    def __init__(self, state: dict, weight: str, bias: str | None, layer: nn.Module) -> None:
        super().__init__()
        self.__dict__["state"] = state  # not a submodule, not a parameter
        self.__dict__["layer"] = layer  # its settings (stride, ...), not its parameters
        self.__dict__["family"] = family_of(layer)
        self.weight_name, self.bias_name = weight, bias

    def _params(self) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        loc, var = self.state["loc"], self.state["var"]
        w, vw = loc[self.weight_name], var.get(self.weight_name)
        if self.bias_name is None:
            return w, vw, None, None
        return w, vw, loc[self.bias_name], var.get(self.bias_name)

    def forward(self, x: Tensor) -> Tensor:
        fused = self.state.get("fused")
        if (fused is not None and self.weight_name in fused and x.dim() == 2
                and self.weight_name not in self.state["kl_done"]):  # a 2nd call: generic
            return self._fused(x, fused)
        w, vw, b, vb = self._params()
        family = self.family
        zeta = self.state.get("input_scale", {}).get(self.weight_name)
        if zeta is not None and not family.scales_output:  # per-example group scales
            x = x * zeta.view(*zeta.shape, *([1] * (x.dim() - 2)))  # (w = z * w~, non-centred)
        out = family.forward(self.layer, w, b, x)
        if not self.state.get("mean_only") and vw is not None:  # else a point-estimated weight
            sd = family.variance(self.layer, vw, vb, x).add_(1e-16).sqrt_()  # in place
            eps = per_example(lambda n: torch.randn((n, *out.shape[1:]), dtype=out.dtype,
                                                    device=out.device), out.shape[0])
            out = torch.addcmul(out, sd, eps)
        if zeta is not None and family.scales_output:  # a table's unit scales its output
            out = out * zeta.view(zeta.shape[0], *([1] * (out.dim() - 2)), zeta.shape[-1])
        return out

    def _fused(self, x: Tensor, fused: dict[str, tuple[Tensor, Tensor]]) -> Tensor:
        """The Linear layer's draw and KL in one node (:mod:`bayesstruct.guides.fused`); the KL
        goes to ``state["kl_parts"]`` and the sites to ``state["kl_done"]``."""
        state = self.state
        loc, log_var = state["loc"], state["log_var"]
        w, b = self.weight_name, self.bias_name
        m = loc[w]
        eps = per_example(lambda n: torch.randn((n, m.shape[0]), dtype=x.dtype,
                                                device=x.device), x.shape[0])
        bias_var = log_var.get(b) if b is not None else None
        out, kl = lrt_linear_kl(x, m, log_var[w], loc[b] if b is not None else None, bias_var,
                                eps, fused[w])
        state["kl_parts"].append(kl)
        state["kl_done"].update(n for n in (w, b) if n is not None)
        return out


def lrt_twin(net: nn.Module, state: dict, points: dict[str, Tensor] | None = None,
             prefix: str = "") -> nn.Module:
    """A copy of ``net``'s structure whose layers of a registered family are
    :class:`LRTLayer` on ``state``.

    ``points`` maps point-estimated parameters (``"bn1.weight"``) to the guide's tensors: a
    module whose own parameters are all point estimates (a normalisation layer, an excluded
    layer, a module with a scalar temperature) is copied with those tensors in place of its
    parameters and keeps sharing its buffers (running statistics) with ``net``.
    Parameter-free modules (activations, pooling, flatten) are shared, not copied.

    Raises:
        NotImplementedError: a layer whose family has no exact local reparameterisation (its
            reason), or a module with Bayesian parameters of its own and no family.
    """
    points = points if points is not None else {}
    own = [k for k, p in net._parameters.items() if p is not None]
    if own and all(f"{prefix}{k}" in points for k in own):
        twin = _twin_of(net, state, points, prefix)
        twin._parameters = {k: None if p is None else points[f"{prefix}{k}"]
                            for k, p in net._parameters.items()}
        return twin
    family = family_of(net)
    if family is not None and own:
        obstacle = family.local_reparam_obstacle(net)
        if obstacle is not None:
            raise NotImplementedError(f"the layer {prefix[:-1] or 'top'} "
                                      f"({type(net).__name__}) {obstacle}")
        if set(own) - {"weight", "bias"} or net._modules:
            raise NotImplementedError(f"the layer {prefix[:-1] or 'top'} "
                                      f"({type(net).__name__}) has parameters besides one "
                                      "weight and bias")
        w = f"{prefix}weight"
        b = f"{prefix}bias" if getattr(net, "bias", None) is not None else None
        return LRTLayer(state, w, b, net)
    if own:
        raise NotImplementedError(
            f"{type(net).__name__} at {prefix[:-1] or 'top'} has parameters of its own and "
            "no layer family (bayesstruct.layers) to run it by the local reparameterisation")
    if family is not None and family.local_reparam_obstacle(net) is not None:
        raise NotImplementedError(f"the layer {prefix[:-1] or 'top'} ({type(net).__name__}) "
                                  f"{family.local_reparam_obstacle(net)}")
    if not net._modules:
        return net
    return _twin_of(net, state, points, prefix)


def _twin_of(net: nn.Module, state: dict, points: dict[str, Tensor], prefix: str) -> nn.Module:
    """A shallow copy of ``net`` (its settings and buffers shared) whose children are twins."""
    twin = nn.Module.__new__(type(net))
    twin.__dict__ = dict(net.__dict__)
    twin._modules = {k: lrt_twin(m, state, points, f"{prefix}{k}.")
                     for k, m in net._modules.items()}
    return twin


class _Variances(dict):
    """``site -> exp(log s^2)``, computed up front except for ``exclude`` (the fused layers
    compute theirs), which are computed on first use if another path asks."""

    def __init__(self, log_var: dict[str, Tensor], exclude: Collection[str]) -> None:
        super().__init__({k: torch.exp(v) for k, v in log_var.items() if k not in exclude})
        self.log_var = log_var

    def __missing__(self, key: str) -> Tensor:
        value = self[key] = torch.exp(self.log_var[key])
        return value

    def get(self, key, default=None):
        return self[key] if key in self or key in self.log_var else default


COVARIANCES = ("diagonal", "scalar")
REPARAMS = ("auto", "local", "weights")


def local_reparam_obstacle(net: nn.Module, points: Collection[str] = ()) -> str | None:
    """Why the local reparameterisation cannot run ``net`` (``None`` if it can): every
    parameter not in ``points`` (point estimates) must sit in a layer whose family has an
    exact one (:mod:`bayesstruct.layers`: Linear, ConvNd and ConvTranspose with zero padding,
    Embedding), applied once per example; recurrent layers reuse theirs at every time step."""
    try:
        lrt_twin(net, {}, dict.fromkeys(points))
    except NotImplementedError as e:
        return str(e)
    return None


class MeanField(Guide):
    """Mean-field Normal on weights, LogNormal (or Normal) on hyper-latents.

    Args:
        model: the :class:`~bayesstruct.models.BayesianNet` (or ``None``; the engine binds it).
        init_scale: initial posterior standard deviation of every weight (where the prior does
            not fix it: the per-weight log-uniform prior starts each layer relative to its
            weights).
        init_latent_scale: initial log-space standard deviation of positive latents.
        covariance: ``"diagonal"`` (one variance per weight) or ``"scalar"`` (one per site).
        reparam: ``"local"`` (local reparameterisation; Linear/Conv2d nets), ``"weights"``
            (one weight draw per minibatch; any net, recurrent ones included) or ``"auto"``
            (local where it applies).
        max_scale: an upper bound on the posterior standard deviation of the sites matched
            by ``max_scale_sites`` (in the site's own units: ``w~`` for the group-scale
            priors), held by projection after every step; ``None``: unbounded.
        max_scale_sites: shell patterns on site names (``["fc1.*"]``: the first Linear's
            weight and bias); default every site.
        fuse: run each Linear layer's local reparameterisation and KL as one autograd node
            where that is exact (:mod:`bayesstruct.guides.fused`; faster, less memory, the
            same values); ``False``: the generic graph.
    """

    name = "meanfield"

    def __init__(self, model: BayesianNet | None = None, init_scale: float = 1e-3,
                 init_latent_scale: float = 0.1, covariance: str = "diagonal",
                 reparam: str = "auto", max_scale: float | None = None,
                 max_scale_sites: Sequence[str] = ("*",), fuse: bool = True) -> None:
        if max_scale is not None and not (math.isfinite(max_scale) and max_scale > 0):
            raise ValueError(f"max_scale must be a finite number > 0 or None (got {max_scale})")
        self.max_scale = None if max_scale is None else float(max_scale)
        self.max_scale_sites = tuple(max_scale_sites)
        if covariance not in COVARIANCES:
            raise ValueError(f"covariance={covariance!r}; allowed: {', '.join(COVARIANCES)}")
        if reparam not in REPARAMS:
            raise ValueError(f"reparam={reparam!r}; allowed: {', '.join(REPARAMS)}")
        self.init_scale, self.init_latent_scale = float(init_scale), float(init_latent_scale)
        self.covariance, self.reparam = covariance, reparam
        self.fuse = bool(fuse)
        super().__init__(model)

    def _setup(self, model: BayesianNet) -> None:
        self._bounded: list[str] = []
        if self.max_scale is not None:
            names = [s.name for s in model.sites if s.role != "point"]
            self._bounded = [n for n in names
                             if any(fnmatch.fnmatchcase(n, p) for p in self.max_scale_sites)]
            if not self._bounded:
                raise ValueError(f"max_scale_sites={list(self.max_scale_sites)} match no "
                                 f"site; sites: {', '.join(names)}")
        params = dict(model.net.named_parameters())
        points = {s.name for s in model.point_sites}
        obstacle = local_reparam_obstacle(model.net, points)
        if self.reparam == "local" and obstacle is not None:
            raise ValueError(f"reparam='local' is not possible: {obstacle} (use 'weights')")
        self.local = obstacle is None if self.reparam == "auto" else self.reparam == "local"
        self.loc = nn.ParameterDict()
        self.log_var = nn.ParameterDict()
        for s in model.sites:
            k = site_key(s.name)
            c = model.prior.init_site_scale(s)
            self.loc[k] = nn.Parameter(params[s.name].detach() / c)
            if s.name in points:  # a point mass: no variance
                continue
            shape = () if self.covariance == "scalar" else s.shape
            start = model.prior.init_site_log_var(s, params[s.name].detach())
            if start is None:
                start = torch.full(shape, 2.0 * math.log(self.init_scale / c),
                                   device=self.loc[k].device)
            elif self.covariance == "scalar":  # the log of the mean variance
                start = torch.logsumexp(start.reshape(-1), 0) - math.log(start.numel())
            self.log_var[k] = nn.Parameter(start.detach().clone())
        self.latent_loc = nn.ParameterDict()
        self.latent_raw_scale = nn.ParameterDict()
        for ls in model.prior.latents:
            if ls.family not in _LATENT_FAMILIES:
                raise NotImplementedError(f"MeanField has no {ls.family!r} factor ({ls.name})")
            k = site_key(ls.name)
            device = params[ls.target].device
            scale = ls.init_scale if ls.init_scale is not None else self.init_latent_scale
            self.latent_loc[k] = nn.Parameter(torch.as_tensor(
                ls.init_loc, dtype=torch.get_default_dtype()).to(device).expand(ls.shape).clone())
            if ls.family not in _NO_SCALE:
                self.latent_raw_scale[k] = nn.Parameter(
                    torch.full(ls.shape, _inv_softplus(scale), device=device))
        self.__dict__["_state"] = {}
        self.__dict__["lrt_net"] = lrt_twin(model.net, self._state, {
            s.name: self.loc[site_key(s.name)] for s in model.point_sites}) if self.local else None
        layers = ([m for m in self.lrt_net.modules()
                   if isinstance(m, LRTLayer) and m.family.fused_lrt] if self.local else [])
        self._fusable_layers = [m.weight_name for m in layers]
        self._bias_of = {m.weight_name: m.bias_name for m in layers}
        self._site = {s.name: s for s in model.sites}
        self._fusable = self._fusable_layers if self.fuse else []
        self._fused_cache: tuple[tuple, dict] | None = None

    @torch.no_grad()
    def constrain_(self) -> None:
        """Project ``log s^2`` of the bounded sites onto ``<= 2 log max_scale`` (after each
        optimiser step; a no-op without ``max_scale``)."""
        if self._bounded:
            limit = 2.0 * math.log(self.max_scale)
            for name in self._bounded:
                self.log_var[site_key(name)].clamp_(max=limit)

    # -- parameters in site naming ------------------------------------------------------------
    def locs(self) -> dict[str, Tensor]:
        return {s.name: self.loc[site_key(s.name)] for s in self.model.sites}

    def log_variances(self) -> dict[str, Tensor]:
        """``log s^2`` per site, shaped like the site (a scalar covariance is expanded); point
        estimates have none."""
        out = {}
        for s in self.model.sites:
            if site_key(s.name) in self.log_var:  # point estimates have none
                v = self.log_var[site_key(s.name)]
                out[s.name] = v if v.shape == s.shape else v.expand(s.shape)
        return out

    def scales(self) -> dict[str, Tensor]:
        return {k: torch.exp(0.5 * v) for k, v in self.log_variances().items()}

    def latent_params(self) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        lat = self.model.prior.latents
        return ({ls.name: self.latent_loc[site_key(ls.name)] for ls in lat},
                {ls.name: F.softplus(self.latent_raw_scale[site_key(ls.name)]) for ls in lat
                 if ls.family not in _NO_SCALE})

    def latent_factors(self) -> dict[str, dist.Distribution]:
        """``q`` of every hyper-latent (batch-shaped like the latent)."""
        loc, scale = self.latent_params()
        return {ls.name: latent_factor(ls, loc[ls.name], scale.get(ls.name))
                for ls in self.model.prior.latents}

    # -- Pyro guide -----------------------------------------------------------------------------
    def forward(self, *args, **kwargs) -> None:
        pyro.module("meanfield", self)
        factors = self.latent_factors()
        loc, scale = self.locs(), self.scales()
        with poutine.scale(scale=self.model.kl_weight):
            for ls in self.model.prior.latents:
                pyro.sample(ls.name, factors[ls.name].to_event(len(ls.shape)))
            for s in self.model.sites:
                q = (dist.Delta(loc[s.name], event_dim=len(s.shape)) if s.name not in scale else
                     dist.Normal(loc[s.name], scale[s.name]).to_event(len(s.shape)))
                pyro.sample(s.name, q)

    # -- fast path ------------------------------------------------------------------------------
    def loss(self, x: Tensor, y: Tensor) -> Tensor:
        """``-ELBO`` of a minibatch, scaled to the data set: ``(N/B) sum_b nll_b + beta KL``.

        With ``fuse`` (the default), a Linear layer whose site has a constant-precision
        Gaussian KL (:meth:`Prior.constant_precision`) computes its draw and its KL in one
        autograd node (:mod:`bayesstruct.guides.fused`) the first time it runs in a forward
        (later calls, in a recurrent net, take the generic path; the KL is counted once).
        Same values either way, to float rounding."""
        model = self.model
        loc, log_var = self.locs(), self.log_variances()
        lat_loc, lat_scale = self.latent_params()
        if not self.local:
            var = {k: torch.exp(v) for k, v in log_var.items()}
            out = self.output(x, loc, var, lat_loc, lat_scale)
            kl = self._prior_kl(loc, log_var, lat_loc, lat_scale, var)
        else:
            scales = model.prior.input_scales(lat_loc, lat_scale, x.shape[0])
            fused = self._fused_sites(lat_loc, lat_scale, scales)
            var = _Variances(log_var, exclude=fused)
            self._state.update(loc=loc, var=var, log_var=log_var, mean_only=False,
                               input_scale=scales, fused=fused, kl_parts=[], kl_done=set())
            try:
                out = self.lrt_net(x)
                parts, done = self._state["kl_parts"], self._state["kl_done"]
            finally:
                self._state.clear()
            kl = self._prior_kl(loc, log_var, lat_loc, lat_scale, var, done)
            for part in parts:
                kl = kl + part
        nll = model.likelihood.nll(out, y) * self._scale_n(x)
        return nll + model.kl_weight * kl

    def _prior_kl(self, loc: dict[str, Tensor], log_var: dict[str, Tensor],
                  lat_loc: dict[str, Tensor], lat_scale: dict[str, Tensor],
                  var: dict[str, Tensor] | None = None, skip: Collection[str] = ()) -> Tensor:
        """``E_q KL(q || p)`` of the sites not in ``skip`` (:meth:`Prior.kl`)."""
        return self.model.prior.kl(loc, log_var, lat_loc, lat_scale, q_var=var, skip=skip)

    def _fused_sites(self, lat_loc, lat_scale, scales) -> dict[str, LayerKL | None]:
        """``weight -> LayerKL`` of the layers that compute their KL themselves this step
        (and ``bias -> None`` for their Bayesian biases): recomputed only when a buffer of the
        prior (its precisions) or one of its plain settings has changed since the last
        step."""
        prior = self.model.prior
        key = (tuple(b._version for b in prior.buffers()),
               tuple((k, v) for k, v in vars(prior).items()
                     if isinstance(v, (bool, int, float, str))))
        if self._fused_cache is not None and self._fused_cache[0] == key:
            return self._fused_cache[1]
        out: dict[str, LayerKL | None] = {}
        for w in self._fusable:
            if w in scales:  # group scales multiply the input: the generic path
                continue
            cp = prior.constant_precision(self._site[w], lat_loc, lat_scale)
            if cp is None:
                continue
            b, cb = self._bias_of[w], None
            if b is not None and b in self._site and self._site[b].role != "point":
                cb = prior.constant_precision(self._site[b], lat_loc, lat_scale)
                if cb is None:
                    continue
                out[b] = None
            out[w] = LayerKL(cp, cb, self._site[w].numel, self._site[b].numel if cb else 0)
        self._fused_cache = (key, out)
        return out

    def output(self, x: Tensor, loc: dict[str, Tensor] | None = None,
               var: dict[str, Tensor] | None = None, lat_loc: dict[str, Tensor] | None = None,
               lat_scale: dict[str, Tensor] | None = None) -> Tensor:
        """The network's output under one draw from q: pre-activations by the local
        reparameterisation, or one weight tensor per site for the minibatch."""
        model = self.model
        if loc is None:
            loc = self.locs()
            var = {k: torch.exp(v) for k, v in self.log_variances().items()}
            lat_loc, lat_scale = self.latent_params()
        if self.local:
            scales = model.prior.input_scales(lat_loc, lat_scale, x.shape[0])
            self._state.update(loc=loc, var=var, mean_only=False, input_scale=scales)
            out = self.lrt_net(x)
            self._state.clear()
        else:  # one draw of every weight tensor (and latent) for the whole minibatch
            draw = {k: f.rsample() if f.has_rsample else  # discrete: Concrete relaxation
                    model.prior.relaxed_sample(f.logits) for k, f in self.latent_factors().items()}
            draw.update({k: m if k not in var else
                         torch.addcmul(m, var[k].sqrt(), torch.randn_like(m))
                         for k, m in loc.items()})
            out = model.predict(x, draw)
        return out

    def kl(self) -> Tensor:
        """``E_q KL(q || p)`` in closed form (the prior's :meth:`~Prior.kl`)."""
        return self._prior_kl(self.locs(), self.log_variances(), *self.latent_params())

    # -- reading the posterior ------------------------------------------------------------------
    @torch.no_grad()
    def point(self) -> dict[str, Tensor]:
        """Posterior means: of the weights, and of the hyper-latents (which group-scale priors
        need to form the network's weights, :meth:`Prior.net_params`)."""
        out = {k: f.mean.detach().clone() for k, f in self.latent_factors().items()}
        out.update({k: v.detach().clone() for k, v in self.locs().items()})
        return out

    @torch.no_grad()
    def mean_values(self) -> dict[str, Tensor]:
        """:meth:`point` through :meth:`Prior.mean_site_values`: the values whose network is
        ``E_q[w]`` (the regularised horseshoe's ``E_q[slab(s z)] E_q[w~]``)."""
        return self.model.prior.mean_site_values(self.point(), *self.latent_params())

    @torch.no_grad()
    def moments(self) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        loc, scale = self.locs(), self.scales()
        return ({k: v.detach() for k, v in loc.items()},
                {k: scale[k].detach() if k in scale else torch.zeros_like(v.detach())
                 for k, v in loc.items()})

    @torch.no_grad()
    def sample(self, num_draws: int) -> dict[str, Tensor]:
        out = {k: f.sample((num_draws,)) for k, f in self.latent_factors().items()}
        loc, scale = self.locs(), self.scales()
        for name, m in loc.items():
            out[name] = (dist.Normal(m, scale[name]).sample((num_draws,)) if name in scale else
                         m.detach().expand(num_draws, *m.shape).clone())
        return out

    @torch.no_grad()
    def variational(self) -> dict[str, tuple[str, Tensor, Tensor]]:
        out: dict[str, tuple[str, Tensor, Tensor]] = {}
        lat_loc, lat_scale = self.latent_params()
        for ls in self.model.prior.latents:
            loc_ = lat_loc[ls.name].detach()
            scale_ = lat_scale[ls.name].detach() if ls.name in lat_scale else torch.zeros_like(
                loc_)  # a Bernoulli has only its logits
            out[ls.name] = (_FAMILY_NAMES[ls.family], loc_, scale_)
        loc, scale = self.locs(), self.scales()
        for name, m in loc.items():
            out[name] = (("Normal", m.detach(), scale[name].detach()) if name in scale else
                         ("Delta", m.detach(), torch.zeros_like(m.detach())))
        return out
