"""The pruning curve: fraction of weights removed against test accuracy and NLL.

For every fraction the weights with the highest prunability score (rho by default) are removed
and the masked network is evaluated two ways: the *posterior-mean* network (one forward pass at
the point estimate) and the *MC-averaged* predictive ``(1/S) sum_s p(y | x, w_s)`` over ``S``
posterior draws with the same mask.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from .. import logs
from ..data import Split
from ..models.bayesnet import BayesianNet, eval_mode
from ..posterior import InferenceData
from ..training import evaluate
from .compression import mask_params
from .decisions import check_matches, decide, fraction_removed
from .density import log_relative_density
from .units import mean_values

__all__ = ["DEFAULT_FRACTIONS", "mc_evaluate", "pruning_curve"]

DEFAULT_FRACTIONS: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9,
                                        0.95, 0.98, 0.99)


def _tensors(arrays: Mapping[str, np.ndarray], device) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(np.asarray(v), dtype=torch.float32, device=device)
            for k, v in arrays.items()}


def _draw_sampler(post: InferenceData, sites: list[str], num: int, seed: int, device):
    """Yield ``num`` draws of the named sites: fresh from ``q`` when every factor is Normal or
    LogNormal, else spread over the stored draws."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    families = {s: post.variational_loc[s].attrs.get("family")
                if "variational_loc" in post.groups() and s in post.variational_loc else None
                for s in sites}
    if all(f in ("Normal", "LogNormal") for f in families.values()):
        loc = _tensors({s: post.variational_loc[s].values for s in sites}, "cpu")
        scale = _tensors({s: post.variational_scale[s].values for s in sites}, "cpu")
        for _ in range(num):
            draw = {}
            for s in sites:
                v = loc[s] + scale[s] * torch.randn(loc[s].shape, generator=gen)
                draw[s] = (v.exp() if families[s] == "LogNormal" else v).to(device)
            yield draw
        return
    stacked = post.posterior.stack(sample=("chain", "draw"))
    total = stacked.sizes["sample"]
    for i in np.linspace(0, total - 1, min(num, total)).round().astype(int):
        yield _tensors({s: np.moveaxis(stacked[s].values, -1, 0)[i] for s in sites}, device)


@torch.no_grad()
def mc_evaluate(model: BayesianNet, draws, split: Split,
                masks: Mapping[str, torch.Tensor] | None = None,
                batch_size: int = 1024) -> dict[str, float]:
    """NLL and accuracy of the MC-averaged predictive over an iterable of parameter draws (in
    evaluation mode)."""
    outs = []
    with eval_mode(model.net):
        for params in draws:
            if masks:
                params = mask_params(params, masks)
            outs.append(torch.cat([model.predict(split.x[i: i + batch_size], params)
                                   for i in range(0, len(split), batch_size)]))
    logp = model.likelihood.predictive(torch.stack(outs))
    nll = float(-logp.gather(1, split.y[:, None]).sum()) / len(split)
    acc = float((logp.argmax(1) == split.y).float().mean())
    return {"nll": nll, "acc": acc}


def pruning_curve(model: BayesianNet, post: InferenceData, split: Split,
                  fractions: Sequence[float] = DEFAULT_FRACTIONS, *,
                  scores: Mapping[str, np.ndarray] | None = None, mc_samples: int = 20,
                  seed: int = 0, progress: bool = False) -> list[dict[str, float]]:
    """One row per fraction: ``fraction, removed, acc_mean, nll_mean, acc_mc, nll_mc``.
    ``progress``: report the fractions done (:func:`bayesstruct.logs.progress`).

    ``scores`` default to ``log rho`` per weight (:func:`log_relative_density`). The
    posterior must be ``model``'s (:func:`~bayesstruct.pruning.decisions.check_matches`).
    """
    check_matches(post, model)
    device = next(model.net.parameters()).device
    split = split.to(device)
    scores = scores if scores is not None else log_relative_density(post, model=model)
    point = mean_values(post, model, device)
    sites = [ls.name for ls in model.prior.latents] + [s.name for s in model.sites]
    rows = []
    for f in logs.progress(fractions, desc="pruning curve", unit="fraction", enabled=progress):
        masks_np = decide(scores, fraction=f)
        masks = _tensors(masks_np, device)
        params = mask_params({k: point[k] for k in sites}, masks)
        mean = evaluate(model, params, split)
        mc = mc_evaluate(model, _draw_sampler(post, sites, mc_samples, seed, device), split,
                         masks) if mc_samples > 0 else {"nll": np.nan, "acc": np.nan}
        rows.append({"fraction": float(f), "removed": fraction_removed(masks_np),
                     "acc_mean": mean["acc"], "nll_mean": mean["nll"],
                     "acc_mc": mc["acc"], "nll_mc": mc["nll"]})
    return rows
