"""Engine output -> ArviZ ``InferenceData``; netCDF save/load.

This module and :mod:`bayesstruct.diagnostics` are the only ones that import ArviZ: ArviZ 1.x
moves to ``xarray.DataTree`` (and needs Python >= 3.12), so the switch stays in two files.

Groups written here:

* ``posterior`` -- draws of every sample site, dims ``(chain, draw, <layer>_out, <layer>_in, ...)``;
* ``variational_loc`` / ``variational_scale`` -- the guide's factors (variables named like the
  posterior's; attrs ``family`` and, for weights, ``prior_mode``), so the relative density has a
  closed form (M5);
* ``observed_data`` -- the training targets;
* ``optimization`` -- the per-epoch training log of optimisation engines (dim ``epoch``);
* ``sample_stats`` -- where an engine has them (MCMC).
"""

from __future__ import annotations

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

__all__ = ["InferenceData", "from_draws", "from_guide", "load", "mode_array", "point_estimate",
           "save", "weight_sites"]

InferenceData = az.InferenceData


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


def from_draws(model, draws: Mapping[str, torch.Tensor | np.ndarray], *,
               observed: torch.Tensor | None = None,
               sample_stats: Mapping[str, np.ndarray] | None = None,
               history: Sequence[Mapping[str, float]] | None = None,
               attrs: Mapping[str, object] | None = None) -> InferenceData:
    """Build an ``InferenceData`` from ``draws[name]`` of shape ``(chain, draw, *site_shape)``."""
    dims = _site_dims(model)
    posterior = az.dict_to_dataset({k: _np(v) for k, v in draws.items()},
                                   dims={k: dims[k] for k in draws}, library=None)
    for s in model.weight_sites:  # the numerator point of a sample-based rho (M5)
        if s.name in posterior:
            posterior[s.name].attrs["prior_mode"] = _mode_attr(model.prior.mode(s))
    groups: dict[str, xr.Dataset] = {"posterior": posterior}
    if observed is not None:
        groups["observed_data"] = xr.Dataset({"obs": (("obs_id",), _np(observed))})
    if sample_stats:
        groups["sample_stats"] = az.dict_to_dataset(dict(sample_stats), library=None)
    if history:
        keys = [k for k in history[0] if k != "epoch"]
        epochs = [int(h["epoch"]) for h in history]
        groups["optimization"] = xr.Dataset(
            {k: (("epoch",), np.array([float(h.get(k, np.nan)) for h in history])) for k in keys},
            coords={"epoch": epochs})
    idata = az.InferenceData(**groups)
    meta = {"weight_sites": ",".join(s.name for s in model.weight_sites), **(attrs or {})}
    idata.attrs = {k: _attr(v) for k, v in meta.items()}
    return idata


def from_guide(model, guide, num_draws: int = 100, *, observed: torch.Tensor | None = None,
               history: Sequence[Mapping[str, float]] | None = None,
               attrs: Mapping[str, object] | None = None) -> InferenceData:
    """Posterior of a variational run: ``num_draws`` draws from ``q`` (one chain), q's factors."""
    draws = {k: v.unsqueeze(0) for k, v in guide.sample(num_draws).items()}
    idata = from_draws(model, draws, observed=observed, history=history,
                       attrs={"engine": "svi", "guide": guide.name, **(attrs or {})})
    factors = guide.variational()
    if factors:
        dims = _site_dims(model)
        locs, scales = {}, {}
        for name, (family, loc, scale) in factors.items():
            meta = {"family": family}
            if name in {s.name for s in model.weight_sites}:
                meta["prior_mode"] = _mode_attr(model.prior.mode(model.site(name)))
            locs[name] = xr.DataArray(_np(loc), dims=dims[name], attrs=meta)
            scales[name] = xr.DataArray(_np(scale), dims=dims[name], attrs=meta)
        idata.add_groups(variational_loc=xr.Dataset(locs), variational_scale=xr.Dataset(scales))
    return idata


def weight_sites(idata: InferenceData) -> list[str]:
    """Names of the weight sites (what pruning acts on), in network order."""
    return [n for n in str(idata.attrs.get("weight_sites", "")).split(",") if n]


def point_estimate(idata: InferenceData) -> dict[str, np.ndarray]:
    """Posterior mean of each site: the variational mean when there is one, else the draws' mean.

    (For a ``LogNormal`` factor the mean is ``exp(loc + scale^2 / 2)``; ``Bernoulli`` factors
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
            elif loc.attrs.get("family") == "Bernoulli":  # loc holds the logits
                out[name] = 1.0 / (1.0 + np.exp(-loc.values))
            elif loc.attrs.get("family") == "Kumaraswamy":  # E v = b B(1 + 1/a, b)
                a, b = np.exp(loc.values), idata.variational_scale[name].values
                out[name] = np.exp(np.log(b) + _lbeta(1.0 + 1.0 / a, b))
    return out


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


def _attr(v: object) -> object:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, str | int | float | np.number):
        return v
    return str(v)
