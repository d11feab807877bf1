"""M4.2: NUTS / HMC on a BayesianNet with Pyro's MCMC (full-batch; for the small models).

Each chain is a ``pyro.infer.MCMC`` run with its own seed and warm-up (step size and diagonal
mass matrix adaptation), one after another in this process, with a progress bar per chain;
(``jit_compile=True`` is refused for now: the network runs through
``torch.func.functional_call``, which the JIT tracer rejects.) The draws
of every sample site and, per draw, ``diverging`` and the step size go into the same
``InferenceData`` layout as the other engines (``sample_stats`` included), so pruning, rho from
samples (KDE) and ``bayesstruct diagnose`` work unchanged.

Hierarchies mix better non-centred: the horseshoe here is already non-centred (``w = s z w~``,
BC-GHS); ARD's precision is centred, and NUTS may report divergences on it (diagnose says so).
"""

from __future__ import annotations

import time

import numpy as np
import pyro
import torch
from pyro.infer import HMC, MCMC, NUTS

from .. import posterior as posterior_mod
from ..data import Dataset, Split
from ..models.bayesnet import BayesianNet

__all__ = ["KERNELS", "mcmc"]

KERNELS = ("nuts", "hmc")


def mcmc(model: BayesianNet, data: Dataset | Split, *, kernel: str = "nuts",
         num_warmup: int = 500, num_samples: int = 500, num_chains: int = 4,
         jit_compile: bool = False, target_accept: float = 0.8, max_tree_depth: int = 10,
         step_size: float = 0.1, num_steps: int = 10, seed: int = 0,
         device: str | torch.device = "cpu", progress: bool = True
         ) -> posterior_mod.InferenceData:
    """Draws from ``p(w, latents | D)`` by NUTS (or HMC with ``num_steps`` leapfrog steps).

    Args:
        data: a Dataset (its training split) or a Split; the whole split is one batch.
        target_accept: NUTS/HMC step-size adaptation target.
        jit_compile: trace the potential with the PyTorch JIT (not supported yet, see the
            module docstring).
    """
    if kernel not in KERNELS:
        raise ValueError(f"kernel={kernel!r}; allowed: {', '.join(KERNELS)}")
    for name, v, lo in (("num_warmup", num_warmup, 0), ("num_samples", num_samples, 1),
                        ("num_chains", num_chains, 1)):
        if v < lo:
            raise ValueError(f"{name} must be >= {lo} (got {v})")
    if jit_compile:
        # BayesianNet evaluates the network with torch.func.functional_call, which the PyTorch
        # JIT tracer refuses ("The stateless API can't be used with Jitted modules")
        raise NotImplementedError("jit_compile=True is not supported yet: BayesianNet's "
                                  "functional_call cannot be JIT-traced; use jit_compile=False")
    if not getattr(model.prior, "proper", True):
        raise ValueError(f"{type(model.prior).__name__} is an improper prior: its posterior "
                         "is not a distribution to sample (use SVI)")
    device = torch.device(device)
    train = (data.train if isinstance(data, Dataset) else data).to(device)
    model.to(device)
    model.num_data = len(train)
    model.kl_weight = 1.0
    chains: list[dict[str, torch.Tensor]] = []
    diverging, steps = [], []
    t0 = time.perf_counter()
    for c in range(num_chains):
        pyro.set_rng_seed(seed * 1009 + c)
        if kernel == "nuts":
            k = NUTS(model, target_accept_prob=target_accept, max_tree_depth=max_tree_depth,
                     jit_compile=jit_compile, ignore_jit_warnings=True, step_size=step_size)
        else:
            k = HMC(model, step_size=step_size, num_steps=num_steps,
                    target_accept_prob=target_accept, jit_compile=jit_compile,
                    ignore_jit_warnings=True)
        run = MCMC(k, num_samples=num_samples, warmup_steps=num_warmup, num_chains=1,
                   disable_progbar=not progress)
        run.run(train.x, train.y)
        chains.append({n: v.detach().cpu() for n, v in run.get_samples().items()})
        div = np.zeros(num_samples, dtype=bool)
        idx = run.diagnostics().get("divergences", {}).get("chain 0", [])
        div[np.asarray(idx, dtype=int)] = True
        diverging.append(div)
        steps.append(np.full(num_samples, float(k.step_size)))
    seconds = time.perf_counter() - t0
    draws = {n: torch.stack([ch[n] for ch in chains]) for n in chains[0]}
    return posterior_mod.from_draws(
        model, draws, observed=train.y,
        sample_stats={"diverging": np.stack(diverging), "step_size": np.stack(steps)},
        attrs={"engine": kernel, "num_chains": num_chains, "num_warmup": num_warmup,
               "num_samples": num_samples, "jit_compile": jit_compile, "seed": seed,
               "sampling_seconds": seconds})
