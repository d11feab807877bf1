"""Indian Buffet Process deep sparse networks, in truncated stick-breaking form.

Per hidden layer ``l`` with truncation ``K_l`` units (the layer's width in the plain network;
Teh, Gorur & Ghahramani 2007; Adams, Wallach & Ghahramani 2010):

    v_k ~ Beta(alpha, 1),    pi_k = prod_{j <= k} v_j,            k = 1 .. K_l,

and unit masks ``z_k`` that **cascade**: the customers of layer ``l``'s buffet are the active
units of layer ``l - 1`` (the ``D`` input features for the first hidden layer). A unit is
active when at least one customer takes its dish; customer ``j`` takes dish ``k`` with
probability ``pi_k`` independently, so with ``n`` active customers

    P(z_k = 1 | v, n) = 1 - (1 - pi_k)^n,      n = n_{l-1} = sum_j z^{(l-1)}_j,

the unit-level marginal of the cascading IBP's connection matrix (one customer, ``n = 1``,
gives the plain ``z_k ~ Bernoulli(pi_k)``). Only these unit masks are random and inferred: the
cascading IBP's binary matrix between consecutive layers (which active unit of layer ``l - 1``
connects to which unit of layer ``l``) is not modelled, and a kept unit reads every kept unit
of the layer below through its dense weights. The expected width of the first hidden layer is
then ``sum_k E[1 - (1 - pi_k)^D]``, which tends to the IBP's ``alpha H_D`` as ``K -> inf``
(tested). A masked unit's output ``h_k`` is multiplied by ``z_k``, which is the same as
scaling column ``k`` of the next layer's weight (the next layer reads ``W (z * h)``, whatever
the activation), so the weights are written like the other group priors
(:class:`~bayesstruct.priors.group.GroupScalePrior`),

    w_gj = z_g w~_gj,    w~ ~ N(0, 1),

with ``g`` the next layer's input unit: an inactive unit is read by nobody and
:func:`~bayesstruct.pruning.prune` removes it, so the pruned network's widths are the
inferred ones.

Guides (SVI): ``q(v_k) = Kumaraswamy(a_k, b_k)`` (Nalisnick & Smyth 2017: reparameterisable,
and its KL to ``Beta(alpha, 1)`` has a closed form) and ``q(z_k) = Bernoulli(theta_k)``, run
through its Concrete relaxation (Maddison, Mnih & Teh 2017; Jang, Gu & Poole 2017) at
``temperature`` in the likelihood term, ``z = sigmoid((logit theta + L) / temperature)`` with
``L`` logistic, drawn per example (the local reparameterisation of the masks). The KL of the
structure is

    KL(q(v) || p(v)) = sum_k (a - alpha)/a (-gamma - psi(b) - 1/b) + log(a b) - log(alpha)
                              - (b - 1)/b                                  (closed form),
    E_q KL(q(z) || p(z | v, n)) = sum_k theta log theta + (1 - theta) log(1 - theta)
                              - theta log P1_k - (1 - theta) log P0_k,
    log P0_k = n log(1 - pi_k),    log P1_k = log(1 - exp(log P0_k)),

with ``pi`` from one reparameterised draw of ``q(v)`` and ``n`` from one relaxed draw of the
previous layer's masks (the expectations over ``v`` and ``n`` have no closed form). As the
temperature goes to 0 the relaxed draws become Bernoulli draws and the estimate is the
discrete model's negative ELBO (tested against Pyro's ``Trace_ELBO`` on the discrete model).

MCMC: with :meth:`IBP.enumerated` the model replaces each layer's mask vector by one
categorical site over its ``2^K`` configurations, marked for Pyro's parallel enumeration, so
NUTS samples ``(v, w~)`` with the masks summed out exactly and the mask draws are recovered
afterwards by ``infer_discrete`` (small nets only: ``K <= 10`` units per layer).
"""

from __future__ import annotations

import contextlib
import itertools
import math
from typing import Annotated, Literal

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from ..parallel import per_example
from .base import LatentSite, ParamSite, PriorConfig
from .group import GroupScalePrior

__all__ = ["IBP", "IBPConfig", "cascade_log_probs",
           "kl_kumaraswamy_beta1", "kumaraswamy_log_rsample"]

_EULER_GAMMA = 0.5772156649015329
#: the most units of one layer whose 2^K mask configurations MCMC enumerates
MAX_ENUMERATED_UNITS = 10


def kl_kumaraswamy_beta1(a: Tensor, b: Tensor, alpha: float) -> Tensor:
    """Elementwise ``KL(Kumaraswamy(a, b) || Beta(alpha, 1))`` in closed form.

    Nalisnick & Smyth (2017), appendix: the general ``Beta(alpha, beta)`` form has a series in
    ``beta - 1``, which vanishes for ``beta = 1``, leaving

        (a - alpha)/a (-gamma - psi(b) - 1/b) + log(a b) + log B(alpha, 1) - (b - 1)/b,

    with ``log B(alpha, 1) = -log alpha``. (Tested against Monte Carlo.)
    """
    return ((a - alpha) / a * (-_EULER_GAMMA - torch.digamma(b) - 1.0 / b)
            + torch.log(a * b) - math.log(alpha) - (b - 1.0) / b)


def kumaraswamy_log_rsample(a: Tensor, b: Tensor, sample_shape: torch.Size = torch.Size()
                            ) -> Tensor:
    """``log v`` for ``v ~ Kumaraswamy(a, b)`` by inverting the CDF, in log space:
    ``v = (1 - u^(1/b))^(1/a)``, so ``log v = log(-expm1(log(u) / b)) / a`` (stable for the
    ``v`` near 1 that long sticks need)."""
    shape = torch.Size(sample_shape) + a.shape
    u = torch.rand(shape, dtype=a.dtype, device=a.device).clamp_(1e-12, 1.0 - 1e-7)
    return torch.log(-torch.expm1(torch.log(u) / b)) / a


def cascade_log_probs(log_pi: Tensor, n: Tensor | float) -> tuple[Tensor, Tensor]:
    """``(log P(z_k = 1), log P(z_k = 0))`` given ``log pi_k`` and ``n`` customers:
    ``P0 = (1 - pi)^n``, ``P1 = 1 - P0`` (``n`` broadcasts against ``log_pi[..., :-1]``)."""
    n = torch.as_tensor(n, dtype=log_pi.dtype, device=log_pi.device)
    log1m_pi = torch.log(-torch.expm1(log_pi.clamp(max=-1e-12)))
    log_p0 = n.unsqueeze(-1) * log1m_pi
    log_p1 = torch.log(-torch.expm1(log_p0.clamp(max=-1e-12)))
    return log_p1, log_p0


def _relaxed_bernoulli(logits: Tensor, temperature: float, shape: torch.Size) -> Tensor:
    """Concrete draws ``sigmoid((logits + L) / temperature)``, ``L`` standard logistic."""
    u = torch.rand(shape, dtype=logits.dtype, device=logits.device).clamp_(1e-7, 1.0 - 1e-7)
    return torch.sigmoid((logits + torch.log(u) - torch.log1p(-u)) / temperature)


class IBPConfig(PriorConfig):
    """Settings of :class:`IBP` (``prior.kind: ibp``): one unit mask per hidden layer of an
    MLP under the cascading IBP's unit-level marginal (the widths of the plain layers are the
    truncations ``K``; connections between kept units are dense, not inferred);
    ``temperature`` is the masks' Concrete relaxation in SVI."""

    kind: Literal["ibp"]
    alpha: float = Field(5.0, gt=0)
    temperature: float = Field(0.5, gt=0)
    init_inclusion: Annotated[float, Field(gt=0, lt=1)] | Literal["prior"] = "prior"


class IBP(GroupScalePrior, config=IBPConfig):
    """Per-layer unit masks under the cascading IBP's unit-level marginal, with stick-breaking
    weights (the connection matrices are not inferred); see the module docstring.

    Args:
        alpha: concentration of every layer's ``Beta(alpha, 1)`` sticks (the expected first
            hidden width is about ``alpha H_D`` for ``D`` inputs).
        temperature: Concrete temperature of the relaxed masks in the fast path (a
            metaparameter of the objective; the SVI engine can anneal it, ``temperature_final``).
        init_inclusion: where ``q(z_k = 1)`` starts: a probability for every unit, or
            ``"prior"``: the prior's own inclusion probability under the initial sticks
            (:meth:`prior_inclusion`), clipped to ``[0.02, 0.98]``, so the first
            ``~alpha H_n`` units start on and the rest nearly off. Variational inference
            finds a local optimum near where it starts (compare the runs' ELBOs).
        bias_scale: sd of the biases' Normal prior.

    Needs a chain of ``Linear`` layers (an MLP): unit ``k`` of layer ``l`` is column ``k`` of
    layer ``l + 1``'s weight. The masked sites' sample values are ``w~``; the first layer's
    weights (read by the data) are plain ``N(0, 1)`` weights.
    """

    criterion = "unit"
    discrete = True

    def __init__(self, alpha: float = 5.0, temperature: float = 0.5,
                 init_inclusion: float | str = "prior", bias_scale: float = 1.0) -> None:
        super().__init__(1.0, bias_scale)
        if not alpha > 0:
            raise ValueError(f"ibp alpha must be > 0, got {alpha}")
        if not temperature > 0:
            raise ValueError(f"ibp temperature must be > 0, got {temperature}")
        if init_inclusion != "prior" and not (isinstance(init_inclusion, int | float)
                                              and 0.0 < init_inclusion < 1.0):
            raise ValueError(f"ibp init_inclusion must be in (0, 1) or 'prior', got "
                             f"{init_inclusion!r}")
        self.alpha = float(alpha)
        self.temperature = float(temperature)
        self.init_inclusion = init_inclusion if init_inclusion == "prior" else float(
            init_inclusion)
        self._enumerate = False
        self.layers: list[tuple[ParamSite, ParamSite]] = []  # (layer of the units, masked site)
        self.num_inputs = 0

    # -- wiring -------------------------------------------------------------------------------
    def bind(self, sites: list[ParamSite]) -> None:
        super().bind(sites)
        weights = [s for s in sites if s.role == "weight"]
        if any(len(s.shape) != 2 for s in weights):
            raise NotImplementedError("the ibp prior needs a chain of Linear layers (an MLP); "
                                      f"got weight shapes {[s.shape for s in weights]}")
        self.layers = []
        self._latents = []
        self.num_inputs = weights[0].shape[1] if weights else 0
        n = float(self.num_inputs)
        for prev, site in itertools.pairwise(weights):
            if prev.shape[0] != site.shape[1]:
                raise NotImplementedError(f"ibp: {site.name} reads {site.shape[1]} inputs but "
                                          f"{prev.name} has {prev.shape[0]} units")
            self.layers.append((prev, site))
            k, dims = (prev.shape[0],), (prev.dims[0],)
            if self.init_inclusion == "prior":
                incl = self.prior_inclusion(prev.shape[0], n).clamp(0.02, 0.98)
                n = float(incl.sum())
                init_logit = torch.logit(incl)
            else:
                init_logit = math.log(self.init_inclusion / (1.0 - self.init_inclusion))
            self._latents.append(LatentSite(f"{prev.layer}.v", k, dims, site.name,
                                            family="kumaraswamy", init_loc=math.log(self.alpha),
                                            init_scale=1.0))
            self._latents.append(LatentSite(f"{prev.layer}.z", k, dims, site.name,
                                            family="bernoulli", init_loc=init_logit))
        self._masked = {site.name: prev.layer for prev, site in self.layers}

    def _grouped(self, site: ParamSite) -> bool:
        return site.name in getattr(self, "_masked", {})

    def init_site_scale(self, site: ParamSite) -> float:
        return 1.0

    def prior_inclusion(self, k: int, n: float, num_draws: int = 4000, seed: int = 0
                        ) -> Tensor:
        """``P(z_k = 1) = E[1 - (1 - pi_k)^n]`` under the sticks' prior, ``k = 1 .. K``
        (Monte Carlo over ``v``, seeded: the same every call)."""
        g = torch.Generator().manual_seed(seed)
        u = torch.rand((num_draws, k), generator=g, dtype=torch.float64).clamp_(1e-300, 1.0)
        log_pi = torch.cumsum(torch.log(u) / self.alpha, -1)  # v = u^(1/alpha) ~ Beta(a, 1)
        log_p1, _ = cascade_log_probs(log_pi, torch.tensor(n, dtype=torch.float64))
        return log_p1.exp().mean(0).float()

    def prior_inclusions(self) -> dict[str, Tensor]:
        """``layer -> P(z_k = 1)`` under the prior for every IBP layer, cascading with the
        expected number of active customers of the layer before (the D inputs first)."""
        out, n = {}, float(self.num_inputs)
        for prev, _ in self.layers:
            out[prev.layer] = self.prior_inclusion(prev.shape[0], n)
            n = float(out[prev.layer].sum())
        return out

    def widths(self) -> dict[str, int]:
        """``layer -> K`` (the truncation of every IBP layer)."""
        return {prev.layer: prev.shape[0] for prev, _ in self.layers}

    # -- the model ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def enumerated(self):
        """Inside: the model sums each layer's masks out by Pyro's parallel enumeration (one
        categorical site ``<layer>.z_config`` over the ``2^K`` configurations); for MCMC."""
        too_wide = {p.layer: p.shape[0] for p, _ in self.layers
                    if p.shape[0] > MAX_ENUMERATED_UNITS}
        if too_wide:
            raise ValueError(f"exact enumeration of the ibp masks needs <= "
                             f"{MAX_ENUMERATED_UNITS} units per layer (2^K configurations); "
                             f"got {too_wide}: use SVI for wider nets")
        self._enumerate = True
        try:
            yield self
        finally:
            self._enumerate = False

    def sample(self) -> dict[str, Tensor]:
        device = self._device()
        out: dict[str, Tensor] = {}
        n: Tensor = torch.tensor(float(self.num_inputs), device=device)
        for prev, _ in self.layers:
            k = prev.shape[0]
            v = pyro.sample(f"{prev.layer}.v", dist.Beta(
                torch.full((k,), self.alpha, device=device), torch.ones(k, device=device)
            ).to_event(1))
            log_p1, log_p0 = cascade_log_probs(torch.cumsum(torch.log(v), -1), n)
            if self._enumerate:
                table = _configurations(k, device)  # (C, K)
                logits = log_p1.unsqueeze(-2) * table + log_p0.unsqueeze(-2) * (1.0 - table)
                config = pyro.sample(f"{prev.layer}.z_config",
                                     dist.Categorical(logits=logits.sum(-1)),
                                     infer={"enumerate": "parallel"})
                z = table[config]
            else:
                z = pyro.sample(f"{prev.layer}.z",
                                dist.Bernoulli(logits=log_p1 - log_p0).to_event(1))
            out[f"{prev.layer}.v"], out[f"{prev.layer}.z"] = v, z
            n = z.sum(-1)
        for s in self.sites:
            out[s.name] = pyro.sample(s.name, self.site_prior(s, out))
        return out

    def group_scale(self, site: ParamSite, values: dict[str, Tensor]) -> Tensor:
        return values[f"{self._masked[site.name]}.z"]

    def net_params(self, values: dict[str, Tensor]) -> dict[str, Tensor]:
        """``w = z w~`` on the masked sites; under enumeration ``z`` carries batch dims, and
        so do the weights it forms (``(..., out, in)``: ``sequential_forward`` batches them)."""
        out = {}
        for s in self.sites:
            v = values[s.name]
            out[s.name] = v * values[f"{self._masked[s.name]}.z"].unsqueeze(-2) \
                if self._grouped(s) else v
        return out

    def log_prob(self, values, latents=None):
        raise ValueError("the ibp prior has discrete masks: no MAP / point density (use SVI "
                         "with the meanfield guide, or NUTS with exact enumeration)")

    # -- the fast path ------------------------------------------------------------------------
    def input_scales(self, latent_loc, latent_scale, batch):
        """Relaxed masks per example, ``(batch, K)``, for each masked site."""
        return {site.name: per_example(
                    lambda n, z=latent_loc[f"{prev.layer}.z"]: self.relaxed_sample(
                        z, torch.Size((n,))), batch)
                for prev, site in self.layers}

    def relaxed_sample(self, logits: Tensor, sample_shape: torch.Size = torch.Size()) -> Tensor:
        """Concrete draws of masks with ``q(z = 1) = sigmoid(logits)`` at :attr:`temperature`."""
        return _relaxed_bernoulli(logits, self.temperature, sample_shape + logits.shape)

    def weight_precision(self, site, latent_loc, latent_scale):
        """``w~ ~ N(0, 1)``; the structure's KL is added once per layer by :meth:`kl`."""
        return self._one, self._zero, None, None

    def kl(self, q_loc, q_log_var, latent_loc=None, latent_scale=None, q_var=None, *,
           skip=()):
        return (super().kl(q_loc, q_log_var, latent_loc, latent_scale, q_var, skip=skip)
                + self.structure_kl(latent_loc, latent_scale))

    def structure_kl(self, latent_loc: dict[str, Tensor], latent_scale: dict[str, Tensor]
                     ) -> Tensor:
        """``KL(q(v) || p(v)) + E_q KL(q(z) || p(z | v, n))`` over the layers (module
        docstring): closed form in ``v``'s KL and the expectation over ``z``; one draw of
        ``v`` and of the previous layer's relaxed masks for ``pi`` and ``n``."""
        total = self._zero
        n: Tensor | float = float(self.num_inputs)
        for prev, _ in self.layers:
            lv, lz = f"{prev.layer}.v", f"{prev.layer}.z"
            a, b = torch.exp(latent_loc[lv]), latent_scale[lv]
            kl_v = kl_kumaraswamy_beta1(a, b, self.alpha).sum()
            log_pi = torch.cumsum(kumaraswamy_log_rsample(a, b), -1)
            log_p1, log_p0 = cascade_log_probs(log_pi, n)
            logits = latent_loc[lz]
            theta = torch.sigmoid(logits)
            log_t, log_1mt = F.logsigmoid(logits), F.logsigmoid(-logits)
            kl_z = (theta * (log_t - log_p1) + (1.0 - theta) * (log_1mt - log_p0)).sum()
            total = total + kl_v + kl_z
            n = self.relaxed_sample(logits).sum()
        return total

    def scale_moments(self, site, latent_loc, latent_scale):
        """``E[z] = E[z^2] = theta`` (Bernoulli)."""
        theta = torch.sigmoid(latent_loc[f"{self._masked[site.name]}.z"])
        return theta, theta

    def unit_log_alpha(self, site, m, var, latent_loc, latent_scale):
        """Unit score ``log q(z = 0) - log q(z = 1) = -logit theta`` of the units a site reads
        (removed at ``>= 0``: inclusion probability at most 1/2); ``-inf`` (always kept) for
        the first layer's inputs."""
        if not self._grouped(site):
            return torch.full((site.shape[1],), -math.inf, dtype=m.dtype)
        return -latent_loc[f"{self._masked[site.name]}.z"].to(m.dtype)

    @staticmethod
    def configuration(k: int, index: Tensor) -> Tensor:
        """The mask vector of configuration ``index`` of :meth:`enumerated`'s ``2^k``."""
        return _configurations(k, index.device)[index]

    def unit_scores_from_inclusion(self, site: ParamSite, inclusion: dict[str, Tensor]
                                   ) -> Tensor:
        """:meth:`unit_log_alpha` from posterior inclusion frequencies ``P(z_k = 1 | D)``
        (the mean of sampled masks, MCMC)."""
        if not self._grouped(site):
            return torch.full((site.shape[1],), -math.inf, dtype=torch.float64)
        p = inclusion[f"{self._masked[site.name]}.z"].double().clamp(1e-9, 1 - 1e-9)
        return -torch.logit(p)

    def extra_repr(self) -> str:
        return (f"alpha={self.alpha}, temperature={self.temperature}, "
                f"init_inclusion={self.init_inclusion}, bias_scale={self.bias_scale}")


_CONFIG_CACHE: dict[tuple, Tensor] = {}


def _configurations(k: int, device: torch.device) -> Tensor:
    """All ``2^k`` binary vectors of length ``k``, ``(2^k, k)`` (row ``c`` is ``c`` in binary,
    unit 1 the most significant bit)."""
    key = (k, device)
    if key not in _CONFIG_CACHE:
        c = torch.arange(2 ** k, device=device).unsqueeze(-1)
        bits = 2 ** torch.arange(k - 1, -1, -1, device=device)
        _CONFIG_CACHE[key] = ((c // bits) % 2).float()
    return _CONFIG_CACHE[key]
