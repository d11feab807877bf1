"""How a prior meets a network: parameter sites, the :class:`Prior` contract, shared KL algebra.

A *site* is one parameter tensor of a plain network (``fc1.weight``). A prior turns every site
into a Pyro sample site of the same name (so ``torch.func.functional_call`` can run the plain
network on the sampled values), and may add positive hyper-latent sites of its own (ARD
precisions ``fc1.weight.alpha``).

*Group*: the weights leaving one input unit -- a column of a ``Linear`` weight
``W[out, in]`` or an input channel of a ``Conv2d`` weight ``W[out, in, kh, kw]``; group priors
share one scale per group, which is what makes unit pruning possible.

Biases are not structure: every prior gives them ``N(0, bias_scale^2)``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from fnmatch import fnmatch
from typing import Any, ClassVar, get_args

import pyro
import pyro.distributions as dist
import torch
from pydantic import Field
from pyro.distributions import constraints
from torch import Tensor, nn

from ..layers import default_role, family_of
from ..schema import Strict

__all__ = [
    "PRIORS",
    "LatentSite",
    "ParamSite",
    "Prior",
    "PriorConfig",
    "Selector",
    "expand_group",
    "kl_lognormal_gamma",
    "kl_normal_normal",
    "kl_normal_sum",
    "param_sites",
]


@dataclass(frozen=True)
class ParamSite:
    """One parameter tensor of a plain network, as a sample site.

    ``role`` (:data:`bayesstruct.layers.ROLES`): ``"weight"`` gets the prior and can be pruned;
    ``"bias"`` gets ``N(0, bias_scale^2)``; ``"point"`` is a point estimate (no prior, a flat
    improper density in the model, a point mass in every guide). ``group_dim`` is the
    dimension indexing the layer's input units (``None``: no unit groups; ``no_groups`` says
    why)."""

    name: str  # "fc1.weight"
    shape: tuple[int, ...]
    role: str  # "weight" | "bias" | "point"
    layer: str  # "fc1"
    dims: tuple[str, ...]  # ("fc1_out", "fc1_in")
    group_dim: int | None = None
    module: str = ""  # the owning module's type, "Linear"
    no_groups: str = ""

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def group_shape(self) -> tuple[int, ...]:
        """Shape of one scale per group: ``(in,)`` for Linear and Conv weights."""
        gd = self.group_dim
        return (self.shape[gd],) if gd is not None else self.shape


@dataclass(frozen=True)
class LatentSite:
    """A hyper-latent emitted by a prior (a precision, a group scale).

    ``family`` is the variational family guides give it: ``"lognormal"`` for positive latents
    (precisions, horseshoe scales), ``"truncated_lognormal"`` for positive ones with
    ``log value`` in ``bounds`` (Structured Bayesian Pruning's noise), ``"normal"`` for real
    ones (the normal-Jeffreys group scale z of Bayesian Compression). ``init_loc`` /
    ``init_scale`` are the guide's starting location (log-space for log-normals) and scale
    (``None``: the guide's default).
    """

    name: str  # "fc1.weight.alpha"
    shape: tuple[int, ...]
    dims: tuple[str, ...]
    target: str  # the ParamSite it governs
    family: str = "lognormal"
    init_loc: float | Tensor = 0.0  # a number, or one per element
    init_scale: float | None = None
    bounds: tuple[float, float] | None = None  # (low, high) of log-space, truncated families


_DIM_SUFFIX = {2: ("out", "in"), 4: ("out", "in", "kh", "kw"), 3: ("out", "in", "k")}

#: what ``include=`` / ``exclude=`` entries may be: a parameter-name or module-path pattern
#: (``fnmatch``: ``"fc1.*"``, ``"*.bias"``), a module type name (``"BatchNorm2d"``) or a type
Selector = str | type


def param_sites(net: nn.Module, include: Sequence[Selector] = (),
                exclude: Sequence[Selector] = ()) -> list[ParamSite]:
    """The sites of a plain network: one per parameter tensor, dims named per layer
    (``fc1_out``, ``fc1_in``), so the weight and bias of a layer share the output dim.

    Roles come from the owning module's layer family (:meth:`LayerFamily.role`), or
    :func:`~bayesstruct.layers.default_role` for modules no family covers: weights of Linear,
    convolutions, recurrent layers, embeddings and attention get the prior; biases a Gaussian;
    normalisation affine parameters and other 1-D or scalar parameters are point estimates.
    ``exclude`` makes the parameters it matches point estimates; ``include`` puts the prior on
    the ones it matches (a ``bias*`` name as a bias, anything else as a weight); a parameter
    matched by both is excluded.

    A layer whose parameters would give one dim name two sizes (``torch.nn.RNN``'s
    ``weight_ih_l0`` is ``(H, in)`` and ``weight_hh_l0`` is ``(H, H)``; a ``ConvTranspose``
    weight is ``(in, out, ...)`` beside its ``(out,)`` bias) has its dims named per parameter
    instead (``rnn_weight_ih_l0_out``), which ArviZ needs to hold them in one data set."""
    sites = []
    for name, p in net.named_parameters():
        layer, _, pname = name.rpartition(".")
        module = net.get_submodule(layer)
        family = family_of(module)
        role = family.role(module, pname, p) if family else default_role(pname, p)
        if _matches(include, name, layer, module):
            role = "bias" if pname.startswith("bias") else "weight"
        if _matches(exclude, name, layer, module):
            role = "point"
        gd = family.group_dim(module, pname) if family and role == "weight" else None
        no_groups = "" if gd is not None or role != "weight" else (
            family.no_groups(module) if family else
            f"bayesstruct knows no units of {type(module).__name__}")
        sites.append(ParamSite(name, tuple(p.shape), role, layer,
                               _dims(layer.replace(".", "_"), pname, p.dim()), gd,
                               type(module).__name__, no_groups))
    sizes: dict[str, set[int]] = {}
    for site in sites:
        for d, n in zip(site.dims, site.shape, strict=True):
            sizes.setdefault(d, set()).add(n)
    clashing = {s.layer for s in sites
                if any(len(sizes[d]) > 1 for d in s.dims)}
    return [replace(s, dims=_dims(f"{s.layer.replace('.', '_')}_{s.name.rpartition('.')[2]}",
                                  s.name.rpartition(".")[2], len(s.shape)))
            if s.layer in clashing else s for s in sites]


def _matches(selectors: Sequence[Selector], name: str, layer: str, module: nn.Module) -> bool:
    for sel in selectors:
        if isinstance(sel, type):
            if isinstance(module, sel):
                return True
        elif sel == type(module).__name__ or fnmatch(name, sel) or (layer and fnmatch(layer, sel)):
            return True
    return False


def _dims(tag: str, role: str, ndim: int) -> tuple[str, ...]:
    if role == "bias" or ndim == 1:
        return (f"{tag}_out",)
    return tuple(f"{tag}_{s}" for s in _DIM_SUFFIX.get(ndim, tuple(f"d{i}" for i in
                                                                      range(ndim))))


def expand_group(values: Tensor, site: ParamSite) -> Tensor:
    """View per-group values ``(in,)`` so they broadcast against the site's full shape."""
    gd = site.group_dim
    if gd is None or values.dim() == 0 or values.shape == torch.Size(site.shape):
        return values
    shape = [1] * len(site.shape)
    shape[gd] = site.shape[gd]
    return values.reshape(*values.shape[:-1], *shape) if values.dim() > 1 else values.view(shape)


def kl_normal_normal(m: Tensor, s: Tensor, mu: Tensor | float, var: Tensor | float) -> Tensor:
    """Elementwise ``KL(N(m, s^2) || N(mu, var)) = 1/2 [log(var/s^2) + (s^2 + (m-mu)^2)/var - 1]``.

    (The standard form, ``KL(q || p)`` with ``q`` the posterior.)
    """
    var = torch.as_tensor(var, dtype=m.dtype, device=m.device)
    return 0.5 * (torch.log(var) - 2.0 * torch.log(s) + (s * s + (m - mu) ** 2) / var - 1.0)


def kl_normal_sum(m: Tensor, var: Tensor, log_var: Tensor, prec: Tensor, log_prec: Tensor,
                  mu: Tensor | None = None) -> Tensor:
    """``sum_i KL(N(m_i, var_i) || N(mu_i, 1/prec_i))`` in the precision form

        1/2 sum_i [ prec_i (var_i + (m_i - mu_i)^2) - log prec_i - log var_i - 1 ]

    ``prec`` and ``log_prec`` broadcast against ``m``; passing ``E_q[prec]`` and
    ``E_q[log prec]`` gives the expected KL under a hyper-posterior (ARD with a Gamma
    hyperprior). ``var`` and
    ``log_var`` are both taken so the caller computes ``exp`` once (the guide shares ``var``
    with its local-reparameterisation layers). A scalar precision is applied after summing,
    and the log-precision sum counts each broadcast value once per weight it covers.
    """
    d = m if mu is None else m - mu
    if prec.numel() == 1:
        df = d.reshape(-1)
        quad = prec.reshape(()) * (var.sum() + torch.dot(df, df))
    else:
        quad = (prec * (var + d * d)).sum()
    n = m.numel()
    log_prec_sum = log_prec.sum() * (n // log_prec.numel())
    return 0.5 * (quad - log_prec_sum - log_var.sum() - n)


class _GaussianKLSums(torch.autograd.Function):
    """``sum_sites 1/2 sum_i [prec (var + m^2) - log prec - log var - 1]`` for many sites in one
    autograd node, with the gradient in closed form,

        d/dm = prec m,    d/d(log var) = (prec var - 1) / 2.

    Written out because the generic graph costs about a dozen tensor operations per site per
    step, and at minibatch sizes the per-operation overhead, not the arithmetic, dominates
    (measured: ``benchmarks/svi_throughput.py``, ``benchmarks/RESULTS.md``). Inputs, flattened
    in groups of five per site: ``m, log_var, var, prec, log_prec`` with ``var = exp(log_var)``
    (not differentiated; its gradient goes through ``log_var``) and constant ``prec``,
    ``log_prec`` broadcastable to ``m``.
    """

    @staticmethod
    def forward(ctx, *args):
        ctx.save_for_backward(*args)
        total = args[0].new_zeros(())
        for k in range(0, len(args), 5):
            m, log_var, var, prec, log_prec = args[k: k + 5]
            total += kl_normal_sum(m, var, log_var, prec, log_prec)
        return total

    @staticmethod
    def backward(ctx, g):
        args = ctx.saved_tensors
        grads: list[Tensor | None] = []
        half_g = 0.5 * g
        for k in range(0, len(args), 5):
            m, _, var, prec, _ = args[k: k + 5]
            gp = g * prec
            d_m = m * gp if ctx.needs_input_grad[k] else None
            d_lv = (var * (0.5 * gp)).sub_(half_g) if ctx.needs_input_grad[k + 1] else None
            grads += [d_m, d_lv, None, None, None]
        return tuple(grads)


def kl_lognormal_gamma(loc: Tensor, scale: Tensor, a: float, b: float) -> Tensor:
    """Elementwise ``KL(LogNormal(loc, scale) || Gamma(a, rate=b))`` in closed form.

    ``-H[q] - E_q log p``, with ``H[LogNormal] = loc + 1/2 + log scale + 1/2 log 2 pi``,
    ``E_q log alpha = loc`` and ``E_q alpha = exp(loc + scale^2 / 2)``.
    """
    entropy = loc + 0.5 + torch.log(scale) + 0.5 * math.log(2 * math.pi)
    e_log_p = (a * math.log(b) - math.lgamma(a) + (a - 1.0) * loc
               - b * torch.exp(loc + 0.5 * scale * scale))
    return -entropy - e_log_p


class PriorConfig(Strict):
    """The settings every prior takes. A prior's own config model (beside the prior, e.g.
    ``GaussianConfig``) adds ``kind``, a one-value ``Literal`` (its registry name), and the
    rest of its constructor's arguments with their allowed ranges; ``prior:`` in a catalog entry
    is validated against it."""

    bias_scale: float = Field(1.0, gt=0)


#: ``kind -> Prior subclass``; a subclass registers itself with ``class X(Prior, config=XConfig)``
PRIORS: dict[str, type[Prior]] = {}


class Prior(nn.Module, ABC):
    """Base class: a prior over a network's parameters (and structure).

    Contract (what guides and engines rely on):

    * :meth:`bind` -- called once by :class:`~bayesstruct.models.BayesianNet` with the net's
      sites; creates hyperparameter buffers.
    * :meth:`sample` -- inside a Pyro model, emit every sample site; return the parameter values
      keyed like ``net.named_parameters()``.
    * :attr:`latents` -- the positive hyper-latent sites (guides give them log-normal factors).
    * :meth:`kl` -- ``E_q KL(q || p)`` in closed form for a mean-field Normal guide on the
      weights and log-normal factors on the latents (analytic KL where the pair
      has one).
    * :meth:`log_prob` -- ``log p(w, latents)`` at a point (MAP / Delta guides).
    * :meth:`empirical_bayes_` -- the closed-form empirical-Bayes update (if the prior has one).
    * :meth:`mode` -- the prior's mode for a site (the numerator point of rho).
    """

    #: name used by the registry / YAML (``prior.kind``), read from :attr:`Config`
    kind: ClassVar[str] = ""
    #: the config model whose fields are the constructor's arguments (set at registration)
    Config: ClassVar[type[PriorConfig]] = PriorConfig
    #: whether :meth:`empirical_bayes_` updates anything
    empirical_bayes: bool = False
    #: whether the prior is a normalisable density (MAP and prior draws make sense)
    proper: bool = True
    #: whether SVI's ``kl_warmup_epochs: auto`` ramps the KL weight up for this prior
    #: (:data:`~bayesstruct.inference.svi.KL_WARMUP_FRACTION` of the run)
    kl_warmup: bool = False
    #: the pruning criterion ``criterion: auto`` resolves to: ``rho`` per weight,
    #: ``log_alpha`` per weight (sparse VD), ``unit`` per group (group-scale priors)
    criterion: str = "rho"
    #: whether the prior has discrete structure latents (IBP masks): guides relax them
    #: (:meth:`relaxed_sample`), MCMC enumerates them, point-mass guides and Langevin refuse
    discrete: bool = False

    def __init_subclass__(cls, config: type[PriorConfig] | None = None, **kwargs: Any) -> None:
        """``class Gaussian(Prior, config=GaussianConfig)`` registers the prior in
        :data:`PRIORS` under its config's ``kind``; subclasses without ``config`` (shared
        bases such as :class:`~bayesstruct.priors.group.GroupScalePrior`) are not registered."""
        super().__init_subclass__(**kwargs)
        if config is None:
            return
        kinds = get_args(config.model_fields["kind"].annotation)
        if len(kinds) != 1:
            raise TypeError(f"{config.__name__}.kind must be a one-value Literal, got {kinds}")
        if kinds[0] in PRIORS:
            raise TypeError(f"prior kind {kinds[0]!r} is registered twice "
                            f"({PRIORS[kinds[0]].__name__} and {cls.__name__})")
        cls.kind, cls.Config = kinds[0], config
        PRIORS[kinds[0]] = cls

    @classmethod
    def from_config(cls, config: PriorConfig) -> Prior:
        """The prior a validated config describes (its fields are the constructor's)."""
        return PRIORS[config.kind](**config.model_dump(exclude={"kind"}))

    def __init__(self, bias_scale: float = 1.0) -> None:
        super().__init__()
        if bias_scale <= 0:
            raise ValueError(f"bias_scale must be > 0, got {bias_scale}")
        self.bias_scale = float(bias_scale)
        self.register_buffer("bias_precision", torch.tensor(bias_scale**-2.0), persistent=False)
        self.register_buffer("bias_log_precision", torch.tensor(-2.0 * math.log(bias_scale)),
                             persistent=False)
        self.sites: list[ParamSite] = []

    # -- wiring -----------------------------------------------------------------------------
    def bind(self, sites: list[ParamSite]) -> None:
        self.sites = list(sites)

    @property
    def needs_units(self) -> bool:
        """Whether the prior shares scales within unit groups (every weight site must have
        them: :attr:`ParamSite.group_dim`); ``BayesianNet`` refuses a weight without."""
        return False

    @property
    def latents(self) -> list[LatentSite]:
        return []

    def require_proper(self) -> None:
        """Raise if this prior is improper: its posterior is then no distribution to sample."""
        if not self.proper:
            raise ValueError(f"{type(self).__name__} is an improper prior: its posterior is not "
                             "a distribution to sample (use SVI)")

    def require_continuous(self, what: str) -> None:
        """Raise if this prior has discrete latents, which ``what`` cannot handle."""
        if self.discrete:
            raise ValueError(f"{what} needs continuous latents; the {self.kind} prior has "
                             "discrete structure (use SVI with the meanfield guide, or NUTS, "
                             "which sums the masks out exactly)")

    def relaxed_sample(self, logits: Tensor, sample_shape: torch.Size = torch.Size()) -> Tensor:
        """A reparameterisable (relaxed) draw of a discrete latent with these logits."""
        raise NotImplementedError(f"{type(self).__name__} has no discrete latents")

    def centred_sites(self) -> list[str]:
        """Weight sites whose Normal prior scale is itself a latent (a centred hierarchy,
        ``w ~ N(0, f(latent))``): MCMC samples them decentred, ``w = loc + scale * w_std`` with
        ``w_std ~ N(0, 1)`` (Pyro's ``LocScaleReparam``), to avoid the funnel."""
        return []

    # -- the model side ---------------------------------------------------------------------
    def sample(self) -> dict[str, Tensor]:
        """Emit Pyro sample sites for every latent and parameter; return all their values
        (:meth:`net_params` turns them into the network's parameters)."""
        latents = {ls.name: pyro.sample(ls.name, self.latent_prior(ls)) for ls in self.latents}
        values = {s.name: pyro.sample(s.name, self.site_prior(s, latents)) for s in self.sites}
        return {**latents, **values}

    def net_params(self, values: dict[str, Tensor]) -> dict[str, Tensor]:
        """The plain network's parameters from sample-site values (and latents).

        The identity on the sites for priors whose sites *are* the weights; group-scale priors
        in the non-centred form (``w = z * w~``: BC-GNJ, BC-GHS, IBP) multiply the scales in here.
        """
        return {s.name: values[s.name] for s in self.sites}

    def mean_net_params(self, values: dict[str, Tensor], latent_loc: dict[str, Tensor],
                        latent_scale: dict[str, Tensor]) -> dict[str, Tensor]:
        """The posterior-mean network's parameters under a mean-field ``q``, from the sites'
        posterior means ``values`` and the latents' variational ``(loc, scale)``:
        :meth:`net_params` of the means, unless the weights are nonlinear in the latents
        (the regularised horseshoe: :meth:`GroupScalePrior.mean_net_params`)."""
        return self.net_params(values)

    def mean_site_values(self, values: dict[str, Tensor], latent_loc: dict[str, Tensor],
                         latent_scale: dict[str, Tensor]) -> dict[str, Tensor]:
        """Site values whose :meth:`net_params` are :meth:`mean_net_params`: what every path
        that evaluates "the posterior-mean network" through :meth:`BayesianNet.predict`
        (masks applied to the sites) feeds it. ``values`` unchanged unless the weights are
        nonlinear in the latents (the regularised horseshoe: its ``z`` is replaced by the
        value whose slab gives ``E_q[slab(s z)]``)."""
        return values

    def init_site_scale(self, site: ParamSite) -> float:
        """How much smaller a site's sample value starts than the network weight it becomes:
        guides start ``loc = w_init / c`` and ``sd = init_scale / c`` (``c = 1`` unless a
        non-centred group prior starts its scales at ``c``)."""
        return 1.0

    def init_site_log_var(self, site: ParamSite, w_init: Tensor) -> Tensor | None:
        """The guide's starting ``log sigma^2`` of a site, elementwise, when the prior fixes it
        relative to the initial weights ``w_init`` (the per-weight log-uniform prior starts each
        layer at one ``sigma`` relative to its weights); ``None`` (the default): the guide's
        ``init_scale``."""
        return None

    def input_scales(self, latent_loc: dict[str, Tensor], latent_scale: dict[str, Tensor],
                     batch: int) -> dict[str, Tensor]:
        """Per-example draws of multiplicative group scales for the fast path.

        ``weight site -> (batch, groups)``: the local-reparameterisation layers multiply their
        input by it (``w_gj = z_g w~_gj`` with ``z`` drawn once per example, Louizos et al.
        2017), so a group-scale prior costs one product per layer. Empty for other priors.
        """
        return {}

    def weight_kl(self, site: ParamSite, m: Tensor, log_var: Tensor,
                  var: Tensor) -> Tensor | None:
        """A weight site's ``KL(q(w) || p(w))`` when it is not of the Gaussian precision form
        (:meth:`weight_precision`), e.g. an approximation; ``None`` (the default) otherwise."""
        return None

    def effective_moments(self, site: ParamSite, m: Tensor, var: Tensor,
                          latent_loc: dict[str, Tensor] | None,
                          latent_scale: dict[str, Tensor] | None) -> tuple[Tensor, Tensor]:
        """Mean and variance under ``q`` of the network weight a site becomes (for reports);
        the site's own ``(m, var)`` unless the prior multiplies it by latent scales."""
        return m, var

    def unit_log_alpha(self, site: ParamSite, m: Tensor, var: Tensor,
                       latent_loc: dict[str, Tensor] | None,
                       latent_scale: dict[str, Tensor] | None) -> Tensor:
        """Per-group score of a unit decision (larger = removed first): the group's
        ``log alpha_g = -log sum_j E[w_gj]^2 / Var[w_gj]`` over the network weights it holds
        (:meth:`effective_moments`), so that ``log rho_g = -exp(-log alpha_g) / 2`` is the log
        relative density of the whole group (the sum of its weights' Gaussian ``log rho``).
        Any prior's grouped sites can be decided by units this way (ARD per unit, say);
        BC-GNJ, the horseshoe's ``log_scale`` rule and the IBP have their own."""
        mean, v = self.effective_moments(site, m, var, latent_loc, latent_scale)
        snr = mean * mean / v
        dims = [d for d in range(snr.dim()) if d != site.group_dim]
        return -torch.log(snr.sum(dim=dims))

    def unit_scores_from_draws(self, site: ParamSite, draws: dict[str, Tensor]
                               ) -> Tensor | None:
        """A unit score per group from a sampler's draws of the latents (leading draw axis),
        or ``None`` (the default): the draws of the network weights decide
        (:func:`~bayesstruct.pruning.units.unit_scores_from_draws`)."""
        return None

    def latent_prior(self, latent: LatentSite) -> dist.Distribution:
        raise NotImplementedError(f"{type(self).__name__} has no latent {latent.name}")

    def site_prior(self, site: ParamSite, latents: dict[str, Tensor]) -> dist.Distribution:
        """``p(site | latents)`` as a distribution with the whole site as one event; a point
        estimate's is flat (``ImproperUniform``: log density 0), so its ELBO term is the
        likelihood's alone."""
        device = self._device()
        if site.role == "point":
            return dist.ImproperUniform(constraints.real, (), site.shape)
        if site.role == "bias":
            loc, scale = torch.zeros((), device=device), torch.full((), self.bias_scale,
                                                                     device=device)
        else:
            loc, scale = self.weight_loc_scale(site, latents)
        return dist.Normal(loc, scale).expand(site.shape).to_event(len(site.shape))

    @abstractmethod
    def weight_loc_scale(self, site: ParamSite,
                         latents: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Location and scale (broadcastable to the site) of a weight's Normal prior."""

    # -- closed forms -----------------------------------------------------------------------
    def kl(self, q_loc: dict[str, Tensor], q_log_var: dict[str, Tensor],
           latent_loc: dict[str, Tensor] | None = None,
           latent_scale: dict[str, Tensor] | None = None,
           q_var: dict[str, Tensor] | None = None, *, skip: Collection[str] = ()) -> Tensor:
        """``sum_sites E_q KL(q(w) || p(w | latents)) + KL(q(latents) || p(latents))``.

        ``q(w) = N(q_loc, exp(q_log_var))``; ``q_var`` (``= exp(q_log_var)``) may be passed
        when the caller already has it. The sites in ``skip`` are left out: their KL is
        computed elsewhere (a fused layer, :meth:`constant_precision`).
        """
        total = q_loc[self.sites[0].name].new_zeros(())
        fused: list[Tensor] = []
        for s in self.sites:
            if s.role == "point" or s.name in skip:  # a point mass: no KL term
                continue
            m, lv = q_loc[s.name], q_log_var[s.name]
            v = q_var[s.name] if q_var is not None else torch.exp(lv)
            custom = self.weight_kl(s, m, lv, v) if s.role == "weight" else None
            if custom is not None:
                total = total + custom
                continue
            prec, log_prec, mu, extra = self._precision_form(s, latent_loc, latent_scale)
            if extra is not None:
                total = total + extra
            if mu is None and not (prec.requires_grad or log_prec.requires_grad):
                fused += [m, lv, v, prec, log_prec]
            else:
                total = total + kl_normal_sum(m, v, lv, prec, log_prec, mu)
        if fused:
            total = total + _GaussianKLSums.apply(*fused)
        return total

    def _precision_form(self, s: ParamSite, latent_loc, latent_scale):
        if s.role == "bias":
            return self.bias_precision, self.bias_log_precision, None, None
        return self.weight_precision(s, latent_loc, latent_scale)

    def constant_precision(self, site: ParamSite, latent_loc: dict[str, Tensor] | None = None,
                           latent_scale: dict[str, Tensor] | None = None
                           ) -> tuple[Tensor, Tensor] | None:
        """``(prec, log_prec)`` when the site's KL is exactly
        ``kl_normal_sum(m, var, log_var, prec, log_prec)``: a zero prior mean, precisions that
        take no gradient, no KL of its own latents and no :meth:`weight_kl` of the prior's own;
        ``None`` otherwise. A guide may then compute that KL, and fold its closed-form gradient,
        inside the layer (``bayesstruct.guides.fused``) and leave the site out of :meth:`kl`."""
        if site.role == "point" or (site.role == "weight"
                                    and type(self).weight_kl is not Prior.weight_kl):
            return None
        prec, log_prec, mu, extra = self._precision_form(site, latent_loc, latent_scale)
        if mu is not None or extra is not None or prec.requires_grad or log_prec.requires_grad:
            return None
        return prec, log_prec

    def _eb_weight_moments(self, q_loc: dict[str, Tensor], q_scale: dict[str, Tensor]):
        """``(site, m, s)`` of every weight site when empirical Bayes is on (else nothing)."""
        if not getattr(self, "empirical_bayes", False):
            return
        for site in self.sites:
            if site.role == "weight":
                yield site, q_loc[site.name], q_scale[site.name]

    @abstractmethod
    def weight_precision(self, site: ParamSite, latent_loc: dict[str, Tensor] | None,
                         latent_scale: dict[str, Tensor] | None
                         ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """The precision form of a weight site's expected KL: ``(prec, log_prec, mu, extra)``.

        ``E_q KL(q(w) || p(w | latents)) = kl_normal_sum(m, var, log_var, prec, log_prec, mu)``
        (``mu=None`` for a zero prior mean), plus ``extra`` (the KL of the site's own latents,
        or ``None``). ``prec`` and ``log_prec`` broadcast against the site.
        """

    def log_prob(self, values: dict[str, Tensor],
                 latents: dict[str, Tensor] | None = None) -> Tensor:
        """``log p(w, latents)`` at a point (sites in the prior's own parameterisation)."""
        latents = latents or {}
        total = next(iter(values.values())).new_zeros(())
        for ls in self.latents:
            total = total + self.latent_prior(ls).log_prob(latents[ls.name])
        for s in self.sites:
            total = total + self.site_prior(s, latents).log_prob(values[s.name])
        return total

    def empirical_bayes_(self, q_loc: dict[str, Tensor], q_scale: dict[str, Tensor]) -> None:
        """Closed-form update of the prior's hyperparameters (empirical Bayes); no-op by default."""

    def enable_empirical_bayes(self) -> None:
        """Switch the closed-form empirical-Bayes updates on; priors without one refuse."""
        raise ValueError(f"prior {self.kind!r} has no closed-form empirical-Bayes update; "
                         "use gaussian, or ard with hyper=empirical_bayes")

    def mode(self, site: ParamSite) -> float | Tensor:
        """The prior's mode for a weight (the numerator point of rho): a number, or one
        per group (``site.group_shape``) for priors with per-group locations."""
        return 0.0

    def hyperparameters(self) -> dict[str, Tensor]:
        """Current point hyperparameters (for reports and the posterior's attrs)."""
        return {k: v.detach() for k, v in self.named_buffers()}

    def _device(self) -> torch.device:
        for b in self.buffers():
            return b.device
        return getattr(self, "_bound_device", torch.device("cpu"))

    def _apply(self, fn, recurse=True):  # track the device of buffer-less priors
        probe = fn(torch.zeros(()))
        self._bound_device = probe.device
        return super()._apply(fn, recurse)

    def extra_repr(self) -> str:
        return f"bias_scale={self.bias_scale}"
