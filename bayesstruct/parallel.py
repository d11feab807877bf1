"""Data parallelism on ``torch.distributed``: W processes (ranks) share every minibatch.

A data-parallel run (``bayesstruct run ENTRY --nproc-per-node W``, or ``torchrun ... -m
bayesstruct run ...`` across machines) starts W copies of the same training loop. Every rank
holds the whole training split and builds the same seeded permutation of it; of every *global*
minibatch of ``B`` examples, rank ``r`` takes the contiguous shard ``[r B / W, (r + 1) B / W)``.
Each rank's objective is

    L_r = W (N / B) sum_{i in shard r} -log p(y_i | x_i, w) + beta KL(q || p),

and ``DistributedDataParallel`` averages the ranks' gradients (all-reduce, nccl on CUDA, gloo on
CPU), so the step every rank takes is the gradient of ``(1/W) sum_r L_r``: exactly the
single-process objective ``(N / B) sum_{i in batch} -log p + beta KL`` of the concatenated batch
(Goyal et al. 2017, "Accurate, large minibatch SGD", for the data-parallel scheme; Kingma et al.
2015 for the minibatch ELBO). The variational parameters stay identical on every rank, so the
closed-form empirical-Bayes updates, which read only them, give the same value everywhere.

Per-example noise (the local reparameterisation's ``eps``, per-example group scales, relaxed
masks) is drawn for the *global* batch on every rank from the same seeded generator and each rank
keeps its own rows (:func:`per_example`): a W-rank run draws what the one-process run draws, so
their trajectories agree to float rounding. The cost is W times the noise draws, a ``1 / fan-in``
fraction of a layer's multiply-adds. Noise drawn inside torch modules (``nn.Dropout``) and
BatchNorm's batch statistics are per shard, as in any DDP training.

Outside a launched run (no ``WORLD_SIZE`` > 1 in the environment) every function here is the
identity of the one-process case.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import gc
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .errors import ConfigError

__all__ = ["TIMEOUT_ENV", "Ranks", "Shard", "all_reduce_mean", "alone", "backend_for", "barrier",
           "check_devices", "launched", "mean_scale", "nll_scale", "per_example", "ranks",
           "session", "shard", "shard_of", "wrap"]

TIMEOUT_ENV = "BAYESSTRUCT_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Ranks:
    """Where this process stands: its ``rank`` among ``world`` processes, and ``local_rank``
    on its machine (the CUDA device it uses)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes checkpoints, run files and the console."""
        return self.rank == 0


@dataclass(frozen=True)
class Shard:
    """Rows ``[start, stop)`` of a global minibatch of ``total`` examples, split over
    ``world`` ranks."""

    start: int
    stop: int
    total: int
    world: int


_SHARD: contextvars.ContextVar[Shard | None] = contextvars.ContextVar("bayesstruct_shard",
                                                                      default=None)
_ALONE: contextvars.ContextVar[bool] = contextvars.ContextVar("bayesstruct_alone",
                                                             default=False)


def launched() -> bool:
    """Whether this process was started as one of several ranks (torchrun sets
    ``WORLD_SIZE``)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def ranks() -> Ranks:
    """This process's rank and world size (``Ranks()`` outside a process group, and inside
    :func:`alone`)."""
    if _ALONE.get():
        return Ranks()
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size(),
                     int(os.environ.get("LOCAL_RANK", "0")))
    return Ranks()


@contextlib.contextmanager
def alone() -> Iterator[None]:
    """Run the block as a single process even inside a process group: :func:`ranks` says
    world 1, so training wraps no DistributedDataParallel, shards nothing and waits for no
    other rank (rank 0's own work after the ranks have finished, e.g. the collapse check's
    plain fit)."""
    token = _ALONE.set(True)
    try:
        yield
    finally:
        _ALONE.reset(token)


def backend_for(device: str | torch.device) -> str:
    """``nccl`` for CUDA devices, ``gloo`` otherwise."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def _timeout() -> datetime.timedelta:
    raw = os.environ.get(TIMEOUT_ENV, str(DEFAULT_TIMEOUT_S))
    try:
        seconds = float(raw)
    except ValueError:
        raise ValueError(f"{TIMEOUT_ENV}={raw!r}: need a number of seconds") from None
    if not seconds > 0:
        raise ValueError(f"{TIMEOUT_ENV}={raw!r}: need a number of seconds > 0")
    return datetime.timedelta(seconds=seconds)


@contextlib.contextmanager
def session(device: str | torch.device = "cpu") -> Iterator[Ranks]:
    """Join the process group of a launched run (torchrun's environment) for the duration;
    outside one, yield ``Ranks()`` and do nothing.

    The collectives time out after ``BAYESSTRUCT_DIST_TIMEOUT`` seconds (default 300): a rank
    that dies or stalls makes the others fail with an error instead of waiting for ever (and
    torchrun stops every rank when one exits with an error). On CUDA, rank ``r`` uses device
    ``LOCAL_RANK``.
    """
    if not launched() or (dist.is_available() and dist.is_initialized()):
        yield ranks()
        return
    if not dist.is_available():
        raise RuntimeError("this torch build has no torch.distributed: a data-parallel run "
                           "needs it")
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend_for(device), timeout=_timeout())
    try:
        yield ranks()
    finally:
        # DistributedDataParallel wrappers sit in reference cycles: freed only by the cycle
        # collector, at exit, after the group is gone, where gloo's threads abort the process
        # now and then (torch 2.13: 6 of 24 two-rank runs here); freed first, none did
        gc.collect()
        dist.destroy_process_group()


def check_devices(device: str | torch.device, nproc: int) -> None:
    """Refuse ``nproc`` ranks on this machine's CUDA devices when it has fewer (each rank uses
    its own GPU, ``cuda:LOCAL_RANK``)."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available() and \
            nproc > torch.cuda.device_count():
        raise ConfigError(f"--nproc-per-node {nproc} with device cuda: this machine has "
                         f"{torch.cuda.device_count()} GPU(s) and each rank uses one; allowed: "
                         f"--nproc-per-node <= {torch.cuda.device_count()} (or --device cpu)")


def shard(total: int, r: Ranks | None = None) -> Shard:
    """This rank's contiguous rows of a global batch of ``total`` examples (the first
    ``total mod W`` ranks take one row more)."""
    r = r or ranks()
    base, extra = divmod(total, r.world)
    start = r.rank * base + min(r.rank, extra)
    return Shard(start, start + base + (r.rank < extra), total, r.world)


@contextlib.contextmanager
def shard_of(total: int) -> Iterator[slice]:
    """For one step on a global batch of ``total`` examples: yield the slice of this rank's
    rows and make :func:`per_example` and :func:`nll_scale` shard-aware meanwhile. In one
    process: ``slice(None)`` and no change."""
    r = ranks()
    if r.world == 1:
        yield slice(None)
        return
    s = shard(total, r)
    token = _SHARD.set(s)
    try:
        yield slice(s.start, s.stop)
    finally:
        _SHARD.reset(token)


def per_example(draw: Callable[[int], Tensor], batch: int) -> Tensor:
    """``draw(n)`` returns noise for ``n`` examples stacked on dim 0. Inside
    :func:`shard_of`, draw the global batch's noise and keep this rank's rows, so every rank
    consumes the random stream the one-process run does; otherwise ``draw(batch)``."""
    s = _SHARD.get()
    if s is None:
        return draw(batch)
    if batch != s.stop - s.start:
        raise RuntimeError(f"per-example noise for {batch} examples inside a shard of "
                           f"{s.stop - s.start}")
    return draw(s.total)[s.start:s.stop]


def nll_scale(num_data: int | None, batch: int) -> float:
    """The likelihood's scale ``N / B`` for a minibatch of ``batch`` examples; inside
    :func:`shard_of`, ``W N / B`` with ``B`` the global batch (the gradient average over
    ranks then gives ``N / B``, module docstring)."""
    s = _SHARD.get()
    n = num_data or (s.total if s is not None else batch)
    return n / batch if s is None else s.world * n / s.total


def mean_scale(batch: int) -> float | None:
    """``W / B`` inside :func:`shard_of` (a per-example mean over the global batch, times W
    for the gradient average); ``None`` outside (take the plain mean)."""
    s = _SHARD.get()
    return None if s is None else s.world / s.total


def wrap(module: nn.Module) -> nn.Module:
    """``DistributedDataParallel(module)`` in a process group of more than one rank (the
    parameters and buffers broadcast from rank 0, gradients averaged in buckets during the
    backward pass); ``module`` itself otherwise."""
    r = ranks()
    if r.world == 1:
        return module
    dev = next(module.parameters()).device
    ids = [dev.index if dev.index is not None else torch.cuda.current_device()] \
        if dev.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def barrier() -> None:
    """Wait for every rank (nothing in one process)."""
    if ranks().world > 1:
        dist.barrier()


def all_reduce_mean(t: Tensor) -> Tensor:
    """The mean of ``t`` over the ranks (``t`` itself in one process)."""
    r = ranks()
    if r.world == 1:
        return t
    t = t.clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t / r.world
