"""Engine output -> ArviZ ``InferenceData``; netCDF save/load.

This module and :mod:`bayesstruct.diagnostics` are the only ones that import ArviZ: ArviZ 1.x
moves to ``xarray.DataTree`` (the ``arviz-base`` package), so the switch stays in two files
(:func:`to_datatree` already writes that layout).

Groups written here (which engine writes which: ``svi`` = SVI with any guide, ``mcmc`` = NUTS
and HMC, ``sgld`` = SGLD and pSGLD):

* ``posterior`` (all) -- draws of every sample site, dims ``(chain, draw, <layer>_out,
  <layer>_in, ...)``; an SVI posterior holds draws from the guide (one chain);
* ``variational_loc`` / ``variational_scale`` (svi) -- the guide's factors (variables named like
  the posterior's; attrs ``family`` and, for weights, ``prior_mode``), so the relative density
  has a closed form; a Pyro ``AutoNormal`` guide's factors are stored the same way (``Normal``);
* ``log_likelihood`` (all) -- ``obs``: ``log p(y_i | theta_s, x_i)`` per stored draw and
  training observation, dims ``(chain, draw, obs_id)``, for ``az.loo`` / ``az.waic``. Computed
  after the fit in evaluation mode, in batches; for training sets larger than
  ``log_likelihood_obs`` (default :data:`LOG_LIKELIHOOD_OBS`) only that many evenly spaced
  observations are kept (their ``obs_id`` are the training indices; attr ``obs_subset``), so
  LOO/WAIC then estimate the elpd of that subset; an engine's posterior also keeps at most
  :data:`LOG_LIKELIHOOD_VALUES` numbers (``chains x draws x obs``), so long chains keep fewer
  observations (at least 100; :func:`add_log_likelihood` recomputes the group over any
  number). The cost: one forward pass per stored draw over those observations (on the
  model's device), and ``chains x draws x obs`` float64 numbers on disk (100 guide draws x
  10 000 observations: 8 MB);
* ``sample_stats`` -- ``lp`` (the log joint density at each draw: the potential energy's
  negative for mcmc, the minibatch estimate for sgld, the full-data value for svi, written
  only when ``log_likelihood`` covers every observation),
  and for mcmc ``energy``, ``acceptance_rate``, ``n_steps``, ``diverging``, ``step_size`` and,
  for NUTS, ``tree_depth`` (so ``az.bfmi`` and ``az.plot_energy`` apply to NUTS/HMC only); the
  step size ``lr`` for sgld;
* ``prior`` (all, proper priors only) -- :data:`PRIOR_DRAWS` draws (fewer for a network of
  over :data:`PRIOR_VALUES` / 100 parameters) of every sample site from the prior as it
  stands after the fit (empirical-Bayes hyperparameters included; point-estimated parameters
  left out); an improper prior (log-uniform) has none, and the attribute ``prior_group``
  says why;
* ``hyperparameters`` (priors with point hyperparameters) -- e.g. the empirical-Bayes
  precisions of ARD (``fc1.weight.alpha``) or the Gaussian prior's ``loc``/``var``, named dims;
* ``observed_data`` (all) -- the training targets ``obs`` (dim ``obs_id``; coord ``class``
  with the class names where the data set has them);
* ``constant_data`` (all) -- the training inputs ``x`` of the observations in
  ``log_likelihood``, flattened to ``(obs_id, feature)`` (image inputs: ``feature`` labels like
  ``r3c14``, row 3 and column 14, or ``ch1r3c14``), when they hold at most
  :data:`CONSTANT_DATA_VALUES` numbers; else their per-feature ``x_mean`` and ``x_std``;
* ``optimization`` (svi) -- the per-epoch training log (dim ``epoch``);
* ``posterior_predictive`` (on request: :func:`bayesstruct.predict.add_posterior_predictive`)
  -- sampled labels ``obs`` per draw, dims ``(chain, draw, obs_id)``, for ``az.plot_ppc``.

Every group carries the attributes ``inference_library`` (``pyro``),
``inference_library_version``, ``bayesstruct_version`` and ``created_at``.

Coordinates: the unit dims of the sites (``fc1_out``, ``fc1_in``) are unit indices, except the
first layer's input dim when it reads the flattened input features (their labels, ``r3c14``)
and the last layer's output dim of a classifier (the class names). All of it is plain
netCDF (strings, numbers), written with h5netcdf.

ArviZ's ``loo``, ``waic``, ``summary`` and (after ``add_posterior_predictive``) ``plot_ppc``
apply to every engine's posterior; ``bfmi`` and ``plot_energy`` to NUTS/HMC only (SVI and
SGLD/pSGLD have no Hamiltonian, so no ``energy`` is recorded for them).
"""

from __future__ import annotations

import datetime
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from .files import atomic_path

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az

__all__ = ["CONSTANT_DATA_VALUES", "LOG_LIKELIHOOD_OBS", "LOG_LIKELIHOOD_VALUES", "PRIOR_DRAWS",
           "PRIOR_VALUES", "InferenceData",
           "add_log_likelihood", "add_variational", "autonormal_factors", "feature_labels",
           "from_draws", "from_guide", "load", "mode_array", "point_estimate", "save", "stamp",
           "to_datatree", "training_data", "weight_sites"]

InferenceData = az.InferenceData

#: observations kept in the ``log_likelihood`` group by default (all of them up to this size)
LOG_LIKELIHOOD_OBS = 10_000
#: the most numbers (draws x observations) the ``log_likelihood`` group of an engine's
#: posterior holds by default (32 MB of float64): 4000 pSGLD draws keep 1048 observations
LOG_LIKELIHOOD_VALUES = 2**22
#: draws in the ``prior`` group (fewer for networks too large for :data:`PRIOR_VALUES`)
PRIOR_DRAWS = 100
#: the most numbers the ``prior`` group holds (32 MB of float32)
PRIOR_VALUES = 2**23
#: the most input values ``constant_data`` stores as such (8 MB of float32); above, a summary
CONSTANT_DATA_VALUES = 2**21


def _np(t: torch.Tensor | np.ndarray) -> np.ndarray:
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def _mode_attr(mode) -> float | np.ndarray:
    """A prior mode as a netCDF attribute: a float, or a 1-D array (one per group)."""
    if isinstance(mode, torch.Tensor) and mode.dim() > 0:
        return _np(mode).astype(np.float64).reshape(-1)
    return float(mode)


def mode_array(attr, shape: tuple[int, ...]) -> float | np.ndarray:
    """The ``prior_mode`` attribute broadcastable against a site of ``shape``: a float, or the
    per-group values laid along the group axis (dim 1, the input units)."""
    values = np.asarray(attr, dtype=np.float64)
    if values.size == 1:
        return float(values.reshape(()))
    view = [1] * len(shape)
    view[1] = values.size
    return values.reshape(view)


def _site_dims(model) -> dict[str, list[str]]:
    dims = {s.name: list(s.dims) for s in model.sites}
    dims.update({ls.name: list(ls.dims) for ls in model.prior.latents})
    return dims


def feature_labels(input_shape: Sequence[int] | None, n_features: int) -> list[str] | None:
    """Names of the flattened input features: ``r<row>c<col>`` for one-channel images
    ``(1, H, W)``, ``ch<k>r<row>c<col>`` for several channels; ``None`` for other inputs
    (their features keep integer coordinates)."""
    if input_shape is None or len(input_shape) != 3 or int(np.prod(input_shape)) != n_features:
        return None
    c, h, w = (int(v) for v in input_shape)
    pre = (lambda k: "") if c == 1 else (lambda k: f"ch{k}")
    return [f"{pre(k)}r{r}c{q}" for k in range(c) for r in range(h) for q in range(w)]


def training_data(data, train) -> dict[str, object]:
    """The keyword arguments of :func:`from_draws` / :func:`from_guide` that describe the
    training data: targets, inputs, and (for a :class:`~bayesstruct.data.Dataset`) the class
    names and the input shape."""
    pairs = bool(getattr(data, "pairs", False))
    return {"observed": train.y, "inputs": train.x,
            "classes": getattr(data, "classes", None),
            "input_shape": None if pairs else getattr(data, "input_shape", None)}


def _coords(model, classes: Sequence[str] | None, features: list[str] | None
            ) -> dict[str, list]:
    """Meaningful coordinates of the unit dims: the first layer's input dim, when it reads the
    flattened input features, gets their labels; the last weight's output dim, when it has one
    entry per class, the class names."""
    out: dict[str, list] = {}
    weights = [s for s in model.weight_sites if len(s.shape) == 2]
    if not weights:
        return out
    first, last = weights[0], weights[-1]
    if features is not None and first is model.weight_sites[0] and \
            first.shape[1] == len(features):
        out[first.dims[1]] = list(features)
    if classes is not None and getattr(model.likelihood, "classifier", False) and \
            last.shape[0] == len(classes) and last is model.weight_sites[-1]:
        out[last.dims[0]] = [str(c) for c in classes]
    return out


def _dataset(values: Mapping[str, np.ndarray], dims: Mapping[str, list[str]],
             coords: Mapping[str, list]) -> xr.Dataset:
    used = {d for k in values for d in dims[k]}
    return az.dict_to_dataset(dict(values), dims={k: dims[k] for k in values},
                              coords={d: v for d, v in coords.items() if d in used},
                              library=None)


def from_draws(model, draws: Mapping[str, torch.Tensor | np.ndarray], *,
               observed: torch.Tensor | None = None, inputs: torch.Tensor | None = None,
               sample_stats: Mapping[str, np.ndarray] | None = None,
               history: Sequence[Mapping[str, float]] | None = None,
               attrs: Mapping[str, object] | None = None,
               classes: Sequence[str] | None = None,
               input_shape: Sequence[int] | None = None,
               log_likelihood_obs: int | None = LOG_LIKELIHOOD_OBS,
               prior_draws: int = PRIOR_DRAWS) -> InferenceData:
    """Build an ``InferenceData`` from ``draws[name]`` of shape ``(chain, draw, *site_shape)``.

    With ``inputs`` and ``observed`` (the training split) the ``log_likelihood`` and
    ``constant_data`` groups are written, and ``lp`` when ``sample_stats`` has none (the log
    joint at each draw, over the whole training set: only when ``log_likelihood`` covers every
    observation). ``log_likelihood_obs``: the most observations kept there (``None``: all).
    ``classes`` and ``input_shape`` give coordinates meaning (module docstring);
    ``prior_draws`` the size of the ``prior`` group (0: none)."""
    dims = _site_dims(model)
    features = None
    if inputs is not None:
        features = feature_labels(input_shape, int(np.prod(inputs.shape[1:])))
    coords = _coords(model, classes, features)
    posterior = _dataset({k: _np(v) for k, v in draws.items()}, dims, coords)
    for s in model.weight_sites:  # the numerator point of a sample-based rho
        if s.name in posterior:
            posterior[s.name].attrs["prior_mode"] = _mode_attr(model.prior.mode(s))
    groups: dict[str, xr.Dataset] = {"posterior": posterior}
    if observed is not None:
        obs = xr.Dataset({"obs": (("obs_id",), _np(observed))},
                         coords={"obs_id": np.arange(len(observed))})
        if classes is not None:
            obs = obs.assign_coords({"class": [str(c) for c in classes]})
        groups["observed_data"] = obs
    stats = dict(sample_stats or {})
    meta = {"weight_sites": ",".join(s.name for s in model.weight_sites), **(attrs or {})}
    if inputs is not None and observed is not None:
        cap = log_likelihood_obs
        if cap is not None:  # long chains: fewer observations, so disk and time stay bounded
            n_draws = posterior.sizes["chain"] * posterior.sizes["draw"]
            cap = min(cap, max(100, LOG_LIKELIHOOD_VALUES // n_draws))
        idx = _obs_subset(len(observed), cap)
        loglik = _pointwise_log_likelihood(model, draws, inputs[idx], observed[idx])
        groups["log_likelihood"] = xr.Dataset(
            {"obs": (("chain", "draw", "obs_id"), loglik)},
            coords={"chain": posterior.chain.values, "draw": posterior.draw.values,
                    "obs_id": idx})
        if len(idx) < len(observed):
            groups["log_likelihood"].attrs["obs_subset"] = (
                f"{len(idx)} of {len(observed)} training observations, evenly spaced")
        elif "lp" not in stats:
            lp = _log_prior(model, draws)
            if lp is not None:
                stats["lp"] = lp + loglik.sum(-1)
        groups["constant_data"] = _constant_data(inputs[idx], idx, features)
    if stats:
        groups["sample_stats"] = az.dict_to_dataset(stats, library=None)
    if history:
        keys = [k for k in history[0] if k != "epoch"]
        epochs = [int(h["epoch"]) for h in history]
        groups["optimization"] = xr.Dataset(
            {k: (("epoch",), np.array([float(h.get(k, np.nan)) for h in history])) for k in keys},
            coords={"epoch": epochs})
    prior, why = _prior_group(model, dims, coords, prior_draws, int(meta.get("seed", 0) or 0))
    if prior is not None:
        groups["prior"] = prior
    else:
        meta["prior_group"] = why
    hyper = _hyperparameters(model, coords)
    if hyper is not None:
        groups["hyperparameters"] = hyper
    with warnings.catch_warnings():  # the groups beyond ArviZ's schema are intended
        warnings.simplefilter("ignore", UserWarning)
        idata = az.InferenceData(**groups)
    idata.attrs = {k: _attr(v) for k, v in meta.items()}
    return stamp(idata)


def add_log_likelihood(idata: InferenceData, model, x: torch.Tensor, y: torch.Tensor, *,
                       log_likelihood_obs: int | None = LOG_LIKELIHOOD_OBS) -> InferenceData:
    """(Re)write the ``log_likelihood`` group of ``idata`` from its posterior draws on the
    data ``(x, y)`` (e.g. with another ``log_likelihood_obs``, or ``None`` for all); in place,
    returned."""
    post = idata.posterior
    idx = _obs_subset(len(y), log_likelihood_obs)
    draws = {k: post[k].values for k in post.data_vars}
    loglik = _pointwise_log_likelihood(model, draws, x[idx], y[idx])
    ds = xr.Dataset({"obs": (("chain", "draw", "obs_id"), loglik)},
                    coords={"chain": post.chain.values, "draw": post.draw.values, "obs_id": idx})
    if len(idx) < len(y):
        ds.attrs["obs_subset"] = f"{len(idx)} of {len(y)} observations, evenly spaced"
    if "log_likelihood" in idata.groups():
        del idata.log_likelihood
    idata.add_groups(log_likelihood=ds)
    return stamp(idata)


def _obs_subset(n: int, cap: int | None) -> np.ndarray:
    if cap is not None and cap < 1:
        raise ValueError(f"log_likelihood_obs must be >= 1 or None (got {cap})")
    if cap is None or n <= cap:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, cap).round().astype(np.int64))


def _draw(draws: Mapping[str, torch.Tensor | np.ndarray], c: int, d: int, device
          ) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(np.asarray(_np(v)[c, d]), device=device)
            for k, v in draws.items()}


def _device(model) -> torch.device:
    for p in model.net.parameters():
        return p.device
    return torch.device("cpu")


def _stored_draws(draws, device):
    """Each stored draw as a dict of tensors on ``device``, chains first."""
    first = _np(next(iter(draws.values())))
    for c in range(first.shape[0]):
        for d in range(first.shape[1]):
            yield _draw(draws, c, d, device)


@torch.no_grad()
def _pointwise_log_likelihood(model, draws, x: torch.Tensor, y: torch.Tensor,
                              batch_size: int = 4096) -> np.ndarray:
    """``log p(y_i | theta_s, x_i)`` per stored draw and observation, ``(chain, draw, n)``
    float64: the network in evaluation mode (:func:`bayesstruct.predict.forward_draws`),
    observations in batches of ``batch_size``."""
    from .predict import forward_draws

    device = _device(model)
    first = _np(next(iter(draws.values())))
    out = np.empty((first.shape[0] * first.shape[1], len(y)), dtype=np.float64)
    lik, y = model.likelihood, y.to(device)
    for s, f in enumerate(forward_draws(model, _stored_draws(draws, device), x, batch_size)):
        out[s] = lik.dist(f).log_prob(lik.target(y, f)).double().cpu().numpy()
    return out.reshape(*first.shape[:2], len(y))


@torch.no_grad()
def _log_prior(model, draws) -> np.ndarray | None:
    """``log p(theta_s)`` per draw (``None`` where the prior has no point density: IBP)."""
    device = _device(model)
    first = _np(next(iter(draws.values())))
    out = np.empty(first.shape[:2], dtype=np.float64)
    latents = [ls.name for ls in model.prior.latents]
    try:
        for c in range(first.shape[0]):
            for d in range(first.shape[1]):
                v = _draw(draws, c, d, device)
                out[c, d] = float(model.prior.log_prob(
                    {s.name: v[s.name] for s in model.sites},
                    {n: v[n] for n in latents if n in v}))
    except (ValueError, NotImplementedError, KeyError):
        return None
    return out


def _constant_data(x: torch.Tensor, idx: np.ndarray, features: list[str] | None) -> xr.Dataset:
    flat = _np(x).reshape(len(idx), -1)
    feat = features if features is not None else np.arange(flat.shape[1])
    coords = {"feature": feat}
    if flat.size <= CONSTANT_DATA_VALUES:
        ds = xr.Dataset({"x": (("obs_id", "feature"), flat)}, coords={"obs_id": idx, **coords})
        ds.attrs["input_shape"] = np.asarray(x.shape[1:], dtype=np.int64)
        return ds
    ds = xr.Dataset({"x_mean": (("feature",), flat.mean(0, dtype=np.float64)),
                     "x_std": (("feature",), flat.std(0, dtype=np.float64))}, coords=coords)
    ds.attrs["inputs"] = (f"summary: the {len(idx)} x {flat.shape[1]} inputs exceed "
                          f"{CONSTANT_DATA_VALUES} values")
    return ds


@torch.no_grad()
def _prior_group(model, dims, coords, num: int, seed: int) -> tuple[xr.Dataset | None, str]:
    """Draws of every sample site from the prior (one chain; point estimates held at the
    network's values and left out), or ``None`` and why. At most ``num`` draws, fewer for a
    large network (:data:`PRIOR_VALUES` numbers in all); torch's global RNG is left as it was."""
    from pyro import poutine

    prior = model.prior
    if num < 1:
        return None, "not requested (prior_draws=0)"
    if not prior.proper:
        return None, f"none: the {prior.kind or type(prior).__name__} prior is improper"
    points = {s.name for s in model.point_sites}
    names = [n for n in dims if n not in points]
    size = sum(s.numel for s in model.sites if s.name not in points) + sum(
        math.prod(ls.shape) for ls in prior.latents)
    num = max(1, min(num, PRIOR_VALUES // max(size, 1)))
    params = dict(model.net.named_parameters())
    fixed = poutine.condition(prior.sample, data={n: params[n].detach() for n in points})
    values: dict[str, list[np.ndarray]] = {n: [] for n in names}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            for _ in range(num):
                tr = poutine.trace(fixed).get_trace()
                for n in names:
                    values[n].append(_np(tr.nodes[n]["value"]))
        except (NotImplementedError, ValueError, KeyError) as e:
            return None, f"none: the prior cannot be sampled ({str(e).splitlines()[0][:100]})"
    ds = _dataset({n: np.stack(v)[None] for n, v in values.items()}, dims, coords)
    ds.attrs["prior_state"] = "after the fit (empirical-Bayes hyperparameters included)"
    if points:
        ds.attrs["point_estimates"] = ",".join(sorted(points))
    return ds, ""


def _hyperparameters(model, coords) -> xr.Dataset | None:
    """The prior's point hyperparameters (its persistent buffers) with the site's dims."""
    state = model.prior.state_dict()
    if not state:
        return None
    by_key = {s.name.replace(".", "__") + "__": s for s in model.weight_sites}
    arrays = {}
    for key, value in state.items():
        v = _np(value).astype(np.float64)
        site = next((s for k, s in by_key.items() if key.startswith(k)), None)
        if site is None:
            arrays[key] = xr.DataArray(v, dims=[f"{key}_dim{i}" for i in range(v.ndim)])
            continue
        name = f"{site.name}.{key[len(site.name.replace('.', '__')) + 2:]}"
        if v.ndim == 0:
            d: list[str] = []
        elif v.shape == tuple(site.shape):
            d = list(site.dims)
        elif site.group_dim is not None and v.shape == (site.shape[site.group_dim],):
            d = [site.dims[site.group_dim]]
        else:
            d = [f"{name}_dim{i}" for i in range(v.ndim)]
        arrays[name] = xr.DataArray(v, dims=d, coords={k: coords[k] for k in d if k in coords})
    ds = xr.Dataset(arrays)
    ds.attrs["prior"] = model.prior.kind or type(model.prior).__name__
    return ds


def stamp(idata: InferenceData) -> InferenceData:
    """Set ``inference_library`` (pyro), its version, ``bayesstruct_version`` and
    ``created_at`` on every group of ``idata`` (in place; returned)."""
    import pyro

    meta = {"inference_library": "pyro", "inference_library_version": pyro.__version__,
            "bayesstruct_version": _version(), "arviz_version": az.__version__,
            "created_at": datetime.datetime.now(datetime.UTC).isoformat()}
    for g in idata.groups():
        attrs = getattr(idata, g).attrs
        created = attrs.get("created_at")
        attrs.update(meta)
        if created is not None:  # a group keeps the time it was made
            attrs["created_at"] = created
    return idata


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bayesstruct")
    except PackageNotFoundError:
        return "0.0.0+local"


def from_guide(model, guide, num_draws: int = 100, *, observed: torch.Tensor | None = None,
               inputs: torch.Tensor | None = None,
               history: Sequence[Mapping[str, float]] | None = None,
               attrs: Mapping[str, object] | None = None,
               classes: Sequence[str] | None = None, input_shape: Sequence[int] | None = None,
               log_likelihood_obs: int | None = LOG_LIKELIHOOD_OBS,
               prior_draws: int = PRIOR_DRAWS) -> InferenceData:
    """Posterior of a variational run: ``num_draws`` draws from ``q`` (one chain), q's factors
    (other arguments as :func:`from_draws`)."""
    draws = {k: v.unsqueeze(0) for k, v in guide.sample(num_draws).items()}
    idata = from_draws(model, draws, observed=observed, inputs=inputs, history=history,
                       attrs={"engine": "svi", "guide": guide.name, **(attrs or {})},
                       classes=classes, input_shape=input_shape,
                       log_likelihood_obs=log_likelihood_obs, prior_draws=prior_draws)
    add_variational(idata, model, guide.variational())
    return idata


def add_variational(idata: InferenceData, model,
                    factors: Mapping[str, tuple[str, torch.Tensor, torch.Tensor]]) -> None:
    """Write the ``variational_loc`` / ``variational_scale`` groups from ``name -> (family,
    loc, scale)`` (in place)."""
    if not factors:
        return
    dims = _site_dims(model)
    coords = {d: idata.posterior.coords[d].values for d in idata.posterior.dims
              if d not in ("chain", "draw")}
    locs, scales = {}, {}
    weights = {s.name for s in model.weight_sites}
    bounds = {ls.name: ls.bounds for ls in model.prior.latents if ls.bounds is not None}
    for name, (family, loc, scale) in factors.items():
        meta = {"family": family}
        if name in bounds:  # a truncated factor: its interval in log space
            meta["log_low"], meta["log_high"] = bounds[name]
        if name in weights:
            meta["prior_mode"] = _mode_attr(model.prior.mode(model.site(name)))
        c = {d: coords[d] for d in dims[name] if d in coords}
        locs[name] = xr.DataArray(_np(loc), dims=dims[name], coords=c, attrs=meta)
        scales[name] = xr.DataArray(_np(scale), dims=dims[name], coords=c, attrs=meta)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        idata.add_groups(variational_loc=xr.Dataset(locs), variational_scale=xr.Dataset(scales))
    stamp(idata)


def autonormal_factors(model, guide) -> dict[str, tuple[str, torch.Tensor, torch.Tensor]]:
    """The factors of a Pyro ``AutoNormal`` guide as ``name -> (family, loc, scale)``:
    ``Normal`` for the sites on the real line (weights, biases, real latents), ``LogNormal``
    for positive ones (Pyro's bijection is ``exp``); sites with other supports are left out."""
    out = {}
    for name in _site_dims(model):
        node = guide.prototype_trace.nodes.get(name) if guide.prototype_trace else None
        if node is None:
            continue
        loc, scale = (t.detach() for t in guide._get_loc_and_scale(name))
        shape = tuple(node["value"].shape)
        family = _transform_family(node["fn"].support)
        if family is not None:
            out[name] = (family, loc.reshape(shape), scale.reshape(shape))
    return out


def _transform_family(support) -> str | None:
    """``Normal`` if Pyro's bijection onto ``support`` is the identity, ``LogNormal`` if it
    is ``exp``, else ``None``."""
    from torch.distributions import biject_to
    from torch.distributions import transforms as T

    def parts(t):
        while isinstance(t, T.IndependentTransform):
            t = t.base_transform
        if isinstance(t, T.ComposeTransform):
            return [q for p in t.parts for q in parts(p)]
        if isinstance(t, T.AffineTransform) and np.all(_np(torch.as_tensor(t.loc)) == 0) \
                and np.all(_np(torch.as_tensor(t.scale)) == 1):
            return []
        return [t]

    ps = parts(biject_to(support))
    if not ps:
        return "Normal"
    if len(ps) == 1 and isinstance(ps[0], T.ExpTransform):
        return "LogNormal"
    return None


def weight_sites(idata: InferenceData) -> list[str]:
    """Names of the weight sites (what pruning acts on), in network order."""
    return [n for n in str(idata.attrs.get("weight_sites", "")).split(",") if n]


def point_estimate(idata: InferenceData) -> dict[str, np.ndarray]:
    """Posterior mean of each site: the variational mean when there is one, else the draws' mean.

    (For a ``LogNormal`` factor the mean is ``exp(loc + scale^2 / 2)``, for a
    ``TruncatedLogNormal`` one the truncated moment; ``Bernoulli`` factors
    store their logits in ``loc``, ``Kumaraswamy`` ones ``(log a, b)``.)
    """
    out = {k: v.values for k, v in idata.posterior.mean(("chain", "draw")).data_vars.items()}
    if "variational_loc" in idata.groups():
        for name, loc in idata.variational_loc.data_vars.items():
            if loc.attrs.get("family") in ("Normal", "Delta"):
                out[name] = loc.values
            elif loc.attrs.get("family") == "LogNormal":
                scale = idata.variational_scale[name].values
                out[name] = np.exp(loc.values + 0.5 * scale**2)
            elif loc.attrs.get("family") == "TruncatedLogNormal":
                out[name] = _truncated_mean(loc, idata.variational_scale[name].values)
            elif loc.attrs.get("family") == "Bernoulli":  # loc holds the logits
                out[name] = 1.0 / (1.0 + np.exp(-loc.values))
            elif loc.attrs.get("family") == "Kumaraswamy":  # E v = b B(1 + 1/a, b)
                a, b = np.exp(loc.values), idata.variational_scale[name].values
                out[name] = np.exp(np.log(b) + _lbeta(1.0 + 1.0 / a, b))
    return out


def _truncated_mean(loc, scale: np.ndarray) -> np.ndarray:
    """``E[theta]`` of a truncated log-normal factor (its interval in ``loc``'s attributes)."""
    from .priors.truncated import truncated_lognormal_log_moment

    mu = torch.as_tensor(loc.values, dtype=torch.float64)
    sd = torch.as_tensor(scale, dtype=torch.float64)
    low, high = float(loc.attrs["log_low"]), float(loc.attrs["log_high"])
    return torch.exp(truncated_lognormal_log_moment(mu, sd, low, high, 1)).numpy()


def _lbeta(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from scipy.special import betaln

    return betaln(a, b)


def save(idata: InferenceData, path: str | os.PathLike) -> Path:
    """Write netCDF atomically (temporary file in the same folder, then ``os.replace``)."""
    with atomic_path(path) as tmp:
        idata.to_netcdf(str(tmp), engine="h5netcdf")
    return Path(path)


def load(path: str | os.PathLike) -> InferenceData:
    """Read a posterior written by :func:`save`, fully into memory.

    Raises:
        CheckpointError: the file is missing, truncated or not netCDF, or is an InferenceData
            that no bayesstruct engine wrote (no ``posterior`` group or no ``engine``
            attribute); the message names the file."""
    from .errors import CheckpointError

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"posterior file {path} does not exist")
    try:
        idata = az.from_netcdf(str(path), engine="h5netcdf")
        for g in idata.groups():
            getattr(idata, g).load()
    except Exception as e:  # noqa: BLE001 - OSError, ValueError, KeyError from h5py/xarray
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path} cannot be read as a netCDF posterior ({msg}); was it "
                              "written completely by `bayesstruct run`?") from None
    if "posterior" not in idata.groups() or "engine" not in idata.attrs:
        raise CheckpointError(f"{path} is not a bayesstruct posterior (groups: "
                              f"{', '.join(idata.groups()) or 'none'}; no 'engine' attribute)")
    return idata


def to_datatree(idata: InferenceData):
    """The ``xarray.DataTree`` layout of ArviZ 1.x (``arviz-base``): one child node per
    group, the file-level attributes on the root."""
    tree = idata.to_datatree()
    tree.attrs.update(idata.attrs)
    return tree


def _attr(v: object) -> object:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, str | int | float | np.number):
        return v
    return str(v)
