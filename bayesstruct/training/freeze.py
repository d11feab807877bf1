"""Which parameters to keep training: freezing by gradient statistics, then keep-l-largest
(Muravyev, Bakhteev & Strijov).

The problem: with ``T(w) = w - lr grad L(w; D')`` one SGD step on a minibatch and
``T|_alpha(w) = w - lr (alpha * grad L(w; D'))`` the step restricted to a 0/1 mask ``alpha``,

    min_{||alpha||_1 = k}  min_{||beta||_1 = l}  L(beta * (T|_alpha)^{eta_1}(T^{eta_0}(w_0)))

i.e. train everything for ``eta_0`` steps, keep training only ``k`` parameters for ``eta_1``
steps (the rest frozen), then keep the ``l`` largest-magnitude parameters non-zero.
:func:`train_selective` runs the three stages; the sweep of ``benchmarks/freeze.py`` shares
the stages between settings. Frozen whole tensors get ``requires_grad = False`` (autograd then
computes no gradient for them); partly frozen tensors get their gradient masked, so a frozen
entry is bit-for-bit unchanged.

Selection rules for ``alpha`` (each keeps the ``k`` highest-scoring parameters training), from
:class:`GradientStatistics` at the last ``t`` iterates of the first stage,
``w_{eta0 - i} = T^{eta0 - i}(w_0)``, ``i = 0 .. t-1`` (the final iterate included):

* ``random``:   a uniformly random ``k``-subset (the baseline);
* ``gradient``: score ``sum_{i=0}^{t-1} |grad L(w_{eta0 - i}; D)|``, full-data gradients (the
  "largest values" method);
* ``psgld``:    score ``|mean_s g_s| / sd_s(g_s)`` over minibatch gradients ``g_s`` at the same
  iterates, the drift of a parameter against its noise.
  A parameter whose score is below a threshold (1: the mean gradient is within one noise sd
  of 0) is taken as converged and frozen (:func:`converged`); with ``k`` given, the ``k``
  least converged are kept.

Granularity. Element-wise masks (``granularity="element"``) free the update of a frozen entry
but not its gradient: autograd computes a tensor's whole gradient as soon as one entry of it
is live. ``granularity="tensor"`` selects whole tensors instead, so the frozen ones cost no
gradient at all: tensors are ranked by a tensor-level score (``random``: a random order;
``gradient``: the mean over entries of ``sum_s |g_s|``; ``psgld``: the same drift-to-noise
ratio for the tensor's gradient as a vector, ``||E g||_2 / sqrt(sum Var g)``) and kept whole,
best first, while they fit in ``k``; the first tensor that does not fit keeps its best
entries up to ``k`` exactly (by the element-wise score), and every tensor after it is wholly
frozen.

Why pSGLD: preconditioned SGLD (Li et al. 2016) moves each coordinate by
``(lr/2) G g + N(0, lr G)`` with ``G = 1 / (lambda + sqrt(V))`` and ``V`` the running mean of
``g^2``, i.e. ``V = (E g)^2 + Var g``. The preconditioned drift per step is ``(lr/2) G E g``,
the preconditioned minibatch noise ``(lr/2) G sd(g)``; their ratio ``|E g| / sd(g)`` is the
score above (``G`` cancels), read from the same two moments the preconditioner is built from
(Mandt, Hoffman & Blei 2017: SGD near a minimum is a stationary process whose mean gradient
vanishes while its noise does not). Because ``G`` cancels, pSGLD's running ``V`` itself is not
needed, and it is not kept: the score takes ``E g`` and ``Var g`` from the window's exact
moments, where ``V``, an exponential average started at 0, would weight the window unevenly
(the last ``~1 / (1 - beta)`` gradients) and be biased low over a short window.

The gradient rule needs a full pass over the training data per recorded iterate (``t``
passes in all, in chunks of ``full_batch`` examples, without a parameter update and with the
random state and the normalisation buffers restored, so the trajectory is the same as
without them); the minibatch gradient at the final iterate comes from the next minibatch of
the stream, the one stage 2 would start with.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import islice

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import Dataset, Split
from ..errors import NonFiniteLossError
from .common import Minibatches
from .plain import check_positive, evaluate_net

__all__ = ["GRANULARITIES", "RULES", "FreezeResult", "GradientStatistics", "converged",
           "full_gradient", "keep_largest", "prune_in_place", "select", "stage_masked",
           "stage_warm", "train_selective", "work_saved"]

RULES = ("random", "gradient", "psgld")
GRANULARITIES = ("element", "tensor")


class GradientStatistics:
    """Running per-parameter moments of the stochastic gradient (Welford's algorithm):
    ``count``, ``mean = (1/n) sum g``, ``var`` (unbiased, ``1/(n-1)``), ``abs_sum = sum |g|``
    over the gradients given to :meth:`update`; and, for the gradient rule, ``full_abs_sum =
    sum |grad L(w; D)|`` over the full-data gradients given to :meth:`update_full`
    (``full_count`` of them). :meth:`scores` uses ``full_abs_sum`` when there are any, else
    ``abs_sum``. (pSGLD's ``V`` is not kept: module docstring.)"""

    def __init__(self, params: Mapping[str, Tensor]) -> None:
        self.count = 0
        self.full_count = 0
        z = {k: torch.zeros_like(p, dtype=torch.float64) for k, p in params.items()}
        self.mean = dict(z)
        self._m2 = {k: v.clone() for k, v in z.items()}
        self.abs_sum = {k: v.clone() for k, v in z.items()}
        self.full_abs_sum = {k: v.clone() for k, v in z.items()}

    @torch.no_grad()
    def update(self, grads: Mapping[str, Tensor]) -> None:
        """Add one minibatch gradient."""
        self.count += 1
        n = self.count
        for k, g in grads.items():
            g = g.detach().double()
            delta = g - self.mean[k]
            self.mean[k] = self.mean[k] + delta / n
            self._m2[k] = self._m2[k] + delta * (g - self.mean[k])
            self.abs_sum[k] = self.abs_sum[k] + g.abs()

    @torch.no_grad()
    def update_full(self, grads: Mapping[str, Tensor]) -> None:
        """Add one full-data gradient (the gradient rule's ``sum |grad L(w; D)|``)."""
        self.full_count += 1
        for k, g in grads.items():
            self.full_abs_sum[k] = self.full_abs_sum[k] + g.detach().double().abs()

    def gradient_sum(self) -> dict[str, Tensor]:
        """The gradient rule's score: ``full_abs_sum`` if full-data gradients were recorded,
        else ``abs_sum``."""
        return self.full_abs_sum if self.full_count else self.abs_sum

    @property
    def var(self) -> dict[str, Tensor]:
        if self.count < 2:
            raise ValueError("the variance needs at least two gradients")
        return {k: m2 / (self.count - 1) for k, m2 in self._m2.items()}

    def snr(self) -> dict[str, Tensor]:
        """``|mean g| / sd(g)`` per parameter (``inf`` where the gradient never varied but is
        non-zero, 0 where it is identically zero)."""
        out = {}
        for k, v in self.var.items():
            m = self.mean[k].abs()
            sd = v.clamp_min(0.0).sqrt()
            out[k] = torch.where(sd > 0, m / sd.clamp_min(1e-300),
                                 torch.where(m > 0, torch.full_like(m, math.inf),
                                             torch.zeros_like(m)))
        return out

    def scores(self, rule: str) -> dict[str, Tensor]:
        if rule == "gradient":
            return self.gradient_sum()
        if rule == "psgld":
            return self.snr()
        raise ValueError(f"rule {rule!r} has no score; allowed: gradient, psgld")

    def tensor_scores(self, rule: str) -> dict[str, float]:
        """One score per tensor: ``gradient``: the mean of ``sum_s |g_s|`` over its entries;
        ``psgld``: ``||E g||_2 / sqrt(sum Var g)``, the drift-to-noise ratio of the tensor's
        gradient as a vector (``inf`` if it never varied but is non-zero, 0 if it is zero)."""
        if rule == "gradient":
            return {k: float(a.mean()) for k, a in self.gradient_sum().items()}
        if rule == "psgld":
            out = {}
            for k, v in self.var.items():
                drift, noise = float(self.mean[k].norm()), math.sqrt(float(v.clamp_min(0).sum()))
                out[k] = drift / noise if noise > 0 else (math.inf if drift > 0 else 0.0)
            return out
        raise ValueError(f"rule {rule!r} has no score; allowed: gradient, psgld")


def _top_k(scores: Mapping[str, Tensor], k: int) -> dict[str, Tensor]:
    """Masks of the ``k`` largest scores over all tensors (ties broken by position)."""
    flat = torch.cat([s.reshape(-1).double().cpu() for s in scores.values()])
    if not 0 <= k <= flat.numel():
        raise ValueError(f"k must lie in 0..{flat.numel()} (got {k})")
    keep = torch.zeros(flat.numel(), dtype=torch.bool)
    keep[torch.topk(flat, k, sorted=False).indices] = True
    out, i = {}, 0
    for name, s in scores.items():
        out[name] = keep[i: i + s.numel()].view(s.shape).to(s.device)
        i += s.numel()
    return out


def _fill_tensors(ranked: list[str], scores: Mapping[str, Tensor], k: int
                  ) -> dict[str, Tensor]:
    """Whole tensors in the order ``ranked`` while they fit in ``k``; the first that does
    not fit keeps its ``k - used`` best entries by ``scores``; the rest are frozen."""
    n = sum(s.numel() for s in scores.values())
    if not 0 <= k <= n:
        raise ValueError(f"k must lie in 0..{n} (got {k})")
    out = {name: torch.zeros(s.shape, dtype=torch.bool, device=s.device)
           for name, s in scores.items()}
    used = 0
    for name in ranked:
        size = scores[name].numel()
        if used + size <= k:
            out[name][...] = True
            used += size
            continue
        if k > used:
            out[name] = _top_k({name: scores[name]}, k - used)[name]
        break
    return out


def select(stats: GradientStatistics, rule: str, k: int,
           generator: torch.Generator | None = None,
           granularity: str = "element") -> dict[str, Tensor]:
    """``alpha``: masks (``True`` = keeps training) of ``k`` parameters by ``rule``, chosen
    entry by entry (``granularity="element"``) or tensor by tensor (``"tensor"``, see the
    module docstring)."""
    if rule not in RULES:
        raise ValueError(f"rule {rule!r}; allowed: {', '.join(RULES)}")
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity {granularity!r}; allowed: {', '.join(GRANULARITIES)}")
    if rule == "random":
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        scores = {n: torch.rand(m.shape, generator=g, dtype=torch.float64).to(m.device)
                  for n, m in stats.mean.items()}
        names = list(scores)
        ranked = [names[i] for i in torch.randperm(len(names), generator=g).tolist()]
    else:
        scores = stats.scores(rule)
        per_tensor = stats.tensor_scores(rule)
        ranked = sorted(per_tensor, key=lambda name: -per_tensor[name])  # stable: ties by position
    if granularity == "element":
        return _top_k(scores, k)
    return _fill_tensors(ranked, scores, k)


def converged(stats: GradientStatistics, threshold: float = 1.0) -> dict[str, Tensor]:
    """The pSGLD rule with a threshold: ``True`` where ``|mean g| / sd(g) < threshold``."""
    return {k: s < threshold for k, s in stats.snr().items()}


def keep_largest(params: Mapping[str, Tensor], l: int) -> dict[str, Tensor]:  # noqa: E741
    """``beta``: masks of the ``l`` largest-magnitude parameters over all tensors."""
    return _top_k({k: p.detach().abs() for k, p in params.items()}, l)


def _loss(net: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(net(x), y)


class _LossGuard:
    """Sums a stage's minibatch losses on the device and checks the sum once per epoch (and at
    the end): a non-finite loss raises :class:`NonFiniteLossError` naming the stage and the
    steps, without a host synchronisation per step."""

    def __init__(self, stage: str, per_epoch: int, steps: int, lr: float,
                 device: torch.device, start: int = 0) -> None:
        self.stage, self.per_epoch, self.steps, self.lr = stage, max(per_epoch, 1), steps, lr
        self.start = start
        self.total = torch.zeros((), device=device)
        self.first = 0

    def add(self, t: int, loss: Tensor) -> None:
        self.total = self.total + loss.detach()
        if (t + 1) % self.per_epoch == 0 or t + 1 == self.steps:
            value = float(self.total)
            if not math.isfinite(value):
                a, b = self.start + self.first + 1, self.start + t + 1
                raise NonFiniteLossError(
                    f"{self.stage}: the loss became {value} within steps {a}..{b}; no checkpoint "
                    f"was written (the network holds the diverged weights). Lower the learning "
                    f"rate (lr={self.lr:g}).")
            self.total = torch.zeros_like(self.total)
            self.first = t + 1


@torch.no_grad()
def _restore(net: nn.Module, buffers: dict[str, Tensor]) -> None:
    for k, b in net.named_buffers():
        b.copy_(buffers[k])


def full_gradient(net: nn.Module, train: Split, full_batch: int = 1024) -> dict[str, Tensor]:
    """``grad L(w; D)`` of the mean cross-entropy over the whole split, in chunks of
    ``full_batch`` examples, in training mode; the random state and the buffers (batch-norm
    statistics) are restored afterwards, so the call leaves no trace on a training run."""
    params = dict(net.named_parameters())
    buffers = {k: b.detach().clone() for k, b in net.named_buffers()}
    n = len(train)
    devices = [train.x.device] if train.x.is_cuda else []
    total = [torch.zeros_like(p) for p in params.values()]
    with torch.random.fork_rng(devices=devices):
        for i in range(0, n, full_batch):
            x, y = train.x[i: i + full_batch], train.y[i: i + full_batch]
            loss = F.cross_entropy(net(x), y, reduction="sum") / n
            for acc, g in zip(total, torch.autograd.grad(loss, list(params.values())),
                              strict=True):
                acc.add_(g)
    _restore(net, buffers)
    return dict(zip(params, total, strict=True))


def _side_gradient(net: nn.Module, x: Tensor, y: Tensor) -> dict[str, Tensor]:
    """A minibatch gradient that leaves the random state and the buffers as they were."""
    params = dict(net.named_parameters())
    buffers = {k: b.detach().clone() for k, b in net.named_buffers()}
    with torch.random.fork_rng(devices=[x.device] if x.is_cuda else []):
        grads = torch.autograd.grad(_loss(net, x, y), list(params.values()))
    _restore(net, buffers)
    return dict(zip(params, grads, strict=True))


def stage_warm(net: nn.Module, train: Split, *, steps: int, window: int, lr: float,
               batch_size: int = 128, seed: int = 0, full_batch: int = 1024,
               full_data: bool = True) -> GradientStatistics:
    """Stage 1: ``steps`` plain SGD steps ``T`` on every parameter (in place), recording
    :class:`GradientStatistics` at the last ``window`` iterates ``w_{steps - i} =
    T^{steps - i}(w_0)``, ``i = 0 .. window-1``: there the full-data gradient
    (:func:`full_gradient`, for the gradient rule) and the minibatch gradient (for the pSGLD
    rule: the step's own minibatch, and at the final iterate the stream's next one).

    The full-data gradients cost ``window`` passes over ``train``; ``full_data=False`` skips
    them, and the gradient rule then sums the minibatch gradients at the same iterates (a
    cheaper, noisier estimate of the method's score)."""
    check_positive(lr=lr, batch_size=batch_size, full_batch=full_batch)
    if not 2 <= window <= steps:
        raise ValueError(f"window must lie in 2..steps={steps} (got {window})")
    params = dict(net.named_parameters())
    stats = GradientStatistics(params)
    batches = Minibatches(train.x, train.y, batch_size, seed)
    guard = _LossGuard("freezing stage 1 (all parameters train)", len(batches), steps, lr,
                       train.x.device)
    net.train()
    for t, (x, y) in enumerate(islice(batches.stream(), steps + 1)):
        # the weights are the iterate w_t = T^t(w_0); recorded for t = steps-window+1 .. steps
        record = t > steps - window
        if t == steps:  # the final iterate: its gradients only, no step, no trace
            if record:
                stats.update(_side_gradient(net, x, y))
                if full_data:
                    stats.update_full(full_gradient(net, train, full_batch))
            break
        loss = _loss(net, x, y)
        grads = torch.autograd.grad(loss, list(params.values()))
        if record:
            stats.update(dict(zip(params, grads, strict=True)))
            if full_data:
                stats.update_full(full_gradient(net, train, full_batch))
        with torch.no_grad():
            for p, g in zip(params.values(), grads, strict=True):
                p.sub_(lr * g)
        guard.add(t, loss)
    return stats


def stage_masked(net: nn.Module, train: Split, alpha: Mapping[str, Tensor], *, steps: int,
                 lr: float, batch_size: int = 128, seed: int = 0, start: int = 0) -> float:
    """Stage 2: ``steps`` masked SGD steps ``T|_alpha`` (in place); returns the seconds.
    Whole frozen tensors compute no gradient; partly frozen ones have it masked."""
    check_positive(lr=lr, batch_size=batch_size)
    if steps < 0:
        raise ValueError(f"need steps >= 0 (got steps={steps})")
    params = dict(net.named_parameters())
    live = {k: p for k, p in params.items() if bool(alpha[k].any())}
    partial = {k: alpha[k].to(p.dtype) for k, p in live.items() if not bool(alpha[k].all())}
    trained = list(live.values())
    flags = {k: p.requires_grad for k, p in params.items()}
    batches = Minibatches(train.x, train.y, batch_size, seed)
    guard = _LossGuard("freezing stage 2 (masked training)", len(batches), steps, lr,
                       train.x.device, start=start)
    net.train()
    try:
        for k, p in params.items():
            p.requires_grad_(k in live)
        t0 = time.perf_counter()
        for t, (x, y) in enumerate(islice(batches.stream(start), steps if live else 0)):
            loss = _loss(net, x, y)
            grads = torch.autograd.grad(loss, trained)
            with torch.no_grad():
                for (k, p), g in zip(live.items(), grads, strict=True):
                    if k in partial:  # one fused op: p -= lr * g * alpha
                        p.addcmul_(g, partial[k], value=-lr)
                    else:
                        p.add_(g, alpha=-lr)
            guard.add(t, loss)
        if train.x.is_cuda:
            torch.cuda.synchronize(train.x.device)
        return time.perf_counter() - t0
    finally:
        for k, p in params.items():
            p.requires_grad_(flags[k])


@dataclass
class FreezeResult:
    """One (rule, k, l) setting: test metrics before and after ``beta``, the stage-2
    wall clock, and the work saved (``update_saved = 1 - k / N``; ``grad_saved`` the fraction
    of parameter-gradient entries never computed, i.e. in whole frozen tensors)."""

    rule: str
    k: int
    l: int  # noqa: E741
    n_params: int
    test_acc: float
    test_nll: float
    test_acc_before_prune: float
    stage2_seconds: float
    update_saved: float
    grad_saved: float
    granularity: str = "element"


def work_saved(alpha: Mapping[str, Tensor]) -> tuple[float, float]:
    """``(1 - k/N, fraction of entries in wholly frozen tensors)``."""
    n = sum(m.numel() for m in alpha.values())
    k = sum(int(m.sum()) for m in alpha.values())
    whole = sum(m.numel() for m in alpha.values() if not bool(m.any()))
    return 1.0 - k / n, whole / n


def train_selective(net: nn.Module, data: Dataset, *, eta0: int, eta1: int, k: float,
                    l: float,  # noqa: E741
                    rule: str = "psgld", granularity: str = "element", window: int = 100,
                    lr: float = 0.05, batch_size: int = 128, seed: int = 0,
                    device: str | torch.device | None = None) -> FreezeResult:
    """The three stages (train all, train ``k``, keep ``l``) for one setting; ``k`` and ``l`` are
    fractions of the parameters (``0 < k, l <= 1``). ``net`` is trained and pruned in place.

    A stage whose loss becomes NaN/inf raises :class:`~bayesstruct.errors.NonFiniteLossError`
    naming the stage and the steps (checked once per epoch of minibatches)."""
    for name, v in (("k", k), ("l", l)):
        if not 0.0 < v <= 1.0:
            raise ValueError(f"{name} is a fraction of the parameters in (0, 1] (got {v})")
    check_positive(eta0=eta0, lr=lr, batch_size=batch_size)
    if not eta1 >= 0:
        raise ValueError(f"need eta1 >= 0 (got eta1={eta1})")
    device = torch.device(device) if device is not None else data.train.x.device
    net.to(device)
    train = data.train.to(device)
    torch.manual_seed(seed)
    stats = stage_warm(net, train, steps=eta0, window=window, lr=lr, batch_size=batch_size,
                       seed=seed)
    n = sum(p.numel() for p in net.parameters())
    alpha = select(stats, rule, round(k * n), torch.Generator().manual_seed(seed), granularity)
    seconds = stage_masked(net, train, alpha, steps=eta1, lr=lr, batch_size=batch_size,
                           seed=seed, start=eta0)
    test = data.test.to(device)
    before = evaluate_net(net, test, 1000)["acc"]
    prune_in_place(net, round(l * n))
    after = evaluate_net(net, test, 1000)
    update_saved, grad_saved = work_saved(alpha)
    return FreezeResult(rule, round(k * n), round(l * n), n, after["acc"], after["nll"], before,
                        seconds, update_saved, grad_saved, granularity)


@torch.no_grad()
def prune_in_place(net: nn.Module, l: int) -> dict[str, Tensor]:  # noqa: E741
    """Zero all but the ``l`` largest-magnitude parameters; returns ``beta``."""
    params = dict(net.named_parameters())
    beta = keep_largest(params, l)
    for k, p in params.items():
        p.mul_(beta[k].to(p.dtype))
    return beta

