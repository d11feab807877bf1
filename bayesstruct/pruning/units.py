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
from ..posterior import InferenceData, point_estimate
from .decisions import check_matches
from .density import normal_weight_factors

__all__ = ["effective_moments", "inclusion_probabilities", "inferred_widths", "log_alpha",
           "mean_network", "unit_keep", "unit_log_alpha", "variational_tensors",
           "weight_masks_from_units"]


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


def log_alpha(post: InferenceData, sites: list[str] | None = None) -> dict[str, np.ndarray]:
    """Per-weight ``log alpha = log sigma^2 - log theta^2`` of the Normal factors (unclipped)."""
    out = {}
    for name, m, s, _ in normal_weight_factors(post):
        if sites is not None and name not in sites:
            continue
        out[name] = 2.0 * np.log(s) - np.log(m * m + 1e-300)
    return out


def unit_log_alpha(post: InferenceData, model: BayesianNet) -> dict[str, np.ndarray]:
    """``weight site -> log alpha_g`` per input unit / channel, from the model's group prior."""
    check_matches(post, model)
    prior = model.prior
    if prior.criterion != "unit":
        raise ValueError(f"prior {prior.kind!r} has no unit scales; unit decisions need "
                         "log_uniform (level: unit), horseshoe or ibp")
    if prior.discrete and "variational_loc" not in post.groups():  # sampled masks (MCMC)
        inclusion = {ls.name: torch.as_tensor(post.posterior[ls.name].mean(("chain", "draw"))
                                              .values) for ls in prior.latents
                     if ls.family == "bernoulli"}
        return {s.name: prior.unit_scores_from_inclusion(s, inclusion).numpy()
                for s in model.weight_sites if s.group_dim is not None}
    loc, scale = variational_tensors(post)
    out = {}
    with torch.no_grad():
        for s in model.weight_sites:
            if s.group_dim is None:
                continue
            la = prior.unit_log_alpha(s, loc[s.name], scale[s.name] ** 2, loc, scale)
            out[s.name] = la.numpy()
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
            out[s.name] = (mean.numpy(), var.numpy())
    return out


def mean_network(post: InferenceData, model: BayesianNet) -> nn.Module:
    """A copy of the plain network holding the posterior-mean weights (group scales folded
    in by :meth:`Prior.net_params`) and the network's buffers, in evaluation mode: what
    :func:`~bayesstruct.pruning.prune` shrinks. The posterior must be ``model``'s
    (:func:`~bayesstruct.pruning.decisions.check_matches`)."""
    check_matches(post, model)
    net = copy.deepcopy(model.net)
    device = next(net.parameters()).device
    values = {k: torch.as_tensor(v, dtype=torch.float32, device=device)
              for k, v in point_estimate(post).items()}
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
