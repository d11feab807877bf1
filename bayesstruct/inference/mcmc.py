"""NUTS / HMC (Hoffman & Gelman 2014; Neal 2011) on a BayesianNet with Pyro's MCMC (full-batch;
for the small models).

Each chain is its own ``pyro.infer.MCMC`` run with seed ``seed * 1009 + chain`` and its own
warm-up (step size and diagonal mass matrix adaptation). ``chain_method="sequential"`` runs
them one after another with a progress bar each; ``"parallel"`` runs them in worker processes
(``spawn``, one torch thread each, at most one per CPU core), which gives the same draws as the
sequential run (the seeds are per chain; tested) in less wall-clock time when there is more
than one core. ``jit_compile=True`` traces Pyro's potential energy with the PyTorch JIT: the
network runs through plain ``F.linear`` calls (:func:`~bayesstruct.models.bayesnet.
sequential_forward`), so the trace holds (2.1x faster on 65-parameter logistic regression,
``benchmarks/mcmc.py``).

The draws of every sample site go into the same ``InferenceData`` layout as the other engines,
so pruning, rho from samples (KDE) and ``bayesstruct diagnose`` work unchanged; per draw,
``sample_stats`` holds ``diverging``, the adapted ``step_size`` and what the kernel computed
for the transition (recorded by a hook, as Pyro keeps none of it per draw): ``lp``,
``energy``, ``acceptance_rate``, ``n_steps`` and, for NUTS, ``tree_depth``, so that
``az.bfmi`` and ``az.plot_energy`` apply.

Hierarchies mix better non-centred. The horseshoe here is non-centred by construction
(``w = s z w~``, BC-GHS); the sites a prior declares centred (:meth:`Prior.centred_sites`: ARD
with a Gamma hyperprior, ``w ~ N(0, 1/alpha)``) are sampled as ``w_std ~ N(0, 1)``,
``w = w_std / sqrt(alpha)`` through Pyro's ``LocScaleReparam(centered=0.0)``, and the draws of
``w`` are formed from those of ``w_std`` and ``alpha`` afterwards (``noncentred=False`` samples
them as written). Tested: on a prior-dominated ARD model the draws follow the Student-t
marginal of ``w`` and the Gamma law of ``alpha``, with no divergences.

Discrete structure (the IBP's unit masks) is summed out exactly: the chain runs with
the prior in its enumerated form (:meth:`~bayesstruct.priors.IBP.enumerated`: one categorical
site per layer over the ``2^K`` mask configurations, which Pyro's NUTS marginalises by
parallel enumeration), and each draw's masks are then drawn from their exact conditional
``p(z | v, w, D)`` by Pyro's ``infer_discrete``; the draws hold ``<layer>.z`` like an SVI
posterior's.

A chain that finishes is saved to ``checkpoint_dir/chain-<k>.pt`` (tensors only,
``weights_only`` loadable); with ``resume=True`` finished chains are read back, not re-run.

``backend="batched"`` runs NUTS with every chain in lockstep in this process
(:mod:`~bayesstruct.inference.batched_nuts`: Stan's warm-up, multinomial NUTS with the
generalised no-U-turn criterion, the potential derived from the same Pyro model, traced and,
with ``jit_compile=True``, compiled by TorchInductor); ``chain_method`` does not apply there
and no per-chain checkpoint is written. It draws continuous sites only: a prior with discrete
structure (the IBP) and ``kernel="hmc"`` are refused with the reason.

A model whose log density is NaN/inf at every initial point Pyro tries, or a chain with a
non-finite draw, stops the run with :class:`~bayesstruct.errors.NonFiniteLossError` naming the
chain (and the site); chains finished before stay on disk (a bad chain is not saved).
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyro
import torch
from pydantic import Field
from pyro import poutine
from pyro.infer import HMC, MCMC, NUTS, infer_discrete
from pyro.infer.reparam import LocScaleReparam

from .. import logs
from .. import posterior as posterior_mod
from ..data import Dataset, Split
from ..errors import CheckpointError, ConfigError, NonFiniteLossError
from ..files import load_checkpoint, save_checkpoint
from ..models.bayesnet import BayesianNet
from .registry import EngineConfig, FitOptions, register_engine, require_fixed_prior

__all__ = ["BACKENDS", "CHAIN_METHODS", "KERNELS", "MCMCConfig", "fit_mcmc", "mcmc"]

KERNELS = ("nuts", "hmc")
CHAIN_METHODS = ("sequential", "parallel")
BACKENDS = ("pyro", "batched")


def mcmc(model: BayesianNet, data: Dataset | Split, *, kernel: str = "nuts",
         num_warmup: int = 500, num_samples: int = 500, num_chains: int = 4,
         chain_method: str = "sequential", jit_compile: bool = False,
         target_accept: float = 0.8, max_tree_depth: int = 10, step_size: float = 0.1,
         num_steps: int = 10, noncentred: bool = True, seed: int = 0,
         device: str | torch.device = "cpu", checkpoint_dir: str | os.PathLike | None = None,
         resume: bool = False, progress: bool = True, backend: str = "pyro"
         ) -> posterior_mod.InferenceData:
    """Draws from ``p(w, latents | D)`` by NUTS, or by HMC with the trajectory length
    ``step_size * num_steps`` (Pyro fixes the length, not the count: after step-size adaptation
    HMC takes ``length / adapted step size`` leapfrog steps, which can be as few as one).

    Args:
        data: a Dataset (its training split) or a Split; the whole split is one batch.
        chain_method: ``sequential`` or ``parallel`` (worker processes; CPU only).
        jit_compile: trace the potential energy with the PyTorch JIT.
        target_accept: NUTS/HMC step-size adaptation target.
        step_size: the initial step size (adapted during warm-up).
        noncentred: decentre the prior's centred sites (module docstring).
        checkpoint_dir: where each finished chain is saved (``chain-K.pt``).
        resume: reuse the chains already saved in ``checkpoint_dir``.
        backend: ``pyro`` (Pyro's MCMC, a chain at a time or in worker processes) or
            ``batched`` (every chain at once, :mod:`~bayesstruct.inference.batched_nuts`;
            NUTS only, continuous sites only).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}; allowed: {', '.join(BACKENDS)}")
    if kernel not in KERNELS:
        raise ValueError(f"kernel={kernel!r}; allowed: {', '.join(KERNELS)}")
    if chain_method not in CHAIN_METHODS:
        raise ValueError(f"chain_method={chain_method!r}; allowed: {', '.join(CHAIN_METHODS)}")
    for name, v, lo in (("num_warmup", num_warmup, 0), ("num_samples", num_samples, 1),
                        ("num_chains", num_chains, 1)):
        if not v >= lo:
            raise ValueError(f"{name} must be >= {lo} (got {name}={v})")
    if not 0.0 < target_accept < 1.0:
        raise ValueError(f"target_accept must lie in (0, 1) (got target_accept={target_accept})")
    if not (math.isfinite(step_size) and step_size > 0):
        raise ValueError(f"need step_size > 0, a finite number (got step_size={step_size})")
    for name, v in (("max_tree_depth", max_tree_depth), ("num_steps", num_steps)):
        if not v >= 1:
            raise ValueError(f"{name} must be >= 1 (got {name}={v})")
    model.prior.require_proper()
    model.require_no_point_estimates(kernel.upper())
    device = torch.device(device)
    if backend == "batched":
        return _mcmc_batched(model, data, kernel=kernel, num_warmup=num_warmup,
                             num_samples=num_samples, num_chains=num_chains,
                             jit_compile=jit_compile, target_accept=target_accept,
                             max_tree_depth=max_tree_depth, step_size=step_size,
                             noncentred=noncentred, seed=seed, device=device,
                             chain_method=chain_method)
    if chain_method == "parallel" and device.type != "cpu":
        raise ValueError("chain_method='parallel' runs chains in CPU processes; on "
                         f"{device} use chain_method='sequential'")
    train = (data.train if isinstance(data, Dataset) else data).to(device)
    model.to(device)
    model.num_data = len(train)
    model.kl_weight = 1.0
    settings = dict(kernel=kernel, num_warmup=num_warmup, num_samples=num_samples,
                    jit_compile=jit_compile, target_accept=target_accept,
                    max_tree_depth=max_tree_depth, step_size=step_size, num_steps=num_steps,
                    decentre=model.prior.centred_sites() if noncentred else [],
                    enumerate=bool(model.prior.discrete))
    if settings["enumerate"]:
        with model.prior.enumerated():  # refuses layers too wide to enumerate, before any work
            pass
    seeds = [(seed * 1009 + c) % 2**32 for c in range(num_chains)]
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    results: dict[int, dict[str, Any]] = {}
    if ckpt is not None and resume:
        for c in range(num_chains):
            if (ckpt / f"chain-{c}.pt").is_file():
                results[c] = _load_chain(ckpt / f"chain-{c}.pt", settings, seeds[c])
    todo = [c for c in range(num_chains) if c not in results]
    saved = sorted(results) if ckpt is not None else []

    def failed(c: int, e: NonFiniteLossError) -> NonFiniteLossError:
        if saved:
            where = (f"the finished chains {', '.join(map(str, saved))} are kept at "
                     + ", ".join(str(ckpt / f"chain-{k}.pt") for k in saved)
                     + " (resume=True reuses them)")
        else:
            where = "no checkpoint was written" + ("" if ckpt is not None
                                                   else " (no checkpoint_dir)")
        return NonFiniteLossError(
            f"{kernel} chain {c}: {e}; {where}. Check the data and the model for NaN/inf "
            "(inputs, targets, likelihood scale) and the prior's support")

    def done(c: int, r: dict[str, Any]) -> None:
        _check_finite(r["draws"])
        results[c] = r
        if ckpt is not None:
            _save_chain(ckpt / f"chain-{c}.pt", r, settings, seeds[c])
            saved.append(c)

    t0 = time.perf_counter()
    workers = min(len(todo), os.cpu_count() or 1)
    if chain_method == "parallel" and workers > 1:
        ctx = mp.get_context("spawn")
        errors: dict[int, NonFiniteLossError] = {}
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_one_thread) as pool:
            futures = {pool.submit(_chain, model, train.x, train.y, seeds[c], settings,
                                   False): c for c in todo}
            for f in logs.progress(as_completed(futures), total=len(futures),
                                   desc=f"{kernel} chains", unit="chain", enabled=progress):
                try:  # a bad chain does not stop the good ones from being saved
                    done(futures[f], f.result())
                except NonFiniteLossError as e:
                    errors[futures[f]] = e
        if errors:
            c = min(errors)
            raise failed(c, errors[c]) from None
    else:
        for c in todo:
            try:  # Pyro's own bar on a terminal; a line per chain in logs and pipes
                with logs.phase(f"{kernel} chain {c} ({num_warmup} warm-up + {num_samples} "
                                "draws)", enabled=progress and not logs.interactive()):
                    done(c, _chain(model, train.x, train.y, seeds[c], settings, progress))
            except NonFiniteLossError as e:
                raise failed(c, e) from None
    seconds = time.perf_counter() - t0
    chains = [_recentre(model, results[c]["draws"], settings["decentre"])
              for c in range(num_chains)]
    draws = {n: torch.stack([ch[n] for ch in chains]) for n in chains[0]}
    results = [results[c] for c in range(num_chains)]
    stats = {"diverging": np.stack([r["diverging"].numpy(force=True) for r in results]),
             "step_size": np.stack([r["step_size"].numpy(force=True) for r in results])}
    for name in results[0].get("stats") or {}:  # absent from chains saved by older versions
        if all(name in (r.get("stats") or {}) for r in results):
            stats[name] = np.stack([r["stats"][name].numpy(force=True) for r in results])
    return posterior_mod.from_draws(
        model, draws, **posterior_mod.training_data(data, train),
        sample_stats=stats,
        attrs={"engine": kernel, "num_chains": num_chains, "num_warmup": num_warmup,
               "num_samples": num_samples, "jit_compile": jit_compile, "seed": seed,
               "chain_method": chain_method, "noncentred": ",".join(settings["decentre"]),
               "sampling_seconds": seconds})


def _mcmc_batched(model: BayesianNet, data: Dataset | Split, *, kernel: str, num_warmup: int,
                  num_samples: int, num_chains: int, jit_compile: bool, target_accept: float,
                  max_tree_depth: int, step_size: float, noncentred: bool, seed: int,
                  device: torch.device, chain_method: str) -> posterior_mod.InferenceData:
    """``backend="batched"``: every chain at once (module docstring)."""
    from . import batched_nuts as bn

    if kernel != "nuts":
        raise ValueError(f"backend='batched' implements NUTS only (got kernel={kernel!r}); use "
                         "backend='pyro' for HMC")
    if model.prior.discrete:
        raise ValueError(
            f"backend='batched' draws continuous sites only, and the {type(model.prior).__name__}"
            " prior has discrete structure (summed out by enumeration only in backend='pyro')")
    train = (data.train if isinstance(data, Dataset) else data).to(device)
    model.to(device)
    model.num_data = len(train)
    model.kl_weight = 1.0
    decentre = model.prior.centred_sites() if noncentred else []
    target = model
    if decentre:
        target = poutine.reparam(model, {n: LocScaleReparam(centered=0.0) for n in decentre})
    pyro.set_rng_seed(seed)
    potential = bn.model_potential(target, train.x, train.y)
    init = bn.initial_points(potential, num_chains, seed=seed)
    result = bn.batched_nuts(potential, init, num_warmup=num_warmup, num_samples=num_samples,
                             target_accept=target_accept, max_tree_depth=max_tree_depth,
                             step_size=step_size, compile="inductor" if jit_compile else "fx",
                             seed=seed, device=device)
    sites = {n: v.detach().cpu() for n, v in potential.constrain(result.draws).items()}
    chains = []
    for c in range(num_chains):
        one = {n: v[c] for n, v in sites.items()}
        try:
            _check_finite(one)
        except NonFiniteLossError as e:
            raise NonFiniteLossError(f"nuts (batched) chain {c}: {e}") from None
        chains.append(_recentre(model, one, decentre))
    draws = {n: torch.stack([ch[n] for ch in chains]) for n in chains[0]}
    stats = {n: v.numpy(force=True) for n, v in result.stats.items()}
    for n in _FLOAT_STATS:
        stats[n] = stats[n].astype(np.float64)
    return posterior_mod.from_draws(
        model, draws, **posterior_mod.training_data(data, train),
        sample_stats=stats,
        attrs={"engine": kernel, "backend": "batched", "num_chains": num_chains,
               "num_warmup": num_warmup, "num_samples": num_samples,
               "jit_compile": jit_compile, "seed": seed, "chain_method": chain_method,
               "noncentred": ",".join(decentre), "sampling_seconds": result.run_seconds,
               "compile_seconds": result.compile_seconds})


def _one_thread() -> None:
    torch.set_num_threads(1)


def _chain(model: BayesianNet, x: torch.Tensor, y: torch.Tensor, seed: int,
           settings: dict[str, Any], progress: bool) -> dict[str, Any]:
    """One chain: its draws (numpy), ``diverging`` per draw and the adapted step size."""
    pyro.set_rng_seed(seed)
    s = settings
    target = model
    if s["decentre"]:
        target = poutine.reparam(model, {n: LocScaleReparam(centered=0.0) for n in s["decentre"]})
    enum = bool(s.get("enumerate"))
    plates = {"max_plate_nesting": 1} if enum else {}
    with model.prior.enumerated() if enum else contextlib.nullcontext():
        if s["kernel"] == "nuts":
            k = _StatsNUTS(target, target_accept_prob=s["target_accept"],
                           max_tree_depth=s["max_tree_depth"], jit_compile=s["jit_compile"],
                           ignore_jit_warnings=True, step_size=s["step_size"], **plates)
        else:
            k = _StatsHMC(target, step_size=s["step_size"], num_steps=s["num_steps"],
                          target_accept_prob=s["target_accept"], jit_compile=s["jit_compile"],
                          ignore_jit_warnings=True, **plates)
        run = MCMC(k, num_samples=s["num_samples"], warmup_steps=s["num_warmup"],
                   hook_fn=_record_stats, num_chains=1,
                   disable_progbar=not (progress and logs.interactive()
                                        and logs.verbosity() >= 0))
        try:
            run.run(x, y)
        except (RuntimeError, ValueError) as e:
            if "cannot find valid initial params" not in str(e):
                raise
            raise NonFiniteLossError(
                "the log density (or its gradient) is not finite at any of the initial points "
                "Pyro tried (\"cannot find valid initial params\")") from None
        draws = {n: v.detach() for n, v in run.get_samples().items()}
        if enum:
            draws.update(discrete_draws(model, x, y, draws))
    diverging = np.zeros(s["num_samples"], dtype=bool)
    idx = run.diagnostics().get("divergences", {}).get("chain 0", [])
    diverging[np.asarray(idx, dtype=int)] = True
    return {"draws": {n: v.cpu() for n, v in draws.items()},
            "diverging": torch.from_numpy(diverging),
            "step_size": torch.full((s["num_samples"],), float(k.step_size)),
            "stats": {n: torch.tensor(v, dtype=torch.float64 if n in _FLOAT_STATS
                                      else torch.int64) for n, v in k.stats.items()}}


_FLOAT_STATS = ("lp", "energy", "acceptance_rate")


class _Recorder:
    """Per-transition statistics of Pyro's HMC / NUTS kernels, recorded in the sampling phase
    by :func:`_record_stats` (Pyro keeps none per draw):

    * ``lp`` -- the log density at the draw (minus the potential energy, in the unconstrained
      space, Jacobian included);
    * ``energy`` -- the Hamiltonian at the start of the transition, after the momentum refresh
      (potential plus kinetic energy), which the trajectory conserves up to integration
      error: what the energy diagnostics read (E-BFMI; Betancourt 2016);
    * ``acceptance_rate`` -- the transition's mean Metropolis acceptance probability over its
      trajectory (NUTS) or of its proposal (HMC), which step-size adaptation targets;
    * ``n_steps`` -- leapfrog steps taken; ``tree_depth`` -- doublings of the NUTS tree.
    """

    def _sample_r(self, name):
        r, r_unscaled = super()._sample_r(name)
        self._energy_start = float(self._kinetic_energy(r_unscaled) + self._potential_energy_last)
        self._leapfrogs, self._doublings = 0, 0
        return r, r_unscaled

    def setup(self, warmup_steps, *args, **kwargs):
        self.stats: dict[str, list] = {}  # kept after the run (``cleanup`` resets the rest)
        self._last_mean_accept = 0.0
        super().setup(warmup_steps, *args, **kwargs)


class _StatsNUTS(_Recorder, NUTS):
    def _build_basetree(self, *args, **kwargs):
        self._leapfrogs += 1
        return super()._build_basetree(*args, **kwargs)

    def _build_tree(self, z, r, z_grads, log_slice, direction, tree_depth, energy_current):
        self._doublings = max(self._doublings, tree_depth + 1)
        return super()._build_tree(z, r, z_grads, log_slice, direction, tree_depth,
                                   energy_current)


class _StatsHMC(_Recorder, HMC):
    pass


def _record_stats(kernel: _Recorder, params, stage: str, i: int) -> None:
    """MCMC's ``hook_fn``: append the statistics of sampling-phase transition ``i``."""
    if not stage.startswith("Sample"):
        return
    n = i + 1  # the kernel's running mean of acceptance over the sampling phase gives each one
    mean = kernel._mean_accept_prob
    accept = mean if n == 1 else n * mean - (n - 1) * kernel._last_mean_accept
    kernel._last_mean_accept = mean
    row = {"lp": -float(kernel._potential_energy_last), "energy": kernel._energy_start,
           "acceptance_rate": min(max(accept, 0.0), 1.0)}
    if isinstance(kernel, NUTS):
        row.update(n_steps=kernel._leapfrogs, tree_depth=kernel._doublings)
    else:
        row["n_steps"] = int(kernel.num_steps)
    for key, v in row.items():
        kernel.stats.setdefault(key, []).append(v)


@torch.no_grad()
def discrete_draws(model: BayesianNet, x: torch.Tensor, y: torch.Tensor,
                   draws: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per draw of the continuous sites, one draw of the enumerated discrete structure from
    its exact conditional (Pyro's ``infer_discrete`` at temperature 1): ``<layer>.z`` of
    shape ``(draws, K)``. The prior must be in its enumerated form."""
    prior = model.prior
    n = next(iter(draws.values())).shape[0]
    out: dict[str, list[torch.Tensor]] = {f"{p.layer}.z": [] for p, _ in prior.layers}
    for i in range(n):
        cond = poutine.condition(model, data={k: v[i] for k, v in draws.items()})
        tr = poutine.trace(infer_discrete(cond, first_available_dim=-2, temperature=1)
                           ).get_trace(x, y)
        for p, _ in prior.layers:
            config = tr.nodes[f"{p.layer}.z_config"]["value"].reshape(())
            out[f"{p.layer}.z"].append(prior.configuration(p.shape[0], config))
    return {k: torch.stack(v) for k, v in out.items()}


@torch.no_grad()
def _recentre(model: BayesianNet, draws: dict[str, torch.Tensor], decentred: list[str]
              ) -> dict[str, torch.Tensor]:
    """Replace each decentred site's ``<name>_decentered`` draws by ``w = loc + scale * w_std``,
    with ``loc, scale`` the prior's at the same draw's latents."""
    if not decentred:
        return dict(draws)
    out = {n: v for n, v in draws.items() if not n.endswith("_decentered")}
    prior = model.prior
    latent_names = [ls.name for ls in prior.latents]
    for name in decentred:
        std = draws[f"{name}_decentered"]
        site = model.site(name)
        ws = []
        for i in range(std.shape[0]):
            loc, scale = prior.weight_loc_scale(site, {n: draws[n][i] for n in latent_names})
            ws.append(loc + scale * std[i])
        out[name] = torch.stack(ws)
    return out


def _check_finite(draws: dict[str, torch.Tensor]) -> None:
    """Refuse a chain with a NaN/inf draw, naming the first such site and draw."""
    for name, v in draws.items():
        bad = ~torch.isfinite(v.reshape(v.shape[0], -1)).all(1) if v.dim() else \
            ~torch.isfinite(v.reshape(1))
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            raise NonFiniteLossError(f"draw {i + 1} of site {name!r} is not finite "
                                     f"({int(bad.sum())} of {bad.numel()} draws are)")


def _save_chain(path: Path, result: dict[str, Any], settings: dict[str, Any], seed: int) -> None:
    blob = {"draws": result["draws"], "diverging": result["diverging"],
            "step_size": result["step_size"], "stats": result.get("stats", {}),
            "key": _key(settings, seed)}
    save_checkpoint(blob, path)


def _load_chain(path: Path, settings: dict[str, Any], seed: int) -> dict[str, Any]:
    blob = load_checkpoint(path)  # CheckpointError naming the file when it cannot be read
    if not isinstance(blob, dict) or blob.get("key") != _key(settings, seed):
        theirs = blob.get("key") if isinstance(blob, dict) else None
        raise CheckpointError(f"{path} was sampled with other settings ({theirs}); "
                              "remove it or run without resume")
    return blob


def _key(settings: dict[str, Any], seed: int) -> str:
    return repr(sorted({**settings, "seed": seed}.items()))


# -- the recipe: ``engine: nuts`` / ``engine: hmc`` ---------------------------------------------
class MCMCConfig(EngineConfig):
    """``engine: nuts`` or ``hmc``: :func:`mcmc` with that kernel on the whole training set
    (``chain_method: parallel`` runs the chains in worker processes on CPU; on CUDA they run
    one after another). ``backend: batched`` runs every NUTS chain at once in this process
    (:mod:`~bayesstruct.inference.batched_nuts`; ``chain_method`` does not apply)."""

    engine: Literal["nuts", "hmc"]
    backend: Literal["pyro", "batched"] = "pyro"
    num_samples: int = Field(500, ge=1)
    num_chains: int = Field(4, ge=1)
    num_warmup: int = Field(500, ge=0)
    chain_method: Literal["sequential", "parallel"] = "parallel"
    jit_compile: bool = True
    target_accept: float = Field(0.8, gt=0, lt=1)
    max_tree_depth: int = Field(10, ge=1)
    step_size: float = Field(0.1, gt=0)
    num_steps: int = Field(10, ge=1)
    noncentred: bool = True

    def summary(self) -> str:
        return f"{self.num_chains} chains"


@register_engine(MCMCConfig)
def fit_mcmc(cfg: MCMCConfig, model: BayesianNet, data: Dataset, options: FitOptions
             ) -> posterior_mod.InferenceData:
    """Run :func:`mcmc` as the recipe ``cfg`` says (a prior the sampler cannot take is a
    ``ConfigError`` in the sampler's words)."""
    require_fixed_prior(model, cfg.engine)
    if cfg.backend == "batched" and cfg.engine != "nuts":
        raise ConfigError(f"inference.backend: 'batched' implements NUTS only (engine is "
                          f"{cfg.engine!r}); use backend: pyro")
    chain_method = (cfg.chain_method if torch.device(options.device).type == "cpu"
                    else "sequential")
    try:
        post = mcmc(model, data, kernel=cfg.engine, num_warmup=cfg.num_warmup,
                    num_samples=cfg.num_samples, num_chains=cfg.num_chains,
                    chain_method=chain_method, jit_compile=cfg.jit_compile,
                    target_accept=cfg.target_accept, max_tree_depth=cfg.max_tree_depth,
                    step_size=cfg.step_size, num_steps=cfg.num_steps,
                    noncentred=cfg.noncentred, seed=options.seed, device=options.device,
                    checkpoint_dir=options.checkpoint_dir, resume=options.resume,
                    progress=options.progress, backend=cfg.backend)
    except ValueError as e:  # improper priors and the like
        raise ConfigError(f"engine {cfg.engine!r}: {e}") from None
    # history.csv: one row per chain and draw of the sample statistics (written at the end)
    if options.history_path is not None:
        logs.History(options.history_path, logs.sample_stats_rows(post), step="draw",
                     tensorboard=lambda _: None).close()
    return post
