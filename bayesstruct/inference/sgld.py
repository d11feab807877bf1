"""Stochastic-gradient Langevin dynamics, plain and preconditioned, on any BayesianNet.

The target is the posterior of every sample site of the model, each mapped to an
unconstrained ``z`` (``biject_to(support)``, the log-Jacobian added), with the minibatch estimate

    log p~(z | D) = log p(z) + log|J| + (N / B) sum_{i in batch} log p(y_i | x_i, z)

(the model's ``pyro.plate("data", N, subsample=...)`` supplies ``N / B``). With ``g`` its gradient
and step size ``eps_t``:

* **SGLD** (Welling & Teh 2011): ``z <- z + (eps_t / 2) g + N(0, eps_t)``;
* **pSGLD** (Li, Chen, Carlson, Carin 2016, the RMSprop preconditioner, Gamma term dropped as
  the paper recommends): ``V <- b V + (1 - b) g~ * g~``, ``G = 1 / (lambda + sqrt(V))``,
  ``z <- z + (eps_t / 2) G g + N(0, eps_t G)``. Dropping Gamma biases the stationary law in
  principle; on the conjugate test model the bias is below 0.003 posterior sd (a 4000-chain
  float64 reference; tests/inference/test_sgld.py compares the engine with that reference).

  **Units of the preconditioner** (``units``). Li et al.'s Algorithm 1 (and their reference
  code) build ``V`` from the *per-example mean* gradient, ``g~ = g / N`` (the minibatch mean
  of ``grad log p(y_i | x_i, z)`` plus ``grad log p(z) / N``: the gradient of the mean loss
  with its weight decay), and move by ``(eps_t / 2) G g`` with the full ``g``. That is
  ``units="paper"``; a step size ``lr`` and a floor ``lambda`` (``eps``) taken from the paper
  mean the same here. ``units="log_posterior"`` builds ``V`` from ``g`` itself (``g~ = g``),
  which makes ``sqrt(V)`` ``N`` times larger: the two are the same sampler under

      (lr, eps) with units="log_posterior"  ==  (lr / N, eps / N) with units="paper"

  (exactly: ``G`` scales by ``1 / N``; tested). The function :func:`psgld` and the recipe
  ``engine: psgld`` default to ``"log_posterior"``, the units of earlier versions, so existing
  settings (``inference/psgld.yaml``: ``lr: 0.001``, ``eps: 1e-5``) keep their meaning; set
  ``units: paper`` to use the paper's values directly.

``eps_t = lr (1 + t / decay_steps)^(-gamma)`` (``gamma = 0``: constant; Welling & Teh use
``gamma in (0.5, 1]``). Each chain runs ``burn_in`` steps, then ``num_samples * thin`` steps
keeping every ``thin``-th state; chains start from the network's initial weights (latents at
their prior medians) perturbed per chain, and run one after another, each from its own
generators seeded by ``(seed, chain)``.

A chain that finishes is saved to ``checkpoint_dir/chain-<k>.pt`` (tensors only,
``weights_only`` loadable, with a key of the settings); with ``resume=True`` finished chains are
read back, not re-run, and give the same draws bit for bit. A NaN/inf log density or draw stops
the run with :class:`~bayesstruct.errors.NonFiniteLossError` (chain, step, value, the chains
kept on disk).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyro
import torch
from pydantic import Field
from pyro import poutine
from pyro.distributions.transforms import biject_to
from pyro.infer.autoguide.initialization import init_to_median
from pyro.poutine.util import site_is_subsample

from .. import logs
from .. import posterior as posterior_mod
from ..data import Dataset, Split
from ..errors import CheckpointError, ConfigError, NonFiniteLossError
from ..files import load_checkpoint, save_checkpoint
from ..models.bayesnet import BayesianNet
from ..training import Minibatches
from .registry import EngineConfig, FitOptions, register_engine, require_fixed_prior

__all__ = ["PSGLD_UNITS", "LangevinTarget", "PSGLDConfig", "SGLDConfig", "fit_psgld",
           "fit_sgld", "precondition", "psgld", "sgld"]

PSGLD_UNITS = ("log_posterior", "paper")


def precondition(v_acc: torch.Tensor | None, g: torch.Tensor, *, beta: float, eps: float,
                 scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """One update of pSGLD's preconditioner: ``(V, G)`` with ``g~ = scale * g``,
    ``V <- beta V + (1 - beta) g~ * g~`` (``V = g~ * g~`` at the first step, ``v_acc=None``)
    and ``G = 1 / (eps + sqrt(V))``. ``scale = 1 / N`` gives Li et al.'s units (``g~`` the
    per-example mean gradient; module docstring), ``scale = 1`` the log-posterior ones."""
    gs = g * scale if scale != 1.0 else g
    gg = gs * gs
    v_acc = gg if v_acc is None else beta * v_acc + (1 - beta) * gg
    return v_acc, 1.0 / (eps + v_acc.sqrt())


class LangevinTarget:
    """The unconstrained log density of a BayesianNet's posterior on a minibatch."""

    def __init__(self, model: BayesianNet, x: torch.Tensor, y: torch.Tensor) -> None:
        model.prior.require_proper()
        model.prior.require_continuous("SGLD / pSGLD (Langevin dynamics)")
        model.require_no_point_estimates("SGLD / pSGLD (Langevin dynamics)")
        self.model = model
        with torch.no_grad(), poutine.block():
            proto = poutine.trace(model).get_trace(x[:2], y[:2])
        self.sites = {n: s for n, s in proto.nodes.items()
                      if s["type"] == "sample" and not s["is_observed"]
                      and not site_is_subsample(s)}
        self.transforms = {n: biject_to(s["fn"].support) for n, s in self.sites.items()}

    def initial(self, generator: torch.Generator, jitter: float = 0.0) -> dict[str, torch.Tensor]:
        """Unconstrained start: net weights for parameter sites, prior medians for latents,
        plus ``jitter`` x standard normal noise."""
        params = dict(self.model.net.named_parameters())
        out = {}
        for n, s in self.sites.items():
            if n in params:
                v = params[n].detach().clone()
            else:
                with torch.no_grad():
                    v = init_to_median(s).detach()
            z = self.transforms[n].inv(v).detach()
            if jitter:
                z = z + jitter * torch.randn(z.shape, generator=generator).to(z)
            out[n] = z
        return out

    def log_density(self, z: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor
                    ) -> torch.Tensor:
        """``log p(z) + log|J| + (N/B) sum log p(y | x, z)`` by the prior's ``log_prob`` and the
        likelihood directly (3-4x faster than a Pyro trace per step; equal to
        :meth:`log_density_pyro`, tested)."""
        values = {n: self.transforms[n](v) for n, v in z.items()}
        prior, model = self.model.prior, self.model
        lp = prior.log_prob({s.name: values[s.name] for s in model.sites},
                            {ls.name: values[ls.name] for ls in prior.latents})
        out = model.predict(x, values)
        scale = (model.num_data or x.shape[0]) / x.shape[0]
        lp = lp - scale * model.likelihood.nll(out, y)
        return lp + self._log_jacobian(z, values)

    def log_density_pyro(self, z: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor
                         ) -> torch.Tensor:
        """The same through ``poutine.trace(poutine.condition(model, values))``."""
        values = {n: self.transforms[n](v) for n, v in z.items()}
        tr = poutine.trace(poutine.condition(self.model, values)).get_trace(x, y)
        return tr.log_prob_sum() + self._log_jacobian(z, values)

    def _log_jacobian(self, z, values) -> torch.Tensor:
        total = torch.zeros((), device=next(iter(z.values())).device)
        for n, v in z.items():
            total = total + self.transforms[n].log_abs_det_jacobian(v, values[n]).sum()
        return total

    def constrained(self, z: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {n: self.transforms[n](v).detach().clone() for n, v in z.items()}


def _check_settings(num_samples: int, burn_in: int, thin: int, num_chains: int,
                    batch_size: int, lr: float, gamma: float, decay_steps: float, beta: float,
                    eps: float, init_jitter: float) -> None:
    for name, v, lo in (("num_samples", num_samples, 1), ("burn_in", burn_in, 0),
                        ("thin", thin, 1), ("num_chains", num_chains, 1),
                        ("batch_size", batch_size, 1)):
        if not v >= lo:
            raise ValueError(f"{name} must be >= {lo} (got {name}={v})")
    if not (math.isfinite(lr) and lr > 0 and 0 <= beta < 1 and math.isfinite(eps) and eps > 0):
        raise ValueError(f"need lr > 0, 0 <= beta < 1, eps > 0, all finite (got lr={lr}, "
                         f"beta={beta}, eps={eps})")
    for name, v in (("gamma", gamma), ("init_jitter", init_jitter)):
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"need {name} >= 0, a finite number (got {name}={v})")
    if not (math.isfinite(decay_steps) and decay_steps > 0):
        raise ValueError(f"need decay_steps > 0, a finite number (got decay_steps={decay_steps})")


def _langevin(model: BayesianNet, data: Dataset | Split, *, preconditioned: bool,
              num_samples: int, burn_in: int, thin: int, num_chains: int, batch_size: int,
              lr: float, gamma: float, decay_steps: float, beta: float, eps: float,
              init_jitter: float, seed: int, device, progress: bool,
              checkpoint_dir: str | os.PathLike | None = None, resume: bool = False,
              history_path: str | os.PathLike | None = None,
              units: str = "log_posterior") -> posterior_mod.InferenceData:
    _check_settings(num_samples, burn_in, thin, num_chains, batch_size, lr, gamma, decay_steps,
                    beta, eps, init_jitter)
    if units not in PSGLD_UNITS:
        raise ValueError(f"units {units!r}; allowed: {', '.join(PSGLD_UNITS)}")
    device = torch.device(device)
    train = (data.train if isinstance(data, Dataset) else data).to(device)
    model.to(device)
    model.num_data = len(train)
    model.kl_weight = 1.0
    target = LangevinTarget(model, train.x, train.y)
    engine = "psgld" if preconditioned else "sgld"
    # plain Python numbers: the key compares their repr (np.float64(0.1) != 0.1 there)
    settings = dict(engine=engine, num_samples=int(num_samples), burn_in=int(burn_in),
                    thin=int(thin), batch_size=int(min(batch_size, len(train))), lr=float(lr),
                    gamma=float(gamma), decay_steps=float(decay_steps),
                    beta=float(beta) if preconditioned else None,
                    eps=float(eps) if preconditioned else None, init_jitter=float(init_jitter),
                    seed=int(seed), data=_data_key(train), init=_init_key(model),
                    prior=model.prior.kind,
                    sites=[(n, tuple(s["value"].shape)) for n, s in target.sites.items()])
    if preconditioned and units != "log_posterior":  # earlier checkpoints stay resumable
        settings["units"] = units
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    results: dict[int, dict[str, Any]] = {}
    if ckpt is not None and resume:
        for chain in range(num_chains):
            path = ckpt / f"chain-{chain}.pt"
            if path.is_file():
                results[chain] = _load_chain(path, _key(settings, chain))
    saved = sorted(results)
    t_start = time.perf_counter()
    # one row per pass over the data per chain; a resume keeps the rows of the chains it reuses
    history = (logs.History.resume(history_path, lambda r: r.get("chain", "").isdigit()
                                   and int(r["chain"]) in results, prefix=f"{engine}/",
                                   step="step")
               if resume else logs.History(history_path, prefix=f"{engine}/", step="step"))
    for chain in range(num_chains):
        if chain in results:
            continue
        try:
            results[chain] = _chain(target, train, chain, preconditioned=preconditioned,
                                    **{k: settings.get(k) for k in _CHAIN_ARGS}, progress=progress,
                                    history=history.append)
        except NonFiniteLossError as e:
            history.close()
            raise NonFiniteLossError(f"{engine}: {e}; {_where(ckpt, saved)}. Lower the step "
                                     f"size lr (now {lr:g})"
                                     + (" or raise eps" if preconditioned else "")
                                     + ".") from None
        if ckpt is not None:
            _save_chain(ckpt / f"chain-{chain}.pt", results[chain], _key(settings, chain))
            saved.append(chain)
    history.close()
    chains = [results[c] for c in range(num_chains)]
    return posterior_mod.from_draws(
        model, {n: torch.stack([r["draws"][n] for r in chains]) for n in target.sites},
        **posterior_mod.training_data(data, train),
        sample_stats={k: np.stack([r[k].numpy(force=True) for r in chains]) for k in ("lr", "lp")},
        attrs={"engine": engine, "num_chains": num_chains, "num_samples": num_samples,
               "burn_in": burn_in, "thin": thin, "lr": lr, "gamma": gamma,
               "batch_size": batch_size, "seed": seed,
               **({"beta": beta, "eps": eps, "units": units} if preconditioned else {}),
               "sampling_seconds": time.perf_counter() - t_start})


_CHAIN_ARGS = ("num_samples", "burn_in", "thin", "batch_size", "lr", "gamma", "decay_steps",
               "beta", "eps", "init_jitter", "seed", "units")


def _chain(target: LangevinTarget, train: Split, chain: int, *, preconditioned: bool,
           num_samples: int, burn_in: int, thin: int, batch_size: int, lr: float,
           gamma: float, decay_steps: float, beta: float | None, eps: float | None,
           init_jitter: float, seed: int, progress: bool, units: str | None = None,
           history: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """One chain from its own generators (seeded by ``(seed, chain)``: its draws do not depend
    on the chains run before it, so a resumed run reproduces them): ``draws`` per site
    ``(num_samples, *shape)`` on the CPU, and per draw the step size ``lr`` and the minibatch
    log density ``lp`` (float64). The log density is checked once per pass over the data;
    ``history`` gets a row per pass (chain, pass, step, phase, step size, mean ``lp``)."""
    engine = "psgld" if preconditioned else "sgld"
    chain_seed = (seed * 1009 + chain) % 2**32  # numpy (pyro.set_rng_seed) takes < 2**32
    gen = torch.Generator().manual_seed(chain_seed)
    pyro.set_rng_seed(chain_seed)
    z = {n: v.requires_grad_(True) for n, v in
         target.initial(gen, init_jitter if chain else 0.0).items()}
    v_acc = {n: None for n in z}
    g_scale = 1.0 / len(train) if units == "paper" else 1.0  # g~ = g / N: Li et al.'s units
    batches = Minibatches(train.x, train.y, batch_size, seed + 7919 * chain)
    kept: dict[str, list[torch.Tensor]] = {n: [] for n in z}
    lrs: list[float] = []
    lps: list[torch.Tensor] = []
    total = burn_in + num_samples * thin
    t = 0
    bar = logs.progress(total=total, desc=f"{engine} chain {chain}", unit="step",
                        enabled=progress, leave=False)
    epoch = 0
    t_chain = time.perf_counter()
    try:
        while t < total:
            first, seen = t, []
            for x, y in batches.epoch(epoch):
                if t >= total:
                    break
                step = lr * (1.0 + t / decay_steps) ** (-gamma) if gamma else lr
                try:
                    lp = target.log_density(z, x, y)
                except ValueError as e:  # a scale driven to 0 or inf fails Pyro's validation
                    if "constraint" not in str(e) or t == 0:
                        raise
                    raise NonFiniteLossError(
                        f"the state left the support at step {t + 1} of {total} of chain {chain} "
                        f"({str(e).splitlines()[0][:120]})") from None
                grads = torch.autograd.grad(lp, list(z.values()))
                with torch.no_grad():
                    for (n, v), g in zip(z.items(), grads, strict=True):
                        noise = torch.randn(v.shape, generator=gen).to(v)
                        if preconditioned:
                            v_acc[n], precond = precondition(v_acc[n], g, beta=beta, eps=eps,
                                                             scale=g_scale)
                            v.add_(0.5 * step * precond * g + (step * precond).sqrt() * noise)
                        else:
                            v.add_(0.5 * step * g + math.sqrt(step) * noise)
                seen.append(lp.detach())
                t += 1
                if t > burn_in and (t - burn_in) % thin == 0:
                    for n, val in target.constrained(z).items():
                        kept[n].append(val.cpu())
                    lrs.append(step)
                    lps.append(lp.detach())
                bar.update(1)
            _check_log_density(seen, first, total, chain)
            epoch += 1
            if seen:
                mean_lp = float(torch.stack(seen).mean())
                bar.set_postfix(lp=mean_lp)
                if history is not None:
                    history({"chain": chain, "epoch": epoch, "step": t,
                             "phase": "burn_in" if t <= burn_in else "sampling", "lr": step,
                             "lp": mean_lp, "seconds": time.perf_counter() - t_chain})
    finally:
        bar.close()
    draws = {n: torch.stack(kept[n]) for n in z}
    for n, d in draws.items():
        if not bool(torch.isfinite(d).all()):
            raise NonFiniteLossError(f"a draw of site {n!r} in chain {chain} is not finite "
                                     f"(the last step of {total} diverged)")
    return {"draws": draws, "lr": torch.tensor(lrs, dtype=torch.float64),
            "lp": torch.stack(lps).double().cpu()}


def _check_log_density(values: list[torch.Tensor], first: int, total: int, chain: int) -> None:
    """Raise at the first non-finite value of a pass's log densities (steps ``first ..``):
    one host synchronisation per pass instead of one per step."""
    if not values:
        return
    lp = torch.stack(values)
    ok = torch.isfinite(lp)
    if bool(ok.all()):
        return
    i = int((~ok).nonzero()[0, 0])
    raise NonFiniteLossError(f"the log density became {float(lp[i])} at step {first + i + 1} of "
                             f"{total} of chain {chain}")


def _where(ckpt: Path | None, saved: list[int]) -> str:
    if ckpt is None or not saved:
        return "no checkpoint was written" + ("" if ckpt is not None else " (no checkpoint_dir)")
    paths = ", ".join(str(ckpt / f"chain-{c}.pt") for c in sorted(saved))
    return (f"the finished chains {', '.join(map(str, sorted(saved)))} are kept at {paths} "
            "(resume=True reuses them)")


def _data_key(split: Split) -> str:
    """A cheap digest of the training split (shape, labels, the inputs' column sums)."""
    import hashlib

    h = hashlib.sha256(str(tuple(split.x.shape)).encode())
    h.update(split.y.detach().cpu().numpy().tobytes())
    h.update(split.x.detach().double().sum(0).cpu().numpy().round(6).tobytes())
    return h.hexdigest()[:16]


def _init_key(model: BayesianNet) -> str:
    """A digest of the network's weights (where every chain starts)."""
    import hashlib

    h = hashlib.sha256()
    for name, p in model.net.named_parameters():
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _key(settings: dict[str, Any], chain: int) -> dict[str, Any]:
    """What a chain's draws depend on (compared on resume)."""
    return {**settings, "chain": chain}


def _save_chain(path: Path, result: dict[str, Any], key: dict[str, Any]) -> None:
    save_checkpoint({"draws": result["draws"], "lr": result["lr"], "lp": result["lp"],
                     "key": repr(sorted(key.items())), "settings": key}, path)


def _load_chain(path: Path, key: dict[str, Any]) -> dict[str, Any]:
    blob = load_checkpoint(path)  # CheckpointError naming the file when it cannot be read
    if not isinstance(blob, dict) or blob.get("key") != repr(sorted(key.items())):
        old = blob.get("settings") if isinstance(blob, dict) else None
        old = old if isinstance(old, dict) else {}
        changed = [f"{k}: {old.get(k)!r} -> {key.get(k)!r}" for k in sorted(set(old) | set(key))
                   if old.get(k) != key.get(k)] or ["unknown"]
        raise CheckpointError(f"{path} was sampled with other settings ({'; '.join(changed)}); "
                              "remove it or run without resume")
    missing = [k for k in ("draws", "lr", "lp") if k not in blob]
    if missing:
        raise CheckpointError(f"{path} holds no {', '.join(missing)}: not an SGLD chain")
    return blob


def sgld(model: BayesianNet, data: Dataset | Split, *, num_samples: int = 1000,
         burn_in: int = 1000, thin: int = 1, num_chains: int = 2, batch_size: int = 128,
         lr: float = 1e-4, gamma: float = 0.0, decay_steps: float = 1000.0,
         init_jitter: float = 0.1, seed: int = 0, device: str | torch.device = "cpu",
         progress: bool = True, checkpoint_dir: str | os.PathLike | None = None,
         resume: bool = False, history_path: str | os.PathLike | None = None
         ) -> posterior_mod.InferenceData:
    """SGLD draws of every site of ``model`` (module docstring) as ``InferenceData``
    (``sample_stats``: the step size ``lr`` and the minibatch log density ``lp`` per draw).

    ``checkpoint_dir``: each finished chain is saved to ``chain-<k>.pt`` there (atomic,
    ``weights_only`` loadable); with ``resume=True`` the chains found there are read back
    instead of re-run (the result is bit-identical to an uninterrupted run), and a file
    written with other settings is refused (:class:`~bayesstruct.errors.CheckpointError`).
    A non-finite log density or draw raises :class:`~bayesstruct.errors.NonFiniteLossError`
    naming the chain and the step; chains already saved stay on disk. ``history_path``: a
    ``history.csv`` with one row per pass over the data per chain (a resume keeps the rows
    of the chains it reads back and redoes the others')."""
    return _langevin(model, data, preconditioned=False, num_samples=num_samples,
                     burn_in=burn_in, thin=thin, num_chains=num_chains, batch_size=batch_size,
                     lr=lr, gamma=gamma, decay_steps=decay_steps, beta=0.0, eps=1.0,
                     init_jitter=init_jitter, seed=seed, device=device, progress=progress,
                     checkpoint_dir=checkpoint_dir, resume=resume,
                     history_path=history_path)


def psgld(model: BayesianNet, data: Dataset | Split, *, num_samples: int = 1000,
          burn_in: int = 1000, thin: int = 1, num_chains: int = 2, batch_size: int = 128,
          lr: float = 1e-4, gamma: float = 0.0, decay_steps: float = 1000.0,
          beta: float = 0.99, eps: float = 1e-5, init_jitter: float = 0.1, seed: int = 0,
          device: str | torch.device = "cpu", progress: bool = True,
          checkpoint_dir: str | os.PathLike | None = None, resume: bool = False,
          history_path: str | os.PathLike | None = None,
          units: Literal["log_posterior", "paper"] = "log_posterior"
          ) -> posterior_mod.InferenceData:
    """pSGLD draws (RMSprop preconditioner ``G = 1 / (eps + sqrt(V))``, ``V`` the running
    mean of ``g~ * g~`` with decay ``beta``); otherwise (checkpoints included) as :func:`sgld`.

    ``units="paper"``: ``g~`` is the per-example mean gradient ``g / N`` as in Li et al.
    (2016), so their ``lr`` and ``lambda`` (``eps``) carry over; ``"log_posterior"`` (the
    default): ``g~ = g``, the gradient of the minibatch log posterior. The same sampler is
    ``(lr, eps, "log_posterior")`` and ``(lr / N, eps / N, "paper")`` (module docstring)."""
    return _langevin(model, data, preconditioned=True, num_samples=num_samples,
                     burn_in=burn_in, thin=thin, num_chains=num_chains, batch_size=batch_size,
                     lr=lr, gamma=gamma, decay_steps=decay_steps, beta=beta, eps=eps,
                     init_jitter=init_jitter, seed=seed, device=device, progress=progress,
                     checkpoint_dir=checkpoint_dir, resume=resume,
                     history_path=history_path, units=units)


# -- the recipes: ``engine: sgld`` / ``engine: psgld`` -----------------------------------------
class SGLDConfig(EngineConfig):
    """``engine: sgld``: :func:`sgld` with step size ``lr * (1 + t / decay_steps)^-gamma``,
    ``burn_in`` steps, then ``num_samples`` draws kept every ``thin`` steps, per chain."""

    engine: Literal["sgld"]
    num_samples: int = Field(500, ge=1)
    num_chains: int = Field(4, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0)
    burn_in: int = Field(1000, ge=0)
    thin: int = Field(1, ge=1)
    gamma: float = Field(0.0, ge=0)
    decay_steps: float = Field(1000.0, gt=0)
    init_jitter: float = Field(0.1, ge=0)

    def summary(self) -> str:
        return f"{self.num_chains} chains"

    def sampler_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of the sampler function (all but the engine's name)."""
        return self.model_dump(exclude={"engine", "description"})


class PSGLDConfig(SGLDConfig):
    """``engine: psgld``: :func:`psgld`, SGLD with the RMSprop preconditioner (``beta``, the
    decay of the running mean of squared gradients; ``eps``, its floor; ``units``, whether
    ``V`` is built from the per-example mean gradient as in Li et al. 2016 (``paper``) or
    from the log posterior's (``log_posterior``, the default; ``lr`` and ``eps`` there are
    ``N`` times the paper's))."""

    engine: Literal["psgld"]  # type: ignore[assignment]
    beta: float = Field(0.99, ge=0, lt=1)
    eps: float = Field(1e-5, gt=0)
    units: Literal["log_posterior", "paper"] = "log_posterior"


def _fit_langevin(sampler, cfg: SGLDConfig, model: BayesianNet, data: Dataset,
                  options: FitOptions) -> posterior_mod.InferenceData:
    require_fixed_prior(model, cfg.engine)
    try:
        return sampler(model, data, seed=options.seed, device=options.device,
                       checkpoint_dir=options.checkpoint_dir, resume=options.resume,
                       history_path=options.history_path,
                       progress=options.progress, **cfg.sampler_kwargs())
    except ValueError as e:  # improper priors, discrete structure
        raise ConfigError(f"engine {cfg.engine!r}: {e}") from None


@register_engine(SGLDConfig)
def fit_sgld(cfg: SGLDConfig, model: BayesianNet, data: Dataset, options: FitOptions
             ) -> posterior_mod.InferenceData:
    """Run :func:`sgld` as the recipe ``cfg`` says."""
    return _fit_langevin(sgld, cfg, model, data, options)


@register_engine(PSGLDConfig)
def fit_psgld(cfg: PSGLDConfig, model: BayesianNet, data: Dataset, options: FitOptions
              ) -> posterior_mod.InferenceData:
    """Run :func:`psgld` as the recipe ``cfg`` says."""
    return _fit_langevin(psgld, cfg, model, data, options)
