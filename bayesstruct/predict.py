"""Predictions of a fitted posterior: per-draw outputs, the predictive mean, and the
``posterior_predictive`` group ArviZ's ``plot_ppc`` reads.

>>> pred = bayesstruct.predict(post, model, ds.test.x)
>>> pred.mean.argmax(1)                      # classes under the posterior predictive
>>> add_posterior_predictive(post, model, ds.train.x)   # then az.plot_ppc(post)

The draws are the ones stored in the posterior: the guide's draws for SVI, the chains' draws
for NUTS/HMC and SGLD/pSGLD. The network runs in evaluation mode (dropout off, normalisation
layers on their running statistics).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr

from . import posterior as posterior_mod

__all__ = ["Prediction", "add_posterior_predictive", "forward_draws", "predict"]


@dataclass(frozen=True)
class Prediction:
    """Outputs of the network at each of the posterior draws used.

    Attributes:
        outputs: per draw, for a classifier the class probabilities ``(draws, n, classes)``;
            for a regression likelihood the predicted mean ``(draws, n)``.
        mean: the posterior predictive mean, ``outputs`` averaged over the draws.
        chain, draw: which stored draw each row of ``outputs`` is (``(draws,)`` each).
        classifier: whether ``outputs`` are class probabilities.
        noise: the observation noise scale of a Gaussian likelihood (``None`` otherwise).
    """

    outputs: np.ndarray
    mean: np.ndarray
    chain: np.ndarray
    draw: np.ndarray
    classifier: bool
    noise: float | None = None

    def sample(self, seed: int = 0) -> np.ndarray:
        """One draw of ``y`` per posterior draw and input, ``(draws, n)``: a label from each
        draw's class probabilities, or mean plus Gaussian noise for regression."""
        rng = np.random.default_rng(seed)
        if self.classifier:
            cdf = np.cumsum(self.outputs, axis=-1, dtype=np.float64)
            u = rng.random(cdf.shape[:-1])[..., None] * cdf[..., -1:]
            return np.minimum((cdf < u).sum(-1), self.outputs.shape[-1] - 1).astype(np.int64)
        return self.outputs + (self.noise or 0.0) * rng.standard_normal(self.outputs.shape)

    def posterior_predictive(self, seed: int = 0) -> xr.Dataset:
        """The sampled targets as ArviZ's ``posterior_predictive`` group: ``obs`` with dims
        ``(chain, draw, obs_id)`` (a subset of draws keeps its chain and draw indices; the
        draws must then form a full ``chain x draw`` grid, which :func:`predict` ensures)."""
        y = self.sample(seed)
        chains, draws = np.unique(self.chain), np.unique(self.draw)
        grid = np.empty((len(chains), len(draws), y.shape[1]), dtype=y.dtype)
        ci, di = np.searchsorted(chains, self.chain), np.searchsorted(draws, self.draw)
        grid[ci, di] = y
        return xr.Dataset({"obs": (("chain", "draw", "obs_id"), grid)},
                          coords={"chain": chains, "draw": draws,
                                  "obs_id": np.arange(y.shape[1])})


@torch.no_grad()
def forward_draws(model, draws: Iterable[dict[str, torch.Tensor]], x: torch.Tensor,
                  batch_size: int = 1024) -> Iterator[torch.Tensor]:
    """The network's output on ``x`` at each draw of the sample sites (``model.predict``), in
    evaluation mode and in batches of ``batch_size`` inputs; ``x`` goes to the device of the
    draws."""
    from .models.bayesnet import eval_mode

    with eval_mode(model.net):
        for params in draws:
            device = next(iter(params.values())).device
            yield torch.cat([model.predict(x[i: i + batch_size].to(device), params)
                             for i in range(0, len(x), batch_size)])


def _select(post, num_samples: int | None) -> tuple[np.ndarray, np.ndarray]:
    """``(chain, draw)`` indices of the draws used: all, or ``num_samples`` draws per chain
    evenly spaced (the same draw indices in every chain)."""
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    if num_samples is None:
        draws = np.arange(n_draw)
    else:
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1 or None (got {num_samples})")
        per_chain = max(1, -(-num_samples // n_chain))
        draws = np.unique(np.linspace(0, n_draw - 1, min(per_chain, n_draw)).round()
                          .astype(np.int64))
    chain = np.repeat(np.arange(n_chain), len(draws))
    return chain, np.tile(draws, n_chain)


def predict(posterior: posterior_mod.InferenceData | str | os.PathLike, model, x: torch.Tensor,
            num_samples: int | None = None, *, batch_size: int = 1024,
            device: str | torch.device | None = None) -> Prediction:
    """Per-draw predictions of ``model`` on inputs ``x`` at the draws stored in ``posterior``
    (an ``InferenceData`` or a posterior file written by an engine).

    Args:
        num_samples: use about this many draws, spread evenly over each chain (``None``: all).
        batch_size: inputs per forward pass.
        device: run there (the model is moved to it); default: where the model is.
    """
    post = posterior if isinstance(posterior, posterior_mod.InferenceData) else \
        posterior_mod.load(posterior)
    if device is not None:
        model.to(device)
    device = next(model.net.parameters(), torch.zeros(())).device
    chain, draw = _select(post.posterior, num_samples)
    names = [n for n in post.posterior.data_vars]
    values = {n: post.posterior[n].values for n in names}

    def draws():
        for c, d in zip(chain, draw, strict=True):
            yield {n: torch.as_tensor(values[n][c, d], device=device) for n in names}

    lik = model.likelihood
    outs = []
    for f in forward_draws(model, draws(), torch.as_tensor(x), batch_size):
        if lik.classifier:
            outs.append(lik.class_log_probs(f).exp().cpu().numpy())
        else:
            outs.append(f.squeeze(-1).cpu().numpy())
    outputs = np.stack(outs)
    return Prediction(outputs=outputs, mean=outputs.mean(0, dtype=np.float64), chain=chain,
                      draw=draw, classifier=bool(lik.classifier),
                      noise=getattr(lik, "noise", None))


def add_posterior_predictive(idata: posterior_mod.InferenceData, model,
                             x: torch.Tensor | None = None, num_samples: int | None = None, *,
                             seed: int = 0, batch_size: int = 1024,
                             device: str | torch.device | None = None
                             ) -> posterior_mod.InferenceData:
    """Write (or replace) the ``posterior_predictive`` group of ``idata``: ``obs`` sampled at
    each stored draw (:meth:`Prediction.sample`), dims ``(chain, draw, obs_id)``, so that
    ``az.plot_ppc`` compares it with ``observed_data``. ``x`` defaults to the training inputs
    stored in ``constant_data`` (then it must hold every training input); in place, returned.
    """
    if x is None:
        cd = idata.constant_data if "constant_data" in idata.groups() else None
        n_obs = idata.observed_data.sizes["obs_id"] if "observed_data" in idata.groups() else -1
        if cd is None or "x" not in cd or cd.sizes["obs_id"] != n_obs:
            raise ValueError("this posterior does not hold all its training inputs "
                             "(constant_data); pass them as x")
        shape = np.asarray(cd.attrs.get("input_shape", [cd.sizes["feature"]]), dtype=np.int64)
        x = torch.as_tensor(cd["x"].values).reshape(n_obs, *(int(v) for v in shape.reshape(-1)))
    ds = predict(idata, model, x, num_samples, batch_size=batch_size,
                 device=device).posterior_predictive(seed)
    if "posterior_predictive" in idata.groups():
        del idata.posterior_predictive
    idata.add_groups(posterior_predictive=ds)
    return posterior_mod.stamp(idata)

