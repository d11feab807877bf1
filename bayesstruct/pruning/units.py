"""Structured decisions (BC-GNJ, BC-GHS, ARD and IBP unit groups): which units survive, and the
weight masks.

* Sparse VD (per weight): ``log alpha = log sigma^2 - log theta^2`` per weight; prune at
  ``log alpha >= 3`` (Molchanov et al. 2017).
* Group priors (BC-GNJ, BC-GHS): one ``log alpha_g`` per input unit / input channel of every
  layer (:meth:`LogUniform.unit_log_alpha`, :meth:`Horseshoe.unit_log_alpha`); a unit is kept
  when ``log alpha_g`` is below its layer's threshold. The output units of layer ``l`` are the
  input units of layer ``l + 1`` (through a ``Flatten``, channel ``c`` of a conv owns the
  ``k`` consecutive columns ``c k .. c k + k - 1`` of the next Linear and survives when any of
  them does), and

      mask_l[o, i, ...] = keep_out_l[o] and keep_in_l[i]

  (Louizos et al. 2017: the outer product of the output- and input-unit masks). The network's
  outputs (the last layer's rows) are always kept.

**Effective weights.** Group-scale priors (BC-GNJ, BC-GHS, IBP) store ``w~`` at the weight's
sample site; the network's weight is ``w = theta_g w~`` (``theta = z``, ``s z`` or the mask:
:meth:`Prior.net_params`). Every per-weight criterion reads ``w``, not ``w~``: under ``q``
through its moments (:func:`effective_moments`), from a sampler through the draws of ``w``
(:func:`effective_draws`, ``net_params`` applied to each draw). Priors whose sites are the
weights (Gaussian, ARD, per-weight log-uniform) read their sites as before.

* Per weight from draws: ``log alpha = log Var^[w] - log E^[w]^2`` (sample moments of the
  draws of ``w``), the moment form of Molchanov et al.'s ``sigma^2 / theta^2``.
* Unit rule from draws (continuous group-scale priors, NUTS / SGLD / pSGLD):

      log alpha_g = -log sum_{j in g} E^[w_gj]^2 / Var^[w_gj],

  the sample-moment version of :meth:`Horseshoe.unit_log_alpha`: with a Gaussian fit to each
  effective weight's draws, ``log rho_g = sum_j log rho_gj = -exp(-log alpha_g) / 2`` (the
  group's relative density at 0). It reads the network weights, so it does not depend on how
  the magnitude is split between ``theta_g`` and ``w~``, and it is on the scale of the
  variational unit scores (a unit is removed at ``log alpha_g >= 0`` iff ``rho_g >= e^(-1/2)``).
  Sampled IBP masks use their inclusion frequencies instead: ``-logit P^(z_g = 1)``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import UserInputError
from ..layers import family_of
from ..models.bayesnet import BayesianNet
from ..posterior import InferenceData, point_estimate, weight_sites
from ..priors.base import Prior
from ..priors.group import GroupScalePrior
from .decisions import check_matches
from .density import normal_weight_factors

#: floor of a variance in the scores (a constant draw or a point mass): no division by zero
_TINY = np.finfo(np.float64).tiny

__all__ = ["effective_draw_moments", "effective_draws", "effective_moments",
           "inclusion_probabilities", "inferred_widths", "log_alpha", "mean_network", "mean_values",
           "sampled", "scaled_sites", "unit_keep", "unit_log_alpha", "unit_scores_from_draws",
           "variational_tensors", "weight_masks_from_units"]


def variational_tensors(post: InferenceData) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """``(loc, scale)`` of every variational factor, as float64 tensors."""
    if "variational_loc" not in post.groups():
        raise ValueError("this posterior has no variational factors (engine "
                         f"{post.attrs.get('engine', '?')}); structured decisions need them")
    loc = {k: torch.as_tensor(v.values, dtype=torch.float64)
           for k, v in post.variational_loc.data_vars.items()}
    scale = {k: torch.as_tensor(v.values, dtype=torch.float64)
             for k, v in post.variational_scale.data_vars.items()}
    return loc, scale


def sampled(post: InferenceData) -> bool:
    """A posterior of draws from a sampler (MCMC, SGLD): more than one draw, no guide."""
    sizes = post.posterior.sizes
    return post.attrs.get("engine") != "svi" and sizes["chain"] * sizes["draw"] > 1


def scaled_sites(model: BayesianNet) -> list[str]:
    """The weight sites whose network weight is the site's value times latent group scales
    (``w = theta_g w~``, :class:`~bayesstruct.priors.group.GroupScalePrior`); empty for priors
    whose sites are the weights."""
    prior = model.prior
    if not isinstance(prior, GroupScalePrior):
        return []
    return [s.name for s in model.weight_sites if prior._grouped(s)]


def _draw_moments(draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(draws, dtype=np.float64)
    return d.mean(0), d.var(0, ddof=1) if d.shape[0] > 1 else np.zeros(d.shape[1:])


def _draw_index(post: InferenceData, max_draws: int | None) -> np.ndarray:
    n = post.posterior.sizes["chain"] * post.posterior.sizes["draw"]
    if max_draws is not None and n > max_draws:
        return np.linspace(0, n - 1, max_draws).round().astype(int)
    return np.arange(n)


def _flat(post: InferenceData, name: str) -> np.ndarray:
    da = post.posterior[name]
    return da.values.reshape(-1, *da.shape[2:])


def _iter_effective(post: InferenceData, model: BayesianNet, names: list[str],
                    idx: np.ndarray):
    """Yield, draw by draw, ``{site: w}`` (float64) of the group-scaled sites ``names``:
    ``net_params`` takes one draw's values (unbatched)."""
    prior = model.prior
    latents = [ls.name for ls in prior.latents]
    missing = [k for k in latents + names if k not in post.posterior]
    if missing:
        raise ValueError(f"the posterior has no draws of {', '.join(missing)}: the network "
                         "weights of a group-scale prior need the draws of its scales")
    stored = {k: _flat(post, k) for k in latents + names}
    rest = {s.name: torch.zeros(s.shape, dtype=torch.float64) for s in prior.sites
            if s.name not in stored}
    with torch.no_grad():
        for i in idx:
            values = {k: torch.as_tensor(v[i], dtype=torch.float64) for k, v in stored.items()}
            weights = prior.net_params({**rest, **values})
            yield {k: weights[k].numpy(force=True) for k in names}


def effective_draws(post: InferenceData, model: BayesianNet, sites: list[str] | None = None,
                    max_draws: int | None = None) -> dict[str, np.ndarray]:
    """``site -> draws of the network weight``, shape ``(chain * draw, *site_shape)``: the
    prior's :meth:`~bayesstruct.priors.base.Prior.net_params` applied to every draw of the
    posterior (``w = theta_g w~`` for the group-scale priors, float64; the site's own draws
    for the others, as stored). ``max_draws`` thins evenly over chains x draws. The posterior
    must be ``model``'s (:func:`~bayesstruct.pruning.decisions.check_matches`)."""
    check_matches(post, model)
    names = sites if sites is not None else [s.name for s in model.weight_sites]
    scaled = set(scaled_sites(model))
    idx = _draw_index(post, max_draws)
    out = {k: _flat(post, k)[idx] for k in names if k not in scaled}
    todo = [k for k in names if k in scaled]
    if todo:
        res = {k: np.empty((idx.size, *post.posterior[k].shape[2:])) for k in todo}
        for i, weights in enumerate(_iter_effective(post, model, todo, idx)):
            for k in todo:
                res[k][i] = weights[k]
        out.update(res)
    return out


def effective_draw_moments(post: InferenceData, model: BayesianNet,
                           sites: list[str] | None = None
                           ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``site -> (mean, variance)`` over the draws of the network weight (the variance with
    ``n - 1``), as from :func:`effective_draws` but two passes over the draws without holding
    them (the group-scaled sites)."""
    check_matches(post, model)
    names = sites if sites is not None else [s.name for s in model.weight_sites]
    scaled = set(scaled_sites(model))
    idx = _draw_index(post, None)
    out = {k: _draw_moments(_flat(post, k)) for k in names if k not in scaled}
    todo = [k for k in names if k in scaled]
    if not todo:
        return out
    total = {k: 0.0 for k in todo}
    for w in _iter_effective(post, model, todo, idx):
        for k in todo:
            total[k] = total[k] + w[k]
    mean = {k: v / idx.size for k, v in total.items()}
    sq = {k: 0.0 for k in todo}
    for w in _iter_effective(post, model, todo, idx):
        for k in todo:
            sq[k] = sq[k] + (w[k] - mean[k]) ** 2
    for k in todo:
        var = sq[k] / (idx.size - 1) if idx.size > 1 else np.zeros_like(mean[k])
        out[k] = (mean[k], var)
    return out


def log_alpha(post: InferenceData, sites: list[str] | None = None,
              model: BayesianNet | None = None) -> dict[str, np.ndarray]:
    """Per-weight ``log alpha = log Var[w] - log E[w]^2`` (unclipped).

    Without ``model``: of the sites' Normal factors, ``log sigma^2 - log theta^2``. With
    ``model`` the weights are the network's (module docstring): the factors' for priors whose
    sites are the weights (the same numbers); for the group-scale sites the moments of
    ``w = theta_g w~`` under ``q`` (:func:`effective_moments`); for a sampler's draws (no
    variational factors) the draws' mean and variance of ``w`` (:func:`effective_draws`)."""
    if model is not None and "variational_loc" not in post.groups() and sampled(post):
        names = sites if sites is not None else weight_sites(post)
        out = {}
        for k, (mean, var) in effective_draw_moments(post, model, names).items():
            out[k] = np.log(np.maximum(var, _TINY)) - np.log(mean * mean + 1e-300)
        return out
    out = {}
    for name, m, s, _ in normal_weight_factors(post):
        if sites is not None and name not in sites:
            continue
        out[name] = 2.0 * np.log(s) - np.log(m * m + 1e-300)
    scaled = [k for k in scaled_sites(model) if k in out] if model is not None else []
    if scaled:
        moments = effective_moments(post, model)
        for k in scaled:
            mean, var = moments[k]
            out[k] = np.log(np.maximum(var, _TINY)) - np.log(mean * mean + 1e-300)
    return out


def unit_scores_from_draws(post: InferenceData, model: BayesianNet) -> dict[str, np.ndarray]:
    """``weight site -> log alpha_g`` per input unit from a sampler's draws of a continuous
    group-scale prior: ``-log sum_{j in g} E^[w_gj]^2 / Var^[w_gj]`` over the draws of the
    network weights (module docstring), unless the prior scores its groups from the draws of
    its scales itself (the horseshoe's ``unit_rule="log_scale"``: ``-mean log theta_g``)."""
    grouped = [s for s in model.weight_sites if s.group_dim is not None]
    out = {}
    if type(model.prior).unit_scores_from_draws is not Prior.unit_scores_from_draws:
        draws = {ls.name: torch.as_tensor(post.posterior[ls.name].values,
                                          dtype=torch.float64).flatten(0, 1)
                 for ls in model.prior.latents}  # read only for a prior with its own rule
        with torch.no_grad():
            for s in grouped:
                score = model.prior.unit_scores_from_draws(s, draws)
                if score is not None:
                    out[s.name] = score.numpy(force=True)
    grouped = [s for s in grouped if s.name not in out]
    moments = effective_draw_moments(post, model, [s.name for s in grouped])
    for s in grouped:
        mean, var = moments[s.name]
        snr = mean * mean / np.maximum(var, _TINY)
        dims = tuple(d for d in range(snr.ndim) if d != s.group_dim)
        with np.errstate(divide="ignore"):
            out[s.name] = -np.log(snr.sum(axis=dims))
    return out


def unit_log_alpha(post: InferenceData, model: BayesianNet) -> dict[str, np.ndarray]:
    """``weight site -> log alpha_g`` per input unit / channel, from the model's prior: its
    variational rule (:meth:`LogUniform.unit_log_alpha`, :meth:`Horseshoe.unit_log_alpha`,
    :meth:`IBP.unit_log_alpha`; for priors without unit scales, ARD or Gaussian, the group's
    joint signal-to-noise ratio, :meth:`Prior.unit_log_alpha`) under ``q``; for a sampler's
    draws the IBP masks' inclusion frequencies, or the effective weights' rule of the module
    docstring (:func:`unit_scores_from_draws`) for the continuous priors."""
    check_matches(post, model)
    prior = model.prior
    if prior.criterion != "unit" and not any(s.group_dim is not None
                                             for s in model.weight_sites):
        raise ValueError(f"no weight of this network has unit groups; unit decisions with "
                         f"prior {prior.kind!r} need layers with units (Linear, ConvNd, "
                         "recurrent)")
    if prior.discrete and "variational_loc" not in post.groups():  # sampled masks (MCMC)
        inclusion = {ls.name: torch.as_tensor(post.posterior[ls.name].mean(("chain", "draw"))
                                              .values) for ls in prior.latents
                     if ls.family == "bernoulli"}
        return {s.name: prior.unit_scores_from_inclusion(s, inclusion).numpy(force=True)
                for s in model.weight_sites if s.group_dim is not None}
    if "variational_loc" not in post.groups() and sampled(post):  # draws of w = theta w~
        return unit_scores_from_draws(post, model)
    loc, scale = variational_tensors(post)
    out = {}
    with torch.no_grad():
        for s in model.weight_sites:
            if s.group_dim is None:
                continue
            la = prior.unit_log_alpha(s, loc[s.name], scale[s.name] ** 2, loc, scale)
            out[s.name] = la.numpy(force=True)
    return out


def effective_moments(post: InferenceData, model: BayesianNet
                      ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``site -> (E[w], Var[w])`` of the *network* weights under ``q`` (group scales folded
    in, :meth:`Prior.effective_moments`). The posterior must be ``model``'s
    (:func:`~bayesstruct.pruning.decisions.check_matches`)."""
    check_matches(post, model)
    loc, scale = variational_tensors(post)
    out = {}
    with torch.no_grad():
        for s in model.weight_sites:
            mean, var = model.prior.effective_moments(s, loc[s.name], scale[s.name] ** 2,
                                                      loc, scale)
            out[s.name] = (mean.numpy(force=True), var.numpy(force=True))
    return out


def mean_values(post: InferenceData, model: BayesianNet,
                device: torch.device | str | None = None) -> dict[str, Tensor]:
    """The site values of the posterior-mean network, as float32 tensors on ``device``
    (default: the network's): :func:`~bayesstruct.posterior.point_estimate` (the sites' and
    latents' means), for a mean-field ``q`` passed through :meth:`Prior.mean_site_values` so
    that :meth:`BayesianNet.predict` forms ``E_q[w]`` (the regularised horseshoe's
    ``E_q[slab(s z)] E_q[w~]``, not ``slab(E[s] E[z]) E[w~]``). Every evaluation of "the
    posterior-mean network" (test metrics, pruning and SNR curves, threshold calibration)
    reads these. The posterior must be ``model``'s."""
    check_matches(post, model)
    if device is None:
        device = next(model.net.parameters()).device
    values = {k: torch.as_tensor(v, dtype=torch.float32, device=device)
              for k, v in point_estimate(post).items()}
    if "variational_loc" in post.groups():
        loc, scale = variational_tensors(post)
        with torch.no_grad():
            values = model.prior.mean_site_values(values, loc, scale)
        values = {k: v.to(device=device, dtype=torch.float32) for k, v in values.items()}
    return values


def mean_network(post: InferenceData, model: BayesianNet) -> nn.Module:
    """A copy of the plain network holding the posterior-mean weights (group scales folded
    in: under a mean-field ``q`` the expectation of the weights themselves,
    :meth:`Prior.mean_net_params`, e.g. ``E_q[slab(s z)] E_q[w~]`` for the regularised
    horseshoe; for draws :meth:`Prior.net_params` of their means, :func:`mean_values`) and
    the network's buffers, in evaluation mode: what :func:`~bayesstruct.pruning.prune`
    shrinks. The posterior must be ``model``'s
    (:func:`~bayesstruct.pruning.decisions.check_matches`)."""
    net = copy.deepcopy(model.net)
    device = next(net.parameters()).device
    values = mean_values(post, model, device)
    with torch.no_grad():  # the buffers (normalisation statistics) come with the copy
        net.load_state_dict({**net.state_dict(), **model.prior.net_params(values)})
    return net.eval()


def _layer(site: str) -> str:
    return site.rsplit(".", 1)[0]


def unit_keep(scores: Mapping[str, np.ndarray], threshold: float,
              layer_thresholds: Mapping[str, float] | None = None) -> dict[str, np.ndarray]:
    """Keep-mask per input unit: ``log alpha_g < threshold`` (per-layer overrides by layer
    name, e.g. ``{"fc1": -1.0}``; ``+inf`` keeps every unit). NaN thresholds are refused."""
    layer_thresholds = dict(layer_thresholds or {})
    for name, t in [("threshold", threshold)] + [(f"layer_thresholds[{k!r}]", v)
                                                  for k, v in layer_thresholds.items()]:
        if np.isnan(t):
            raise UserInputError(f"{name}={t!r} is not a number")
    unknown = set(layer_thresholds) - {_layer(k) for k in scores}
    if unknown:
        raise ValueError(f"layer_thresholds names unknown layers {sorted(unknown)}; layers: "
                         f"{sorted({_layer(k) for k in scores})}")
    return {k: np.asarray(v) < layer_thresholds.get(_layer(k), threshold)
            for k, v in scores.items()}


def weight_masks_from_units(model: BayesianNet, keep_in: Mapping[str, np.ndarray]
                            ) -> dict[str, np.ndarray]:
    """Weight keep-masks from the input units each weight site keeps (its own unit groups,
    along :attr:`ParamSite.group_dim`).

    In an ``nn.Sequential`` chain of layers whose rows are output units (Linear, ConvNd:
    :attr:`LayerFamily.output_dim`), a layer's output unit is also removed, row and all, when
    the next layer drops it as an input (the outer product of the two masks; channels
    flattened into a Linear map onto consecutive columns). Elsewhere (a custom module, an
    embedding, a recurrent or attention layer) which layer reads which unit is not known
    from the order of the parameters, so only each layer's own input groups are masked: a
    unit a layer stops reading contributes nothing to it either way."""
    sites = [s for s in model.weight_sites if s.group_dim is not None]
    chain = isinstance(model.net, nn.Sequential)
    rows = {s.name: _output_dim(model.net, s) == 0 for s in sites}
    masks = {}
    for i, s in enumerate(sites):
        gd = s.group_dim
        k_in = np.asarray(keep_in.get(s.name, np.ones(s.shape[gd], dtype=bool)), dtype=bool)
        shape = [1] * len(s.shape)
        shape[gd] = s.shape[gd]
        mask = np.broadcast_to(k_in.reshape(shape), s.shape)
        nxt = sites[i + 1] if i + 1 < len(sites) else None
        if chain and nxt is not None and rows[s.name] and rows[nxt.name] and gd == 1:
            n_out = s.shape[0]
            k_next = np.asarray(keep_in.get(nxt.name, np.ones(nxt.shape[1], dtype=bool)),
                                dtype=bool)
            if k_next.size == n_out:
                k_out = k_next
            elif k_next.size % n_out == 0:  # conv channels flattened into a Linear
                k_out = k_next.reshape(n_out, -1).any(axis=1)
            else:
                raise ValueError(f"cannot map {s.name}'s {n_out} outputs onto {nxt.name}'s "
                                 f"{k_next.size} inputs")
            mask = mask & k_out.reshape(n_out, *([1] * (len(s.shape) - 1)))
        masks[s.name] = np.array(mask, dtype=bool)
    return masks


def _output_dim(net: nn.Module, site) -> int | None:
    family = family_of(net.get_submodule(site.layer))
    return None if family is None else family.output_dim


def inclusion_probabilities(post: InferenceData, model: BayesianNet) -> dict[str, np.ndarray]:
    """``layer -> P(z_k = 1 | D)`` of a prior's discrete unit masks (IBP): ``q``'s
    Bernoulli probabilities for SVI, the draws' frequencies for a sampler."""
    out = {}
    for ls in model.prior.latents:
        if ls.family != "bernoulli":
            continue
        layer = ls.name.rsplit(".", 1)[0]
        if "variational_loc" in post.groups():
            out[layer] = 1.0 / (1.0 + np.exp(-post.variational_loc[ls.name].values))
        else:
            out[layer] = post.posterior[ls.name].mean(("chain", "draw")).values
    return out


def inferred_widths(post: InferenceData, model: BayesianNet) -> dict[str, dict[str, float]]:
    """Per IBP layer: the truncation ``K``, the units kept (``P(z_k = 1) > 1/2``) and the
    posterior expected width ``sum_k P(z_k = 1)``."""
    return {layer: {"truncation": int(p.size), "active": int((p > 0.5).sum()),
                    "expected": float(p.sum())}
            for layer, p in inclusion_probabilities(post, model).items()}
