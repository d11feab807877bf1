"""NUTS with ``C`` chains run in lockstep on ``(C, D)`` tensors, in one process, with a potential
derived from a Pyro model and compiled.

The density
-----------
:func:`model_potential` takes the potential energy ``U(z) = -log p(x(z), D) - log |det J(z)|``
over the unconstrained parameters ``z`` from Pyro itself (``pyro.infer.mcmc.util.
initialize_model``, the function Pyro's own NUTS uses), flattened into one vector of length
``D`` (sites in trace order, each reshaped row-major). :func:`batched_nuts` then removes
Pyro's per-call work: ``U`` is traced once into an FX graph of ATen operations
(``torch.fx.experimental.proxy_tensor.make_fx``), its gradient is taken and vectorised over the
chains with ``torch.func.vmap(torch.func.grad_and_value(U))``, and the whole leapfrog step and
its tree bookkeeping (below) are traced again into one graph, which ``compile="inductor"``
compiles to one fused C++ (or Triton) function. So one leapfrog step of all ``C`` chains is
one Python call, or less: ``unroll`` consecutive leaves of a subtree go into one compiled call
(chains that stop inside it are masked). The traced potential is tested equal to Pyro's
``potential_fn``, value and autograd gradient, at random points.

The sampler
-----------
Multinomial NUTS (Hoffman & Gelman 2014; Betancourt 2017, "A Conceptual Introduction to
Hamiltonian Monte Carlo", appendix A): each transition draws ``p ~ N(0, M)``, ``M^-1 =
diag(m)``, and doubles a trajectory of leapfrog steps

    p_{1/2} = p - (eps/2) grad U(z),   z' = z + eps m * p_{1/2},   p' = p_{1/2} - (eps/2) grad U(z')

forwards or backwards in time (a fair coin per doubling, per chain) until the trajectory
turns, diverges (``H(z, p) - H_0 > 1000`` with ``H = U(z) + p^T M^-1 p / 2``) or has made
``max_tree_depth`` doublings. Each state carries the weight ``w = exp(H_0 - H)``; inside a new
subtree the proposal is drawn from the subtree's states in proportion to ``w`` (progressively:
state ``n`` replaces the current pick with probability ``w_n / sum_{k<=n} w_k``), and the
subtree's pick replaces the trajectory's with probability ``min(1, W_new / W_old)`` (biased
progressive sampling, Betancourt 2017, A.3.2), which moves the draw away from its start.

The generalised no-U-turn criterion (Betancourt 2017, A.4.2): a (sub)trajectory with end
momenta ``p_-``, ``p_+`` and momentum sum ``rho`` turns when

    (M^-1 p_-) . (rho - (p_- + p_+)/2) <= 0   or   (M^-1 p_+) . (rho - (p_- + p_+)/2) <= 0,

checked for the whole trajectory after every doubling and, inside a new subtree, for every
balanced sub-subtree as soon as it is complete; a subtree that turns or diverges is rejected
and ends the transition. The sub-subtree checks follow the iterative tree building of Phan,
Pradhan & Jankowiak (2019): with the subtree's leaves numbered ``n = 0, 1, ...``, an even leaf
``n`` stores its momentum and the running momentum sum in checkpoint slot ``popcount(n)``; an
odd leaf with ``t`` trailing one bits completes the sub-subtrees of sizes ``2, 4, ..., 2^t``,
which started at the leaves stored in slots ``popcount(n) - 1`` down to ``popcount(n) - t``,
and their momentum sums are ``rho_n - rho_{start} + p_{start}``. As every chain at doubling
``j`` is at the same leaf ``n`` of its subtree, the slots are the same for all chains; a chain
whose trajectory has ended is masked (it costs nothing extra: the step is computed for all
``C`` rows at once).

Warm-up (Stan's, per chain): step size by dual averaging (Hoffman & Gelman 2014, section
3.2.1), towards a mean acceptance statistic ``delta = target_accept`` (the mean over the
trajectory's states of ``min(1, w)``),

    H_t = (1 - 1/(t + t0)) H_{t-1} + (delta - a_t)/(t + t0),   log eps_t = mu - sqrt(t)/gamma H_t,
    log eps_bar_t = t^-kappa log eps_t + (1 - t^-kappa) log eps_bar_{t-1},

with ``mu = log(10 eps_0)``, ``gamma = 0.05``, ``t0 = 10``, ``kappa = 0.75`` and ``eps_bar``
used after warm-up; the diagonal inverse mass matrix ``m`` is the variance of the draws of
each slow window, regularised as Stan does, ``(n/(n+5)) var + 1e-3 * 5/(n+5)``, in windows of
25, 50, 100, ... iterations after an initial buffer of 75 and before a final one of 50
(Stan's 75/25/50 schedule, shrunk to 15 %/75 %/10 % for short warm-ups). The first step size
comes from Hoffman & Gelman's (2014) heuristic (their Algorithm 4); after each window dual
averaging restarts with ``mu = log(10 eps)`` at the current step, as NumPyro does (Stan reruns
the heuristic there).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyro
import torch
from pyro import poutine
from torch import Tensor

from ..errors import NonFiniteLossError

__all__ = ["COMPILE_MODES", "ModelPotential", "NUTSResult", "batched_nuts",
           "batched_value_and_grad", "initial_points", "model_potential", "stan_windows",
           "trace_potential"]

#: ``eager``: the Pyro potential on every call (vmapped); ``fx``: the traced ATen graph;
#: ``inductor``: that graph compiled by TorchInductor (the fast one)
COMPILE_MODES = ("eager", "fx", "inductor")
CompileMode = Literal["eager", "fx", "inductor"]


# -- the density, from the Pyro model ------------------------------------------------------------
@dataclass
class ModelPotential:
    """Pyro's potential energy of a model over its flattened unconstrained parameters.

    ``potential(z)`` with ``z`` of shape ``(D,)`` is Pyro's ``potential_fn`` at the sites cut
    from ``z`` (``names``, ``shapes`` in that order); ``transforms[name]`` maps a site's
    constrained value to its unconstrained one (Pyro's convention), so
    ``transforms[name].inv`` gives the site's value from its piece of ``z``."""

    names: list[str]
    shapes: list[torch.Size]
    transforms: dict[str, Any]
    potential_fn: Callable[[dict[str, Tensor]], Tensor]
    init: Tensor
    sizes: list[int] = field(init=False)

    def __post_init__(self) -> None:
        self.sizes = [int(math.prod(s)) for s in self.shapes]

    @property
    def dim(self) -> int:
        return sum(self.sizes)

    def unflatten(self, z: Tensor) -> dict[str, Tensor]:
        """``z`` of shape ``(..., D)`` -> ``{name: (..., *shape)}`` (unconstrained)."""
        parts = torch.split(z, self.sizes, dim=-1)
        return {n: v.reshape(*z.shape[:-1], *s)
                for n, v, s in zip(self.names, parts, self.shapes, strict=True)}

    def flatten(self, values: dict[str, Tensor]) -> Tensor:
        """The inverse of :meth:`unflatten` for unbatched values."""
        return torch.cat([values[n].reshape(-1) for n in self.names])

    def constrain(self, z: Tensor) -> dict[str, Tensor]:
        """``z`` of shape ``(..., D)`` -> each site's value in its own (constrained) space."""
        return {n: self.transforms[n].inv(v) if n in self.transforms else v
                for n, v in self.unflatten(z).items()}

    def potential(self, z: Tensor) -> Tensor:
        """``U(z)`` for one flat point ``z`` of shape ``(D,)``."""
        return self.potential_fn(self.unflatten(z))


def model_potential(model: Callable[..., Any], *args: Any, **kwargs: Any) -> ModelPotential:
    """The potential of ``model(*args, **kwargs)`` as Pyro's NUTS sees it
    (``pyro.infer.mcmc.util.initialize_model``), flattened.

    Refuses, with the reason, a model with a discrete latent site (Pyro's NUTS would sum it
    out by enumeration; this sampler moves continuous coordinates only) and one without latent
    sites."""
    from pyro.infer.mcmc.util import initialize_model

    with torch.no_grad(), pyro.validation_enabled(False):
        trace = poutine.trace(model).get_trace(*args, **kwargs)
    latent = []
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site["is_observed"]:
            continue
        fn = site["fn"]
        support = getattr(fn, "support", None)
        if getattr(support, "is_discrete", False) or site["infer"].get("enumerate"):
            raise ValueError(
                f"batched NUTS moves continuous parameters only; site {name!r} is discrete "
                f"({type(fn).__name__}): use backend 'pyro', whose NUTS sums discrete sites "
                "out by enumeration")
        latent.append(name)
    if not latent:
        raise ValueError("the model has no latent sample site to draw")
    init, potential_fn, transforms, _ = initialize_model(
        model, model_args=args, model_kwargs=kwargs)
    names = [n for n in latent if n in init]
    shapes = [init[n].shape for n in names]
    mp = ModelPotential(names, shapes, dict(transforms), potential_fn, init=torch.zeros(0))
    mp.init = mp.flatten(init).detach()
    return mp


def trace_potential(potential: Callable[[Tensor], Tensor], example: Tensor
                    ) -> torch.fx.GraphModule:
    """``potential`` (one flat point ``(D,)`` -> scalar) traced once into an FX graph of ATen
    operations, so that later calls skip Pyro's tracing, distribution objects and validation;
    the data become constants of the graph."""
    from torch.fx.experimental.proxy_tensor import make_fx

    def flat(z: Tensor) -> Tensor:
        return potential(z)

    with torch.no_grad(), pyro.validation_enabled(False):
        return make_fx(flat)(example.detach().clone())


def batched_value_and_grad(graph: Callable[[Tensor], Tensor]
                           ) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
    """``Z (C, D) -> (grad U(Z) (C, D), U(Z) (C,))`` by ``vmap(grad_and_value(U))``."""
    return torch.func.vmap(torch.func.grad_and_value(graph))


# -- the warm-up schedule ------------------------------------------------------------------------
def stan_windows(num_warmup: int, init_buffer: int = 75, term_buffer: int = 50,
                 base_window: int = 25) -> list[tuple[int, int]]:
    """Stan's slow windows ``[(start, end), ...]`` (iterations, end exclusive) for the mass
    matrix: after ``init_buffer`` iterations, windows of ``base_window``, doubling, the last
    stretched to end ``term_buffer`` iterations before the end of warm-up. When the three do
    not fit, Stan's 15 % / 75 % / 10 % split. Fewer than 20 warm-up iterations: none."""
    if num_warmup < 20:
        return []
    if init_buffer + base_window + term_buffer > num_warmup:
        init_buffer = int(0.15 * num_warmup)
        term_buffer = int(0.1 * num_warmup)
        base_window = num_warmup - init_buffer - term_buffer
    last = num_warmup - term_buffer
    windows, start, size = [], init_buffer, base_window
    while start < last:
        end = start + size
        if end + 2 * size > last:
            end = last
        windows.append((start, end))
        start, size = end, 2 * size
    return windows


class _DualAveraging:
    """Hoffman & Gelman (2014), section 3.2.1, per chain (numpy, float64)."""

    def __init__(self, step: np.ndarray, target: float, gamma: float = 0.05, t0: float = 10.0,
                 kappa: float = 0.75):
        self.target, self.gamma, self.t0, self.kappa = target, gamma, t0, kappa
        self.restart(step)

    def restart(self, step: np.ndarray) -> None:
        self.mu = np.log(10.0 * step)
        self.h_bar = np.zeros_like(step)
        self.log_bar = np.zeros_like(step)
        self.t = 0

    def update(self, accept: np.ndarray) -> np.ndarray:
        """The step size for the next iteration, given this one's acceptance statistic."""
        self.t += 1
        t = self.t
        w = 1.0 / (t + self.t0)
        self.h_bar = (1 - w) * self.h_bar + w * (self.target - accept)
        log_step = self.mu - math.sqrt(t) / self.gamma * self.h_bar
        eta = t ** -self.kappa
        self.log_bar = eta * log_step + (1 - eta) * self.log_bar
        return np.exp(log_step)

    @property
    def final(self) -> np.ndarray:
        return np.exp(self.log_bar)


# -- the kernels ---------------------------------------------------------------------------------
def _make_leaf(vg: Callable[[Tensor], tuple[Tensor, Tensor]], max_delta: float) -> Callable:
    """One leapfrog step of every chain plus the subtree bookkeeping (module docstring)."""

    def leaf(z, p, g, eps, minv, h0, active, lw_sub, zs, us, gs, rho, ckp, ckr, acc, nleaf,
             div, turn, u, store, check):
        p_half = p - 0.5 * eps * g
        z1 = z + eps * (minv * p_half)
        g1, u1 = vg(z1)
        p1 = p_half - 0.5 * eps * g1
        dh = u1 + 0.5 * (minv * p1 * p1).sum(-1) - h0
        dh = torch.where(torch.isnan(dh), torch.full_like(dh, math.inf), dh)
        lw = -dh
        lw_new = torch.logaddexp(lw_sub, lw)
        take = active & (torch.log(u) < lw - lw_new)
        rho1 = rho + p1
        st = store[None, :, None]
        ckp1 = torch.where(st, p1[:, None, :], ckp)
        ckr1 = torch.where(st, rho1[:, None, :], ckr)
        sub = rho1[:, None, :] - ckr1 + 0.5 * (ckp1 - p1[:, None, :])
        turned_l = (minv[:, None, :] * ckp1 * sub).sum(-1) <= 0
        turned_r = ((minv * p1)[:, None, :] * sub).sum(-1) <= 0
        turned = ((turned_l | turned_r) & check[None, :]).any(-1)
        diverged = dh > max_delta
        a1 = active[:, None]
        a2 = active[:, None, None]
        t1 = take[:, None]
        zero = torch.zeros_like(dh)
        return (torch.where(a1, z1, z), torch.where(a1, p1, p), torch.where(a1, g1, g),
                active & ~diverged & ~turned,
                torch.where(active, lw_new, lw_sub),
                torch.where(t1, z1, zs), torch.where(take, u1, us), torch.where(t1, g1, gs),
                torch.where(a1, rho1, rho),
                torch.where(a2, ckp1, ckp), torch.where(a2, ckr1, ckr),
                acc + torch.where(active, torch.exp(torch.clamp(lw, max=0.0)), zero),
                nleaf + active.to(nleaf.dtype),
                div | (active & diverged), turn | (active & turned), u1)

    return leaf


def _make_chunk(leaf: Callable, length: int) -> Callable:
    """``length`` consecutive leaves of a subtree in one function (unrolled): ``u``, ``store``
    and ``check`` gain a leading axis of that length. A chain that stops inside the chunk is
    masked for the rest of it (computed, not used)."""

    def chunk(z, p, g, eps, minv, h0, active, lw_sub, zs, us, gs, rho, ckp, ckr, acc, nleaf,
              div, turn, u, store, check):
        state = (z, p, g, active, lw_sub, zs, us, gs, rho, ckp, ckr, acc, nleaf, div, turn)
        u1 = us
        for i in range(length):
            (z, p, g, active, lw_sub, zs, us, gs, rho, ckp, ckr, acc, nleaf, div, turn,
             u1) = leaf(*state[:3], eps, minv, h0, *state[3:], u[i], store[i], check[i])
            state = (z, p, g, active, lw_sub, zs, us, gs, rho, ckp, ckr, acc, nleaf, div, turn)
        return (*state, u1)

    return chunk


def _make_merge(max_depth: int) -> Callable:
    """Join a finished subtree to the trajectory (biased progressive sampling), check the
    whole trajectory for a U-turn, and give the start of the next subtree."""

    def merge(zl, pl, gl, zr, pr, gr, lw, rho, zp, up, gp, done, depth, divt, d, zn, pn, gn,
              lw_sub, zs, us, gs, rho_sub, div_sub, turn_sub, u, minv, step, d_next):
        a = ~done
        ok = a & ~div_sub & ~turn_sub
        take = ok & (torch.log(u) < lw_sub - lw)
        t1 = take[:, None]
        right = (ok & (d > 0))[:, None]
        left = (ok & (d < 0))[:, None]
        zr, pr, gr = (torch.where(right, zn, zr), torch.where(right, pn, pr),
                      torch.where(right, gn, gr))
        zl, pl, gl = (torch.where(left, zn, zl), torch.where(left, pn, pl),
                      torch.where(left, gn, gl))
        rho = torch.where(ok[:, None], rho + rho_sub, rho)
        s = rho - 0.5 * (pl + pr)
        turned = ((minv * pl * s).sum(-1) <= 0) | ((minv * pr * s).sum(-1) <= 0)
        depth = depth + a.to(depth.dtype)
        done = done | ~ok | turned | (depth >= max_depth)
        nr = (d_next > 0)[:, None]
        return (zl, pl, gl, zr, pr, gr, torch.where(ok, torch.logaddexp(lw, lw_sub), lw), rho,
                torch.where(t1, zs, zp), torch.where(take, us, up), torch.where(t1, gs, gp),
                done, depth, divt | (a & div_sub),
                torch.where(nr, zr, zl), torch.where(nr, pr, pl), torch.where(nr, gr, gl),
                (step * d_next)[:, None])

    return merge


def _checkpoint_masks(max_depth: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """``store[n]``, ``check[n]`` (``(2^max_depth, max_depth)`` bool): the checkpoint slot leaf
    ``n`` of a subtree writes (even ``n``: ``popcount(n)``) and those it checks (odd ``n``
    with ``t`` trailing ones: ``popcount(n) - t .. popcount(n) - 1``)."""
    n_leaves = 2 ** max_depth
    store = torch.zeros(n_leaves, max_depth, dtype=torch.bool)
    check = torch.zeros(n_leaves, max_depth, dtype=torch.bool)
    for n in range(n_leaves):
        ones = bin(n).count("1")
        if n % 2 == 0:
            store[n, ones] = True
        else:
            t = len(bin(n)) - len(bin(n).rstrip("1"))
            check[n, ones - t:ones] = True
    return store.to(device), check.to(device)


@dataclass
class NUTSResult:
    """What :func:`batched_nuts` returns: ``draws`` ``(chains, draws, D)`` (unconstrained);
    ``stats[name]`` ``(chains, draws)``: ``diverging``, ``tree_depth``, ``n_steps``,
    ``acceptance_rate``, ``energy`` (``H`` at the start of the transition), ``lp`` (``-U``
    at the draw), ``step_size``; the adapted ``step_size`` ``(chains,)`` and inverse mass
    matrix diagonal ``(chains, D)``; seconds spent tracing/compiling, in warm-up and in
    drawing; and the traced/compiled ``kernels``, which a later call with as many chains can
    take (``batched_nuts(..., kernels=result.kernels)``) instead of compiling again."""

    draws: Tensor
    stats: dict[str, Tensor]
    step_size: Tensor
    inverse_mass: Tensor
    compile_seconds: float
    warmup_seconds: float
    sampling_seconds: float
    warmup_stats: dict[str, Tensor] = field(default_factory=dict)
    kernels: _Kernels | None = field(default=None, repr=False, compare=False)

    @property
    def run_seconds(self) -> float:
        """Warm-up plus drawing (the compile excluded)."""
        return self.warmup_seconds + self.sampling_seconds


class _Kernels:
    """The traced (and compiled) functions for ``C`` chains of dimension ``D``: ``chunks[L]``
    runs ``L`` leaves of a subtree (``L`` = 1, 2, 4, ... up to ``unroll``), ``merge`` joins a
    subtree to the trajectory."""

    def __init__(self, potential: Callable[[Tensor], Tensor], example: Tensor, chains: int,
                 max_depth: int, max_delta: float, mode: CompileMode, unroll: int = 4):
        t0 = time.perf_counter()
        dim = example.shape[-1]
        dtype, device = example.dtype, example.device
        if mode == "eager":
            vg = batched_value_and_grad(potential)
        else:
            vg = batched_value_and_grad(trace_potential(potential, example))
        leaf, merge = _make_leaf(vg, max_delta), _make_merge(max_depth)
        c, k = chains, max_depth
        z = example.expand(c, dim).clone()
        f = dict(dtype=dtype, device=device)
        b = dict(dtype=torch.bool, device=device)
        zc = torch.zeros(c, **f)

        def leaf_args(length: int) -> tuple[Tensor, ...]:
            return (z, torch.zeros(c, dim, **f), torch.zeros(c, dim, **f),
                    torch.full((c, 1), 0.1, **f), torch.ones(c, dim, **f), zc,
                    torch.ones(c, **b), torch.full((c,), -math.inf, **f), z, zc,
                    torch.zeros(c, dim, **f), torch.zeros(c, dim, **f),
                    torch.zeros(c, k, dim, **f), torch.zeros(c, k, dim, **f), zc, zc,
                    torch.zeros(c, **b), torch.zeros(c, **b), torch.full((length, c), 0.5, **f),
                    torch.zeros(length, k, **b), torch.zeros(length, k, **b))

        cd = torch.zeros(c, dim, **f)
        merge_args = (z, cd, cd, z, cd, cd, zc, cd, z, zc, cd, torch.zeros(c, **b),
                      torch.zeros(c, dtype=torch.int64, device=device), torch.zeros(c, **b),
                      torch.ones(c, **f), z, cd, cd, zc, z, zc, cd, cd, torch.zeros(c, **b),
                      torch.zeros(c, **b), torch.full((c,), 0.5, **f), torch.ones(c, dim, **f),
                      torch.full((c,), 0.1, **f), torch.ones(c, **f))
        lengths = [2 ** i for i in range(max(0, int(unroll)).bit_length())] or [1]
        fns: dict[Any, tuple[Callable, tuple[Tensor, ...]]] = {
            n: (_make_chunk(leaf, n), leaf_args(n)) for n in lengths}
        fns["merge"] = (merge, merge_args)
        self.fns: dict[Any, Callable] = {}
        for key, (fn, args) in fns.items():
            # distinct tensors: make_fx maps one tensor object to one graph input
            args = tuple(a.clone() for a in args)
            if mode == "eager":
                self.fns[key] = fn
                continue
            from torch.fx.experimental.proxy_tensor import make_fx

            with torch.no_grad():
                graph = make_fx(fn)(*args)
            if mode == "inductor":
                from torch._inductor import config as inductor_config
                from torch._inductor.compile_fx import compile_fx

                # no per-call shape asserts in the generated wrapper (the shapes are fixed)
                with inductor_config.patch(size_asserts=False):
                    graph = compile_fx(graph, list(args))
                with torch.no_grad():  # the first call finishes the compilation
                    graph(*args)
            self.fns[key] = graph
        self.merge = self.fns["merge"]
        self.chunks = {n: self.fns[n] for n in lengths}
        self.unroll = lengths[-1]
        self.seconds = time.perf_counter() - t0


def batched_nuts(potential: Callable[[Tensor], Tensor] | ModelPotential, init: Tensor, *,
                 num_warmup: int = 500, num_samples: int = 1000, target_accept: float = 0.8,
                 max_tree_depth: int = 10, step_size: float = 1.0,
                 max_delta_energy: float = 1000.0, adapt_step_size: bool = True,
                 adapt_mass_matrix: bool = True, compile: CompileMode = "inductor",
                 seed: int = 0, device: str | torch.device | None = None,
                 unroll: int | None = None,
                 kernels: _Kernels | None = None) -> NUTSResult:
    """Draw ``num_samples`` states from ``exp(-U)`` with ``C = init.shape[0]`` chains of NUTS
    in lockstep after ``num_warmup`` warm-up iterations (module docstring).

    Args:
        potential: ``U`` of one flat point ``(D,)`` (a :class:`ModelPotential` or a function).
        init: ``(C, D)`` starting points (unconstrained).
        step_size: the first step size, refined by Hoffman & Gelman's heuristic at the start
            of warm-up.
        compile: ``"inductor"`` (fast), ``"fx"`` (traced graph, not compiled) or ``"eager"``
            (Pyro's potential on every call; the reference).
        seed: seeds the ``torch.Generator`` of every random draw.
        device: where the chains run (default: ``init``'s device).
        unroll: leaves per call of the compiled step (a power of 2; the subtrees of 1, 2, 4,
            ... leaves take one call, larger ones several, with a check between calls
            whether any chain is still building; a chain that stops inside a call is masked).
            Default: 4 with ``compile="inductor"`` (fewer calls; longer compile), else 1.
        kernels: reuse the traced/compiled kernels of an earlier call (same ``C``, ``D``,
            ``max_tree_depth``, ``max_delta_energy`` and ``compile``).
    """
    if compile not in COMPILE_MODES:
        raise ValueError(f"compile={compile!r}; allowed: {', '.join(COMPILE_MODES)}")
    for name, v, lo in (("num_warmup", num_warmup, 0), ("num_samples", num_samples, 1),
                        ("max_tree_depth", max_tree_depth, 1)):
        if not (isinstance(v, int) and v >= lo):
            raise ValueError(f"{name} must be an integer >= {lo} (got {name}={v!r})")
    if not 0.0 < target_accept < 1.0:
        raise ValueError(f"target_accept must lie in (0, 1) (got target_accept={target_accept})")
    if not (math.isfinite(step_size) and step_size > 0):
        raise ValueError(f"need step_size > 0, a finite number (got step_size={step_size})")
    if not max_delta_energy > 0:
        raise ValueError(f"max_delta_energy must be > 0 (got {max_delta_energy})")
    if init.dim() != 2 or init.shape[0] < 1 or init.shape[1] < 1:
        raise ValueError(f"init must have shape (chains, D) (got {tuple(init.shape)})")
    device = torch.device(device) if device is not None else init.device
    fn = potential.potential if isinstance(potential, ModelPotential) else potential
    init = init.detach().to(device)
    c, dim = init.shape
    dtype = init.dtype
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    if unroll is None:
        unroll = 4 if compile == "inductor" else 1
    if kernels is None:
        kernels = _Kernels(fn, init[0], c, max_tree_depth, max_delta_energy, compile, unroll)
    compile_seconds = kernels.seconds
    chunks, merge = kernels.chunks, kernels.merge
    leaf, unroll = chunks[1], kernels.unroll
    store, check = _checkpoint_masks(max_tree_depth, device)
    store_rows, check_rows = list(store.split(1)), list(check.split(1))
    f = dict(dtype=dtype, device=device)
    b = dict(dtype=torch.bool, device=device)
    k = max_tree_depth

    # constants handed to the kernels (they never write into their inputs)
    neg_inf = torch.full((c,), -math.inf, **f)
    zeros_c, zeros_cd = torch.zeros(c, **f), torch.zeros(c, dim, **f)
    zeros_ckd = torch.zeros(c, k, dim, **f)
    false_c = torch.zeros(c, **b)
    depth0 = torch.zeros(c, dtype=torch.int64, device=device)

    def value_and_grad(z: Tensor) -> tuple[Tensor, Tensor]:
        """``U`` and ``grad U`` at ``z`` (one leaf of step 0 from ``z`` with zero momentum)."""
        out = leaf(z, zeros_cd, zeros_cd, torch.zeros(c, 1, **f), torch.ones(c, dim, **f),
                   zeros_c, torch.ones(c, **b), neg_inf, z, zeros_c, zeros_cd, zeros_cd,
                   zeros_ckd, zeros_ckd, zeros_c, zeros_c, false_c, false_c,
                   torch.full((1, c), 0.5, **f), store_rows[1], check_rows[0])
        return out[15], out[2]

    with torch.no_grad(), pyro.validation_enabled(False):
        z = init.clone()
        u, g = value_and_grad(z)
        bad = ~(torch.isfinite(u) & torch.isfinite(g).all(-1))
        if bool(bad.any()):
            raise NonFiniteLossError(
                f"the log density (or its gradient) is not finite at the initial point of "
                f"chain(s) {bad.nonzero().flatten().tolist()}")
        minv = torch.ones(c, dim, **f)
        step = np.full(c, float(step_size))

        def transition(z, u, g, step_t, minv, sqrt_m):
            p = torch.randn(c, dim, generator=gen, **f) * sqrt_m
            h0 = u + 0.5 * (minv * p * p).sum(-1)
            dirs = torch.where(torch.rand(k, c, generator=gen, **f) < 0.5, -1.0, 1.0).to(dtype)
            merge_u = torch.rand(k, c, generator=gen, **f)
            zl = zr = zp = z
            pl = pr = p
            gl = gr = gp = g
            up = u
            lw, rho, done, depth, divt = zeros_c, p, false_c, depth0, false_c
            acc, nleaf = zeros_c, zeros_c
            zs_, ps_, gs_ = z, p, g
            eps = (step_t * dirs[0])[:, None]
            for j in range(k):
                leaf_u = torch.rand(2 ** j, c, generator=gen, **f)
                active = ~done
                zc_, pc_, gc_ = zs_, ps_, gs_
                lw_sub, zsub, usub, gsub, rho_sub = neg_inf, zc_, zeros_c, gc_, zeros_cd
                ckp = ckr = zeros_ckd
                div_s = turn_s = false_c
                n_sub = 2 ** j
                length = min(n_sub, unroll)
                run = chunks[length]
                for n in range(0, n_sub, length):
                    (zc_, pc_, gc_, active, lw_sub, zsub, usub, gsub, rho_sub, ckp, ckr, acc,
                     nleaf, div_s, turn_s, _) = run(
                        zc_, pc_, gc_, eps, minv, h0, active, lw_sub, zsub, usub, gsub,
                        rho_sub, ckp, ckr, acc, nleaf, div_s, turn_s, leaf_u[n:n + length],
                        store[n:n + length], check[n:n + length])
                    if n + length < n_sub and not bool(active.any()):
                        break
                d_next = dirs[j + 1] if j + 1 < k else dirs[j]
                (zl, pl, gl, zr, pr, gr, lw, rho, zp, up, gp, done, depth, divt, zs_, ps_, gs_,
                 eps) = merge(zl, pl, gl, zr, pr, gr, lw, rho, zp, up, gp, done, depth, divt,
                              dirs[j], zc_, pc_, gc_, lw_sub, zsub, usub, gsub, rho_sub, div_s,
                              turn_s, merge_u[j], minv, step_t, d_next)
                if bool(done.all()):
                    break
            return zp, up, gp, h0, acc / nleaf, nleaf, depth, divt

        def find_step(z, u, g, step, minv, sqrt_m) -> np.ndarray:
            """Hoffman & Gelman (2014), Algorithm 4, per chain: double or halve the step
            until one leapfrog step's acceptance ``min(1, w)`` crosses 1/2."""
            p = torch.randn(c, dim, generator=gen, **f) * sqrt_m
            h0 = u + 0.5 * (minv * p * p).sum(-1)

            def accept(st: np.ndarray) -> np.ndarray:
                eps = torch.as_tensor(st, **f)[:, None]
                out = leaf(z, p, g, eps, minv, h0, torch.ones(c, **b), neg_inf, z, zeros_c, g,
                           zeros_cd, zeros_ckd, zeros_ckd, zeros_c, zeros_c, false_c, false_c,
                           torch.full((1, c), 0.5, **f), store_rows[1], check_rows[0])
                return out[11].double().cpu().numpy()

            a = accept(step)
            direction = np.where(a > 0.5, 1.0, -1.0)
            moving = np.ones(c, dtype=bool)
            for _ in range(100):
                new = step * 2.0 ** direction
                a = accept(new)
                crossed = np.where(direction > 0, a <= 0.5, a >= 0.5)
                step = np.where(moving, new, step)
                moving &= ~crossed & (new > 1e-10) & (new < 1e10)
                if not moving.any():
                    break
            return np.clip(step, 1e-10, 1e10)

        windows = stan_windows(num_warmup) if adapt_mass_matrix else []
        ends = {e for _, e in windows}
        in_window = np.zeros(num_warmup, dtype=bool)
        for s, e in windows:
            in_window[s:e] = True
        sqrt_m = minv.rsqrt()
        if adapt_step_size and num_warmup > 0:
            step = find_step(z, u, g, step, minv, sqrt_m)
        da = _DualAveraging(step, target_accept)
        n_win, mean, m2 = 0, zeros_cd.clone(), zeros_cd.clone()
        draws = torch.empty(c, num_samples, dim, **f)
        rec = {n: torch.empty(c, num_warmup + num_samples, dtype=dt, device=device)
               for n, dt in (("acceptance_rate", dtype), ("n_steps", torch.int64),
                             ("tree_depth", torch.int64), ("diverging", torch.bool),
                             ("energy", dtype), ("lp", dtype), ("step_size", dtype))}
        t0 = time.perf_counter()
        t_warm = t0
        for it in range(num_warmup + num_samples):
            if it == num_warmup:
                if adapt_step_size and num_warmup > 0:
                    step = da.final
                t_warm = time.perf_counter()
            step_t = torch.as_tensor(step, **f)
            z, u, g, h0, a, nleaf, depth, divt = transition(z, u, g, step_t, minv, sqrt_m)
            for name, v in (("acceptance_rate", a), ("n_steps", nleaf), ("tree_depth", depth),
                            ("diverging", divt), ("energy", h0), ("lp", -u),
                            ("step_size", step_t)):
                rec[name][:, it] = v
            if it >= num_warmup:
                draws[:, it - num_warmup] = z
                continue
            if adapt_step_size:
                step = da.update(a.double().cpu().numpy().clip(0.0, 1.0))
            if in_window[it]:
                n_win += 1
                delta = z - mean
                mean += delta / n_win
                m2 += delta * (z - mean)
            if it + 1 in ends:
                var = m2 / max(n_win - 1, 1)
                minv = (n_win / (n_win + 5.0)) * var + 1e-3 * (5.0 / (n_win + 5.0))
                sqrt_m = minv.rsqrt()
                n_win, mean, m2 = 0, zeros_cd.clone(), zeros_cd.clone()
                if adapt_step_size:  # from the current iterate, as NumPyro does
                    da.restart(step)
        t1 = time.perf_counter()
    if num_warmup == 0:
        t_warm = t0
    stats = {n: v[:, num_warmup:] for n, v in rec.items()}
    return NUTSResult(draws=draws, stats=stats,
                      step_size=torch.as_tensor(step, **f), inverse_mass=minv,
                      compile_seconds=compile_seconds, warmup_seconds=t_warm - t0,
                      sampling_seconds=t1 - t_warm,
                      warmup_stats={n: v[:, :num_warmup] for n, v in rec.items()},
                      kernels=kernels)


def initial_points(mp: ModelPotential, chains: int, *, seed: int = 0, radius: float = 2.0,
                   tries: int = 100) -> Tensor:
    """``(chains, D)`` starting points uniform in ``[-radius, radius]`` on the unconstrained
    space (Pyro's ``init_to_uniform``), redrawn where the potential or its gradient is not
    finite; :class:`NonFiniteLossError` after ``tries`` draws."""
    gen = torch.Generator(device=mp.init.device)
    gen.manual_seed(int(seed) + 7919)
    out = []
    for ch in range(chains):
        for _ in range(tries):
            z = (torch.rand(mp.dim, generator=gen, dtype=mp.init.dtype, device=mp.init.device)
                 * 2 - 1) * radius
            zz = z.clone().requires_grad_(True)
            with pyro.validation_enabled(False):
                val = mp.potential(zz)
            if not torch.isfinite(val):
                continue
            (grad,) = torch.autograd.grad(val, zz)
            if torch.isfinite(grad).all():
                out.append(z)
                break
        else:
            raise NonFiniteLossError(
                f"chain {ch}: the log density (or its gradient) is not finite at any of the "
                f"{tries} initial points tried")
    return torch.stack(out)
